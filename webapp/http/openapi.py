"""The OpenAPI 3 document, built from the route table and the marshmallow schemas.

Paths come from the routes the service serves (the Vertex AI aliases, KServe V1 and the Open
Inference Protocol included), summaries from their handlers' docstrings, request and answer
shapes from the schemas that validate requests and describe answers: the served model's own
features, ranges, classes, name, version and batch limit.
"""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields, validate

from ..core.model import Model
from ..core.vocabulary import INTEGER_LABELS
from ..protocol import v2
from ..protocol.schemas import (
    Document,
    ErrorBody,
    InferError,
    InferResponse,
    Instance,
    Instances,
    JSONInteger,
    Live,
    Metadata,
    ModelMetadata,
    ModelReady,
    PredictQuery,
    Ready,
    ServerMetadata,
    Status,
    answer_schemas,
)
from .route import Doc, Route

ERRORS = {
    400: "The body is empty or not strict JSON (malformed, not UTF-8, NaN, duplicate keys, "
    "too deep).",
    404: "No model of this name (or version).",
    413: "The body is larger than MAX_CONTENT_LENGTH.",
    415: "Content-Type is not application/json (UTF-8).",
    422: "Validation failed; `errors` names every offending field.",
    500: "Unexpected failure; nothing internal is revealed.",
    503: "The model's self-check prediction failed.",
}
V2_ERRORS = {
    **ERRORS,
    400: "The body is not strict JSON, or the inputs or outputs are not what the model takes, "
    "or a value is invalid: `error` names the input and field.",
}
_REQUEST_ID = {
    "X-Request-ID": {
        "description": "The request's id: the client's X-Request-ID if usable, else generated.",
        "schema": {"type": "string"},
    }
}
# An infer answer with outputs asked for in binary (docs/protocols.md): the JSON answer, then
# the outputs' bytes, the JSON's length in a header.
_BINARY_ANSWER = {
    "schema": {
        "type": "string",
        "format": "binary",
        "description": "The JSON answer (InferResponse), then the binary outputs' bytes.",
    }
}
_JSON_LENGTH = {
    "Inference-Header-Content-Length": {
        "description": "With binary outputs: the length in bytes of the JSON at the start.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def build_spec(model: Model, routes: tuple[Route, ...], schemas: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the routes serving `model`; `schemas` are the request
    schemas the routes' protocols name (their instances, batches and infer requests)."""
    plugin = MarshmallowPlugin()
    manifest = model.manifest
    spec = APISpec(
        title="sklearn-serve",
        version=manifest["version"],
        openapi_version="3.0.3",
        plugins=[plugin],
        info={"description": f"Predictions from {manifest['name']}."},
    )
    assert plugin.converter is not None  # set by APISpec when it initialises the plugin
    plugin.converter.add_attribute_function(_exclusive_bounds)
    plugin.converter.add_attribute_function(_batch_fields)
    plugin.map_to_openapi_type(JSONInteger, fields.Integer)
    components = {**_components(model), **schemas}
    for name, schema in components.items():
        spec.components.schema(name, schema=schema)
    for route in routes:
        if route.doc is not None:
            operation = _operation(route, route.doc, model, set(components))
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", route.rule)
            spec.path(path=path, operations={m.lower(): operation for m in route.methods})
    return spec.to_dict()


def _components(model: Model) -> dict[str, Any]:
    """The answers' schemas, by name, and the error envelopes."""
    labels = model.labels if model.classification else None
    return {
        "Error": ErrorBody(),
        "Status": Status(),
        "Metadata": Metadata(),
        "Document": Document(),
        **answer_schemas(labels, model.probabilities, model.manifest["task"] in INTEGER_LABELS),
        "ModelReady": ModelReady(),
        "ServerMetadata": ServerMetadata(),
        "Live": Live(),
        "Ready": Ready(),
        "ModelMetadata": ModelMetadata(),
        "InferResponse": InferResponse(),
        "InferError": InferError(),
    }


def _operation(route: Route, doc: Doc, model: Model, known: set[str]) -> dict[str, Any]:
    """One route's operation: its summary, parameters, request body, answer and failures."""
    refs = [{"$ref": f"#/components/schemas/{name}"} for name in doc.answers if name in known]
    schema = refs[0] if len(refs) == 1 else {"oneOf": refs} if refs else {"type": "string"}
    content: dict[str, Any] = {doc.media_type: {"schema": schema}}
    answer: dict[str, Any] = {"description": "Success.", "content": content}
    if doc.media_type == "application/json":
        answer["headers"] = _REQUEST_ID
    if doc.binary:
        content["application/octet-stream"] = _BINARY_ANSWER
        answer["headers"] = {**_REQUEST_ID, **_JSON_LENGTH}
    responses: dict[int, Any] = {200: answer}
    descriptions = V2_ERRORS if doc.error == "InferError" else ERRORS
    for status in doc.errors:
        error: dict[str, Any] = {"$ref": f"#/components/schemas/{doc.error}"}
        if status == 503 and doc.not_ready:
            error = schema
        content = {"application/json": {"schema": error}}
        responses[status] = {"description": descriptions[status], "content": content}
    operation: dict[str, Any] = {
        "summary": (route.handler.__doc__ or "").splitlines()[0],
        "responses": responses,
    }
    parameters = _path_parameters(route, model)
    if doc.query:
        parameters.append({"in": "query", "schema": PredictQuery})
    if parameters:
        operation["parameters"] = parameters
    if doc.body:
        bodies = [{"$ref": f"#/components/schemas/{name}"} for name in doc.body]
        body = {
            "schema": bodies[0] if len(bodies) == 1 else {"oneOf": bodies},
            "examples": _examples(doc, model),
        }
        operation["requestBody"] = {"required": True, "content": {"application/json": body}}
    return operation


def _path_parameters(route: Route, model: Model) -> list[dict[str, Any]]:
    """The model's name and version in a route's path: the manifest's, the only ones served."""
    manifest = model.manifest
    return [
        {"in": "path", "name": key, "required": True, "schema": {"type": "string", "enum": [value]}}
        for key, value in (("name", manifest["name"]), ("version", manifest["version"]))
        if re.search(rf"<(?:[^:>]+:)?{key}>", route.rule)
    ]


def _examples(doc: Doc, model: Model) -> dict[str, Any]:
    """Requests that the served model takes, from its manifest's self-check rows."""
    example = model.manifest["self_check"]["instances"][0]
    second: Any = example
    if model.numeric:  # instances may be arrays
        second = [example[name] for name in model.feature_names]
    batch = {"summary": "A batch of two", "value": {"instances": [example, second]}}
    if doc.body == ("Instance", "Batch"):
        return {"one": {"summary": "One instance", "value": example}, "batch": batch}
    if doc.body == ("Batch",):
        return {"batch": batch}
    if v2.takes_matrix(model):
        row = [example[name] for name in model.feature_names]
        inputs = [{"name": v2.MATRIX, "shape": [1, len(row)], "datatype": "FP64", "data": row}]
    else:
        inputs = [
            {**tensor, "shape": [1], "data": [example[tensor["name"]]]}
            for tensor in v2.model_metadata(model)["inputs"]
        ]
    return {"infer": {"summary": "One row", "value": {"id": "1", "inputs": inputs}}}


def _exclusive_bounds(self: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
    """apispec writes a Range's bounds as inclusive; say which are not (OpenAPI 3.0 style)."""
    extra: dict[str, Any] = {}
    for validator in field.validators:
        if isinstance(validator, validate.Range):
            if validator.min is not None and not validator.min_inclusive:
                extra["exclusiveMinimum"] = True
            if validator.max is not None and not validator.max_inclusive:
                extra["exclusiveMaximum"] = True
    return extra


def _batch_fields(self: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
    """The batch's own fields: its length limits, and instances as objects or arrays."""
    if isinstance(field, Instances):
        return {"minItems": 1, "maxItems": field.max_items}
    if not isinstance(field, Instance):
        return {}
    features = list(field.instance_schema.fields.values())
    array: dict[str, Any] = {
        "type": "array",
        "minItems": len(features),
        "maxItems": len(features),
        "items": {"type": "number"},
        "description": "The features' values in manifest order.",
    }
    ranges = [
        {k: v for k, v in self.field2property(f).items() if k != "description"} for f in features
    ]
    if all(r == ranges[0] for r in ranges):  # one range for every feature: the items can say it
        array["items"] = ranges[0]
    return {"oneOf": [{"$ref": "#/components/schemas/Instance"}, array]}
