"""marshmallow schemas: prediction requests, built from the model's features, and the answers.

The policy: every feature required and of its JSON type (numbers finite, integers without a
fractional part, categories strings, dates ISO 8601 strings without an offset; never a numeric
string, nor a boolean for a number except true and false for a boolean feature, taken as 1 and
0), inside its range or among its categories, null only where the model takes a missing value;
unknown fields rejected. Nothing about HTTP here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

from ..core.vocabulary import (
    FIRST_YEAR,
    INPUTS,
    LARGEST_INTEGER,
    LAST_YEAR,
    TASKS,
    Feature,
    parse_datetime,
)


class JSONNumber(fields.Float):
    """A finite JSON number. Float alone would accept "5.1", "1_0", true and 1e400."""

    default_error_messages = {
        "invalid": "Not a valid number.",
        "special": "Not a finite number.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if type(value) is not float and type(value) is not int:
            raise self.make_error("invalid")
        try:
            number = float(value)
        except OverflowError:
            raise self.make_error("special") from None
        if not math.isfinite(number):
            raise self.make_error("special")
        return number


class JSONInteger(fields.Field):
    """A JSON number without a fractional part (5 or 5.0, not 5.5, "5" or true), as an int;
    with `booleans` (a boolean feature's), true and false too, as 1 and 0."""

    default_error_messages = {
        "invalid": "Not a valid integer.",
        "too_large": f"Must be at most {LARGEST_INTEGER} in magnitude.",
    }

    def __init__(self, booleans: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.booleans = booleans

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if type(value) is float and value.is_integer():
            value = int(value)
        elif type(value) is bool and self.booleans:
            value = int(value)
        if type(value) is not int:
            raise self.make_error("invalid")
        if abs(value) > LARGEST_INTEGER:
            raise self.make_error("too_large")
        return value


class UnicodeText(fields.String):
    """A JSON string that is Unicode text: not one holding a lone surrogate ("\\ud800"), which
    JSON's escapes can write but no UTF-8 encoder takes (the compiled engine's among them)."""

    default_error_messages = {"surrogate": "Not valid Unicode text (a lone surrogate)."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        if not is_unicode(text):
            raise self.make_error("surrogate")
        return text


def is_unicode(text: str) -> bool:
    """Whether a string is Unicode text, encodable as UTF-8: no surrogate code point in it."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class ISODateTime(UnicodeText):
    """An ISO 8601 date or date-time string without an offset (vocabulary.parse_datetime),
    kept as the string: the engine turns it into the estimator's datetime64."""

    default_error_messages = {
        "datetime": f"Not an ISO 8601 date or date-time without an offset, years {FIRST_YEAR} "
        f"to {LAST_YEAR}."
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if parse_datetime(text) is None:
            raise self.make_error("datetime")
        return text


def feature_field(feature: Feature) -> fields.Field:
    """The feature's field: required, typed, inside its range or among its categories, and
    null only where the model takes a missing value."""
    kind = {
        "number": "a finite number",
        "integer": "an integer",
        "category": "a string",
        "datetime": "an ISO 8601 date or date-time",
    }
    if feature.boolean:
        kind["integer"] = "true, false, 1 or 0"
    options: dict[str, Any] = {
        "required": True,
        "allow_none": feature.nullable,
        "metadata": {
            "description": f"{feature.name}, {kind[feature.type]}"
            + (" or null" if feature.nullable else "")
        },
    }
    if feature.type == "category":
        if feature.categories is not None:
            options["validate"] = validate.OneOf(feature.categories)
        return UnicodeText(**options)
    if feature.type == "datetime":
        return ISODateTime(**options)
    if feature.min is not None or feature.max is not None:
        options["validate"] = validate.Range(
            min=feature.min,
            max=feature.max,
            min_inclusive=feature.min_inclusive,
            max_inclusive=feature.max_inclusive,
        )
    if feature.type == "integer":
        return JSONInteger(booleans=feature.boolean, **options)
    return JSONNumber(**options)


class JSONBoolean(fields.Boolean):
    """true or false: not "true", 1 or null, which fields.Boolean would take."""

    default_error_messages = {"invalid": "Not a valid boolean."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if type(value) is not bool:
            raise self.make_error("invalid")
        return value


class Instance(fields.Field):
    """One instance of a batch: an object like the single request, or, where every feature is a
    number, an array in feature order."""

    default_error_messages = {
        "invalid": "Must be an object of features or an array of numbers.",
        "object": "Must be an object of features: arrays only where every feature is a number.",
        "length": "Must hold exactly {count} numbers, in the order of the features.",
    }

    def __init__(self, instance_schema: Schema, arrays: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instance_schema = instance_schema
        self.arrays = arrays

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        schema = self.instance_schema
        if isinstance(value, dict):
            loaded = schema.load(value)
            return [loaded[name] for name in schema.fields]
        if not isinstance(value, list) or not self.arrays:
            raise self.make_error("invalid" if self.arrays else "object")
        if len(value) != len(schema.fields):
            raise self.make_error("length", count=len(schema.fields))
        row: list[Any] = []
        errors: dict[str, Any] = {}
        for (name, field), item in zip(schema.fields.items(), value, strict=True):
            try:
                row.append(field.deserialize(item))
            except ValidationError as exc:
                errors[name] = exc.messages
        if errors:
            raise ValidationError(errors)
        return row


class Instances(fields.List):
    """A non-empty list with a maximum length, checked before any item is read."""

    def __init__(self, item: fields.Field, max_items: int, **kwargs: Any) -> None:
        super().__init__(item, **kwargs)
        self.max_items = max_items

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, list) and not 1 <= len(value) <= self.max_items:
            raise ValidationError(f"Must hold between 1 and {self.max_items} instances.")
        return super()._deserialize(value, attr, data, **kwargs)


def instance_schema(features: Sequence[Feature]) -> Schema:
    """The single-instance request: one required field per feature, in order."""
    cls = Schema.from_dict({f.name: feature_field(f) for f in features}, name="Instance")
    return cls()


def batch_schema(features: Sequence[Feature], max_batch_size: int) -> Schema:
    """The batch request: {"instances": [...]}, each an object or an array, and Vertex AI's
    optional {"parameters": {...}}."""
    arrays = all(f.numeric for f in features)
    instance = Instance(instance_schema(features), arrays)
    cls = Schema.from_dict(
        {
            "instances": Instances(instance, max_batch_size, required=True),
            "parameters": fields.Nested(PredictParameters),
        },
        name="Batch",
    )
    return cls()


_PROBABILITIES = "Add the class label and per-class probabilities."


class PredictQuery(Schema):
    """Query parameters of POST /predict."""

    probabilities = fields.Boolean(
        load_default=False,
        metadata={
            "description": f"{_PROBABILITIES} A batch's `parameters.probabilities`, where it "
            "is given too, wins over this."
        },
    )


class PredictParameters(Schema):
    """A batch's `parameters`, as Vertex AI sends them: the query parameters, as JSON values."""

    probabilities = JSONBoolean(
        metadata={
            "description": f"{_PROBABILITIES} Wins over the query parameter of the same name, "
            "where both are given."
        }
    )


# Open Inference Protocol V2 (webapp/v2.py): an infer request's structure. The tensors' values
# are checked by webapp/v2.py against their datatypes, then as the features' fields above.

DATATYPES = (
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "BF16", "FP32", "FP64", "BYTES",
)  # fmt: skip


class TensorData(fields.Raw):
    """A tensor's values, flat or nested in row-major order: an array, read by webapp/v2.py."""

    default_error_messages = {"invalid": "Must be an array."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if type(value) is not list:
            raise self.make_error("invalid")
        return value


class InputParameters(Schema):
    """An input tensor's parameters: the binary tensor extension's only."""

    binary_data_size = JSONInteger(
        validate=validate.Range(min=0),
        metadata={"description": "The input's bytes follow the JSON (binary tensor extension)."},
    )


class RequestInput(Schema):
    """An input tensor: the [N, n_features] matrix, or one feature's [N] or [N, 1] column."""

    name = fields.String(required=True)
    shape = fields.List(JSONInteger(validate=validate.Range(min=0)), required=True)
    datatype = fields.String(required=True, validate=validate.OneOf(DATATYPES))
    parameters = fields.Nested(InputParameters)
    data = TensorData(metadata={"type": "array", "items": {}})


class OutputParameters(Schema):
    """A requested output's parameters: the binary tensor extension's only."""

    binary_data = JSONBoolean(metadata={"description": "Answer this output in binary."})


class RequestOutput(Schema):
    """An output the request asks for: predict or predict_proba (infer_request_schema says
    which for the served model)."""

    name = fields.String(required=True)
    parameters = fields.Nested(OutputParameters)


class RequestParameters(Schema):
    """The infer request's parameters: the binary tensor extension's only."""

    binary_data_output = JSONBoolean(
        metadata={"description": "Answer every output in binary (binary tensor extension)."}
    )


class InferRequest(Schema):
    """POST /v2/models/{name}/infer."""

    id = fields.String(metadata={"description": "Echoed in the answer."})
    parameters = fields.Nested(RequestParameters)
    inputs = fields.List(
        fields.Nested(RequestInput), required=True, validate=validate.Length(min=1)
    )
    outputs = fields.List(fields.Nested(RequestOutput), validate=validate.Length(min=1))


def infer_request_schema(outputs: Sequence[str]) -> Schema:
    """The infer request of a model that gives `outputs`: an output asked for by another name
    is refused here, and the OpenAPI document lists the names (an enum)."""
    names = validate.OneOf(outputs, error="No such output; this model gives {choices}.")
    output = RequestOutput.from_dict(
        {"name": fields.String(required=True, validate=names)}, name="RequestOutput"
    )
    asked = fields.List(fields.Nested(output), validate=validate.Length(min=1))
    return InferRequest.from_dict({"outputs": asked}, name="InferRequest")()


# What the service answers, described as marshmallow schemas: the OpenAPI document is built
# from these (webapp/openapi.py), and tests check real answers against it.


class Status(Schema):
    """GET /health and /ready."""

    status = fields.String(required=True)


class ErrorBody(Schema):
    """Every failure's answer (webapp/errors.py)."""

    code = fields.Integer(required=True, metadata={"description": "The HTTP status code."})
    status = fields.String(required=True, metadata={"description": "The HTTP status phrase."})
    message = fields.String(required=True)
    errors = fields.Dict(
        metadata={
            "description": "422 only: messages by field name, under the instance index in a batch."
        }
    )


class Engine(Schema):
    """Which engine answers for the model, and why (webapp/core/model.py)."""

    name = fields.String(required=True, validate=validate.OneOf(["onnx", "sklearn"]))
    why = fields.String(required=True)


class Metadata(Schema):
    """GET /metadata: the manifest's public facts (docs/manifest.md), and the engine serving."""

    name = fields.String(required=True)
    version = fields.String(required=True)
    sha256 = fields.String(required=True)  # the manifest's: what MODEL_SHA256 pins
    task = fields.String(required=True, validate=validate.OneOf(TASKS))
    estimator = fields.String(required=True)
    input = fields.String(required=True, validate=validate.OneOf(INPUTS))
    features = fields.List(fields.Dict(), required=True)
    classes = fields.List(fields.Dict())
    probabilities = fields.Boolean()
    metrics = fields.Dict()
    versions = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    engine = fields.Nested(Engine, required=True)


class Document(Schema):
    """GET /openapi.json: an OpenAPI 3.0 document."""

    openapi = fields.String(required=True)

    class Meta:
        unknown = INCLUDE


class ModelReady(Schema):
    """GET /v1/models/{name} and /v2/models/{name}/ready."""

    name = fields.String(required=True)
    ready = fields.Boolean(required=True)


class Live(Schema):
    """GET /v2/health/live."""

    live = fields.Boolean(required=True)


class Ready(Schema):
    """GET /v2/health/ready."""

    ready = fields.Boolean(required=True)


class ServerMetadata(Schema):
    """GET /v2."""

    name = fields.String(required=True)
    version = fields.String(required=True)
    extensions = fields.List(fields.String(), required=True)


class MetadataTensor(Schema):
    """An input or output the model takes or gives; -1 where the batch's size goes."""

    name = fields.String(required=True)
    datatype = fields.String(required=True, validate=validate.OneOf(DATATYPES))
    shape = fields.List(fields.Integer(), required=True)


class ModelMetadata(Schema):
    """GET /v2/models/{name}."""

    name = fields.String(required=True)
    versions = fields.List(fields.String(), required=True)
    platform = fields.String(required=True)
    inputs = fields.List(fields.Nested(MetadataTensor), required=True)
    outputs = fields.List(fields.Nested(MetadataTensor), required=True)


class ResponseOutput(Schema):
    """An output tensor: its values in `data`, or its size when they follow in binary."""

    name = fields.String(required=True, validate=validate.OneOf(["predict", "predict_proba"]))
    datatype = fields.String(required=True, validate=validate.OneOf(DATATYPES))
    shape = fields.List(fields.Integer(), required=True)
    data = fields.Raw(metadata={"type": "array", "items": {}})
    parameters = fields.Dict()


class InferResponse(Schema):
    """POST /v2/models/{name}/infer."""

    model_name = fields.String(required=True)
    model_version = fields.String(required=True)
    id = fields.String()
    outputs = fields.List(fields.Nested(ResponseOutput), required=True)


class InferError(Schema):
    """Every failure's answer on a /v2 route, in the protocol's own shape."""

    error = fields.String(required=True)


def answer_schemas(
    labels: Mapping[Any, str] | None, probabilities: bool, integers: bool = False
) -> dict[str, Schema]:
    """POST /predict's answers, by component name: for a classifier's classes (value -> label),
    with its probabilities if it has them; else (None) numbers, or integer labels (`integers`:
    a clusterer's, an outlier detector's)."""
    if labels is None:
        value: fields.Field = (
            fields.Integer(required=True) if integers else fields.Float(required=True)
        )
    else:
        value = _class_field(list(labels))
    answers = {
        "Prediction": Schema.from_dict({"prediction": value}, name="Prediction")(),
        "Predictions": Schema.from_dict(
            {"predictions": fields.List(value, required=True)}, name="Predictions"
        )(),
    }
    if labels is None or not probabilities:
        return answers
    label = fields.String(required=True, validate=validate.OneOf(list(labels.values())))
    probability = fields.Float(required=True, validate=validate.Range(0, 1))
    each = Schema.from_dict({name: probability for name in labels.values()}, name="Probabilities")
    labeled = Schema.from_dict(
        {"prediction": value, "label": label, "probabilities": fields.Nested(each, required=True)},
        name="Labeled",
    )
    answers["Labeled"] = labeled()
    answers["LabeledPredictions"] = Schema.from_dict(
        {"predictions": fields.List(fields.Nested(labeled), required=True)},
        name="LabeledPredictions",
    )()
    return answers


def _class_field(classes: list[Any]) -> fields.Field:
    """A class value: of the JSON type the classes share, and one of them."""
    kinds = {type(c) for c in classes}
    kind = {bool: fields.Boolean, int: fields.Integer, str: fields.String}.get(
        kinds.pop() if len(kinds) == 1 else float, fields.Float
    )
    return kind(required=True, validate=validate.OneOf(classes))
