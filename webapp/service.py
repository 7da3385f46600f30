"""The service's handlers: every route's logic, written once, for a loaded model.

Each handler takes the werkzeug request either target hands over and returns a Response; none
uses `current_app` or `abort()`, so the blueprint (routes.py) and the Cloud Function
(gcf/main.py) call exactly the same code through one dispatch (dispatch.py).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from typing import Any

from flask import Request, Response
from marshmallow import ValidationError
from werkzeug import wsgi

from . import docs, metrics, tuning
from .accept import ValidRows
from .errors import ApiError, api_error_response
from .httpio import json_response, parse_json
from .model import ArtifactError, Model
from .observe import Observer
from .schemas import PredictQuery, batch_schema, instance_schema
from .settings import Settings

log = logging.getLogger(__name__)


class PredictionService:
    """The handlers for a loaded model; one instance per process, built at start-up."""

    def __init__(self, model: Model, settings: Settings, debug: bool = False) -> None:
        self.model = model
        self.settings = settings
        self.debug = debug  # unexpected errors propagate, to Flask's debugger
        self.instance_schema = instance_schema(model.features)
        self.batch_schema = batch_schema(model.features, settings.max_batch_size)
        self.valid_rows = ValidRows(model.features, settings.max_batch_size)
        self.query_schema = PredictQuery()
        self.observer = Observer(model.manifest["version"], settings.access_log)
        # predictions counted by class label; a regressor's all under ""
        self._predicted = {
            value: metrics.PREDICTIONS.labels(label) for value, label in model.labels.items()
        }
        self._predicted_value = metrics.PREDICTIONS.labels("")
        self._checked_pid: int | None = None
        self._spec: dict[str, Any] | None = None
        metrics.MODEL_INFO.labels(
            model.manifest["name"], model.manifest["version"], model.sha256
        ).set(1)

    def health(self, req: Request) -> Response:
        """Liveness: the process answers."""
        return json_response({"status": "ok"})

    def ready(self, req: Request) -> Response:
        """Readiness: the model's self-check has passed in this very process."""
        if self._checked_pid != os.getpid():
            try:
                self.model.self_check()
            except ArtifactError as exc:
                log.error("self-check failed: %s", exc)
                return api_error_response(ApiError(503, "Model self-check failed."))
            self._checked_pid = os.getpid()
        return json_response({"status": "ready"})

    def metadata(self, req: Request) -> Response:
        """The model's public facts from its manifest."""
        return json_response(self.model.describe())

    def metrics(self, req: Request) -> Response:
        """Prometheus exposition of this process, or of every gunicorn worker."""
        body, content_type = metrics.render()
        return Response(body, 200, content_type=content_type)

    def openapi(self, req: Request) -> Response:
        """This service's OpenAPI document, built from its routes and schemas on first use."""
        if self._spec is None:
            # Imported here: apispec is needed by this route only, not on the cold-start path.
            from .openapi import build_spec

            self._spec = build_spec(self)
        return json_response(self._spec)

    def docs(self, req: Request) -> Response:
        """The interactive docs page (Swagger UI, served locally)."""
        return Response(docs.PAGE, 200, mimetype="text/html")

    def docs_asset(self, req: Request, name: str) -> Response:
        """Swagger UI's script, stylesheet and icon, from the installed package."""
        found = docs.asset(name)
        if found is None:
            return api_error_response(ApiError(404, "No such route."))
        body, content_type = found
        response = Response(body, 200, content_type=content_type)
        response.cache_control.public = True
        response.cache_control.max_age = 86400
        return response

    def predict(self, req: Request) -> Response:
        """One instance -> {"prediction": id}; {"instances": [...]} -> {"predictions": [...]}."""
        response = self._predict(req)
        tuning.release(wsgi.get_content_length(req.environ) or 0)  # its temporaries are gone
        return response

    def _predict(self, req: Request) -> Response:
        try:
            query = self._query(req)
            document = parse_json(req, self.settings.max_content_length)
            batch = isinstance(document, dict) and "instances" in document
            if batch:
                rows = self.valid_rows.of_batch(document)
                if rows is None:  # invalid, most likely: marshmallow says where
                    loaded = self._load(self.batch_schema, document)["instances"]
                    rows = self.model.columns(loaded)
            else:
                rows = self.valid_rows.of_instance(document)
                if rows is None:
                    rows = self.model.columns([self._load(self.instance_schema, document)])
        except ApiError as exc:
            metrics.VALIDATION_FAILURES.labels(str(exc.status)).inc()
            return api_error_response(exc)

        predictions = self.model.predict(rows)
        self._count(predictions)
        if query["probabilities"]:
            labels = self.model.labels
            results: list[Any] = [
                {"prediction": value, "label": labels[value], "probabilities": proba}
                for value, proba in zip(predictions, self.model.predict_proba(rows), strict=True)
            ]
        else:
            results = predictions
        if batch:
            return json_response({"predictions": results})
        if query["probabilities"]:
            return json_response(results[0])
        return json_response({"prediction": results[0]})

    def _count(self, predictions: list[Any]) -> None:
        """Observe the batch size, and count the predictions by class."""
        metrics.BATCH_SIZE.observe(len(predictions))
        if not self.model.classification:
            self._predicted_value.inc(len(predictions))
        elif len(predictions) == 1:  # most requests: skip the Counter
            self._predicted[predictions[0]].inc()
        else:
            for value, count in Counter(predictions).items():
                self._predicted[value].inc(count)

    def _query(self, req: Request) -> Any:
        """The validated query parameters; most requests have none, and skip the schema."""
        if not req.query_string:  # cheaper than parsing an empty req.args
            return {"probabilities": False}
        repeated = {k: ["Given more than once."] for k, v in req.args.lists() if len(v) > 1}
        if repeated:
            raise ApiError(422, "Request failed validation.", repeated)
        query = self._load(self.query_schema, req.args.to_dict())
        if query["probabilities"] and not self.model.probabilities:
            message = ["This model gives no probabilities."]
            raise ApiError(422, "Request failed validation.", {"probabilities": message})
        return query

    @staticmethod
    def _load(schema: Any, document: Any) -> Any:
        try:
            return schema.load(document)
        except ValidationError as exc:
            raise ApiError(422, "Request failed validation.", exc.messages) from None
