"""marshmallow schemas: prediction requests, built from the model's features, and the answers.

The policy: JSON numbers only (no numeric strings, booleans or null), finite, inside each
feature's range, every feature required, unknown fields rejected. Nothing about HTTP here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

from .model import Feature


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


def feature_field(feature: Feature) -> JSONNumber:
    """A required number inside the feature's range."""
    return JSONNumber(
        required=True,
        validate=validate.Range(
            min=feature.min,
            max=feature.max,
            min_inclusive=feature.min_inclusive,
            max_inclusive=feature.max_inclusive,
        ),
        metadata={"description": f"{feature.name}, a finite number"},
    )


class Instance(fields.Field):
    """One instance of a batch: an object like the single request, or an array in feature order."""

    default_error_messages = {
        "invalid": "Must be an object of features or an array of numbers.",
        "length": "Must hold exactly {count} numbers, in the order of the features.",
    }

    def __init__(self, instance_schema: Schema, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instance_schema = instance_schema

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[float]:
        schema = self.instance_schema
        if isinstance(value, dict):
            loaded = schema.load(value)
            return [loaded[name] for name in schema.fields]
        if not isinstance(value, list):
            raise self.make_error("invalid")
        if len(value) != len(schema.fields):
            raise self.make_error("length", count=len(schema.fields))
        row: list[float] = []
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
    """The single-instance request: one required number field per feature, in order."""
    cls = Schema.from_dict({f.name: feature_field(f) for f in features}, name="Instance")
    return cls()


def batch_schema(features: Sequence[Feature], max_batch_size: int) -> Schema:
    """The batch request: {"instances": [...]}, each an object or an array."""
    cls = Schema.from_dict(
        {
            "instances": Instances(
                Instance(instance_schema(features)), max_batch_size, required=True
            )
        },
        name="Batch",
    )
    return cls()


class PredictQuery(Schema):
    """Query parameters of POST /predict."""

    probabilities = fields.Boolean(
        load_default=False,
        metadata={"description": "Add the class label and per-class probabilities."},
    )


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


class Metadata(Schema):
    """GET /metadata: the manifest's public facts."""

    name = fields.String(required=True)
    version = fields.String(required=True)
    sha256 = fields.String(required=True)
    estimator = fields.String(required=True)
    features = fields.List(fields.Dict(), required=True)
    classes = fields.List(fields.Dict(), required=True)
    metrics = fields.Dict(required=True)
    versions = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class Document(Schema):
    """GET /openapi.json: an OpenAPI 3.0 document."""

    openapi = fields.String(required=True)

    class Meta:
        unknown = INCLUDE


def answer_schemas(labels: Mapping[int, str]) -> dict[str, Schema]:
    """POST /predict's answers for a model's classes (class id -> label), by component name."""
    class_id = fields.Integer(required=True, validate=validate.OneOf(list(labels)))
    label = fields.String(required=True, validate=validate.OneOf(list(labels.values())))
    probability = fields.Float(required=True, validate=validate.Range(0, 1))
    probabilities = Schema.from_dict(
        {name: probability for name in labels.values()}, name="Probabilities"
    )
    labeled = Schema.from_dict(
        {
            "prediction": class_id,
            "label": label,
            "probabilities": fields.Nested(probabilities, required=True),
        },
        name="Labeled",
    )
    return {
        "Prediction": Schema.from_dict({"prediction": class_id}, name="Prediction")(),
        "Labeled": labeled(),
        "Predictions": Schema.from_dict(
            {"predictions": fields.List(class_id, required=True)}, name="Predictions"
        )(),
        "LabeledPredictions": Schema.from_dict(
            {"predictions": fields.List(fields.Nested(labeled), required=True)},
            name="LabeledPredictions",
        )(),
    }
