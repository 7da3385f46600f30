"""The OpenAPI 3 document, built from the route table and the marshmallow schemas.

Paths come from the routes the service serves (the Vertex AI aliases included), summaries from
their handlers' docstrings, request and answer shapes from the schemas that validate requests
and describe answers: the served model's own features, ranges, classes and batch limit.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields, validate

from .routes import Route, routes_for
from .schemas import (
    Document,
    ErrorBody,
    Instance,
    Instances,
    Metadata,
    PredictQuery,
    Status,
    answer_schemas,
)
from .service import PredictionService


class Doc(NamedTuple):
    """How a handler's route is documented: its answer's schemas (one of), its failures."""

    answers: tuple[str, ...]
    errors: tuple[int, ...] = ()
    media_type: str = "application/json"


# Documented handlers; the docs page and its assets are not API.
DOCS = {
    PredictionService.health: Doc(("Status",)),
    PredictionService.ready: Doc(("Status",), (503,)),
    PredictionService.metadata: Doc(("Metadata",)),
    PredictionService.predict: Doc(
        ("Prediction", "Labeled", "Predictions", "LabeledPredictions"), (400, 413, 415, 422, 500)
    ),
    PredictionService.metrics: Doc((), media_type="text/plain"),
    PredictionService.openapi: Doc(("Document",)),
}
ERRORS = {
    400: "The body is empty or not strict JSON (malformed, not UTF-8, NaN, duplicate keys, "
    "too deep).",
    413: "The body is larger than MAX_CONTENT_LENGTH.",
    415: "Content-Type is not application/json (UTF-8).",
    422: "Validation failed; `errors` names every offending field.",
    500: "Unexpected failure; nothing internal is revealed.",
    503: "The model's self-check prediction failed.",
}
_REQUEST_ID = {
    "X-Request-ID": {
        "description": "The request's id: the client's X-Request-ID if usable, else generated.",
        "schema": {"type": "string"},
    }
}


def build_spec(service: PredictionService) -> dict[str, Any]:
    """The OpenAPI 3.0 document for `service`, serving its model."""
    plugin = MarshmallowPlugin()
    manifest = service.model.manifest
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
    components = _components(service)
    for name, schema in components.items():
        spec.components.schema(name, schema=schema)
    for route in routes_for(service.settings):
        doc = DOCS.get(route.handler)
        if doc is not None:
            operation = _operation(route, doc, service, set(components))
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", route.rule)
            spec.path(path=path, operations={m.lower(): operation for m in route.methods})
    return spec.to_dict()


def _components(service: PredictionService) -> dict[str, Any]:
    """Every schema the document names, by name: requests, answers, the error envelope."""
    model = service.model
    labels = model.labels if model.classification else None
    return {
        "Instance": service.instance_schema,
        "Batch": service.batch_schema,
        "Error": ErrorBody(),
        "Status": Status(),
        "Metadata": Metadata(),
        "Document": Document(),
        **answer_schemas(labels, model.probabilities),
    }


def _operation(
    route: Route, doc: Doc, service: PredictionService, known: set[str]
) -> dict[str, Any]:
    """One route's operation: its summary, request (for predictions), answer and failures."""
    refs = [{"$ref": f"#/components/schemas/{name}"} for name in doc.answers if name in known]
    schema = refs[0] if len(refs) == 1 else {"oneOf": refs} if refs else {"type": "string"}
    answer = {"description": "Success.", "content": {doc.media_type: {"schema": schema}}}
    if doc.media_type == "application/json":
        answer["headers"] = _REQUEST_ID
    responses: dict[int, Any] = {200: answer}
    for status in doc.errors:
        error = {"schema": {"$ref": "#/components/schemas/Error"}}
        responses[status] = {"description": ERRORS[status], "content": {"application/json": error}}
    operation = {"summary": (route.handler.__doc__ or "").splitlines()[0], "responses": responses}
    if route.predicts:
        example = service.model.manifest["self_check"]["instances"][0]
        second: Any = example
        if service.valid_rows.arrays:
            second = [example[name] for name in service.model.feature_names]
        examples = {
            "one": {"summary": "One instance", "value": example},
            "batch": {"summary": "A batch of two", "value": {"instances": [example, second]}},
        }
        either = {"oneOf": [{"$ref": f"#/components/schemas/{n}"} for n in ("Instance", "Batch")]}
        operation["parameters"] = [{"in": "query", "schema": PredictQuery}]
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": either, "examples": examples}},
        }
    return operation


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
