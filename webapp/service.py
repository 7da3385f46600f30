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

from . import docs, jsonio, metrics, tuning, v2
from .accept import ValidRows
from .errors import ApiError, api_error_response, infer_error_response
from .httpio import json_response, parse_infer, parse_json
from .model import Model
from .observe import Observer
from .schemas import PredictQuery, batch_schema, instance_schema
from .settings import Settings
from .vocabulary import ArtifactError, Rows

log = logging.getLogger(__name__)

OPTIONS = {"probabilities": False}  # a prediction's options, by default
_ABSENT = object()


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
        self.parameters_field = self.batch_schema.fields["parameters"]
        self.v2_metadata = v2.model_metadata(model)
        self.v2_request = v2.request_schema(model)
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
        if not self._self_checked():
            return api_error_response(ApiError(503, "Model self-check failed."))
        return json_response({"status": "ready"})

    def _self_checked(self) -> bool:
        """Whether the model's self-check has passed in this very process (checked once)."""
        if self._checked_pid != os.getpid():
            try:
                self.model.self_check()
            except ArtifactError as exc:
                log.error("self-check failed: %s", exc)
                return False
            self._checked_pid = os.getpid()
        return True

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

    def predict(self, req: Request, batch_only: bool = False) -> Response:
        """One instance -> {"prediction": id}; {"instances": [...]} -> {"predictions": [...]}."""
        response = self._predict(req, batch_only)
        tuning.release(wsgi.get_content_length(req.environ) or 0)  # its temporaries are gone
        return response

    def _is_batch(self, document: Any) -> bool:
        """{"instances": ...} is a batch, unless the model has a feature of that name and the
        value is not a list (no feature takes one): then it is that feature's single row."""
        if not isinstance(document, dict) or "instances" not in document:
            return False
        return "instances" not in self.model.feature_names or isinstance(
            document["instances"], list
        )

    def _predict(self, req: Request, batch_only: bool) -> Response:
        try:
            query = self._query(req)
            document = parse_json(req, self.settings.max_content_length)
            batch = batch_only or self._is_batch(document)
            if batch:
                rows, parameters = self._batch(document)
                options = self._options(query, parameters)
            else:
                rows = self.valid_rows.of_instance(document)
                if rows is None:
                    rows = self.model.columns([self._load(self.instance_schema, document)])
                options = {**OPTIONS, **query}
        except ApiError as exc:
            metrics.VALIDATION_FAILURES.labels(str(exc.status)).inc()
            return api_error_response(exc)

        predictions = self.model.predict(rows)
        self._count(predictions)
        if options["probabilities"]:
            labels = self.model.labels
            results: list[Any] = [
                {"prediction": value, "label": labels[value], "probabilities": proba}
                for value, proba in zip(predictions, self.model.predict_proba(rows), strict=True)
            ]
        else:
            results = predictions
        if batch:
            return json_response({"predictions": results})
        if options["probabilities"]:
            return json_response(results[0])
        return json_response({"prediction": results[0]})

    def _batch(self, document: Any) -> tuple[Rows, dict[str, Any]]:
        """A batch's rows and its `parameters` (Vertex AI's options for the request), valid.

        The parameters are checked on their own, so that the instances keep the fast path.
        """
        given = document.pop("parameters", _ABSENT) if type(document) is dict else _ABSENT
        rows = self.valid_rows.of_batch(document)
        parameters: Any = {}
        if given is not _ABSENT:
            try:
                parameters = self.parameters_field.deserialize(given)
            except ValidationError:
                rows = None  # marshmallow names every offending field, below
            document["parameters"] = given
        if rows is None:  # invalid, most likely
            loaded = self._load(self.batch_schema, document)
            rows = self.model.columns(loaded["instances"])
            parameters = loaded.get("parameters", {})
        return rows, parameters

    def _options(self, query: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
        """A batch's options: its query's and its `parameters`', each valid on its own; where
        both give one, the parameters win (Vertex AI sends them), as the OpenAPI document says."""
        if parameters.get("probabilities") and not self.model.probabilities:
            message = ["This model gives no probabilities."]
            errors = {"parameters": {"probabilities": message}}
            raise ApiError(422, "Request failed validation.", errors)
        return {**OPTIONS, **query, **parameters}

    # KServe V1 and the Open Inference Protocol (V2), docs/protocols.md: <name> is the
    # manifest's name, <version> its version; the same validation as /predict.

    def v1_model(self, req: Request, name: str) -> Response:
        """KServe V1: whether the model is ready."""
        if name != self.model.manifest["name"]:
            return api_error_response(ApiError(404, "No such model."))
        ready = self._self_checked()
        return json_response({"name": name, "ready": ready}, 200 if ready else 503)

    def v1_predict(self, req: Request, name: str) -> Response:
        """KServe V1: {"instances": [...]} -> {"predictions": [...]}, as POST /predict."""
        if name != self.model.manifest["name"]:
            return api_error_response(ApiError(404, "No such model."))
        return self.predict(req, batch_only=True)

    def v2_server(self, req: Request) -> Response:
        """Open Inference Protocol: the server's name, version and extensions."""
        return json_response(v2.server_metadata())

    def v2_live(self, req: Request) -> Response:
        """Open Inference Protocol: liveness, the process answers."""
        return json_response({"live": True})

    def v2_ready(self, req: Request) -> Response:
        """Open Inference Protocol: readiness, the model's self-check has passed."""
        ready = self._self_checked()
        return json_response({"ready": ready}, 200 if ready else 503)

    def v2_model(self, req: Request, name: str, version: str | None = None) -> Response:
        """Open Inference Protocol: the model's inputs and outputs."""
        unknown = self._v2_unknown(name, version)
        return json_response(self.v2_metadata) if unknown is None else unknown

    def v2_model_ready(self, req: Request, name: str, version: str | None = None) -> Response:
        """Open Inference Protocol: whether the model is ready."""
        unknown = self._v2_unknown(name, version)
        if unknown is not None:
            return unknown
        ready = self._self_checked()
        return json_response({"name": name, "ready": ready}, 200 if ready else 503)

    def v2_infer(self, req: Request, name: str, version: str | None = None) -> Response:
        """Open Inference Protocol: input tensors in, predictions and probabilities out."""
        unknown = self._v2_unknown(name, version)
        if unknown is not None:
            return unknown
        response = self._v2_infer(req)
        tuning.release(wsgi.get_content_length(req.environ) or 0)  # its temporaries are gone
        return response

    def _v2_unknown(self, name: str, version: str | None) -> Response | None:
        """A 404 for another model's name or version, else None."""
        if name != self.model.manifest["name"]:
            return infer_error_response(404, "No such model.")
        if version is not None and version != self.model.manifest["version"]:
            return infer_error_response(404, "No such version of the model.")
        return None

    def _v2_infer(self, req: Request) -> Response:
        try:
            document, blob = parse_infer(req, self.settings.max_content_length)
            request = v2.parse_request(document, self.v2_request)
            outputs = v2.requested_outputs(request, self.model)
            instances, matrix = v2.read_inputs(
                request, blob, self.model, self.settings.max_batch_size
            )
            batch = {"instances": instances}
            rows = self.valid_rows.of_batch(batch)
            if rows is None:  # invalid, most likely: marshmallow says where
                try:
                    loaded = self.batch_schema.load(batch)["instances"]
                except ValidationError as exc:
                    names = self.model.feature_names
                    raise v2.TensorError(v2.value_errors(exc.messages, matrix, names)) from None
                rows = self.model.columns(loaded)
        except ApiError as exc:  # the body itself: 400, 413 or 415
            metrics.VALIDATION_FAILURES.labels(str(exc.status)).inc()
            return api_error_response(exc, v2=True)
        except v2.TensorError as exc:
            metrics.VALIDATION_FAILURES.labels("400").inc()
            return infer_error_response(400, str(exc))

        predictions = self.model.predict(rows)
        self._count(predictions)
        wanted = any(output == v2.PROBA for output, _ in outputs)
        probabilities = self.model.predict_proba(rows) if wanted else None
        body, binary = v2.answer(self.model, request, outputs, predictions, probabilities)
        if not binary:
            return json_response(body)
        header = jsonio.dumps(body)
        length = {"Inference-Header-Content-Length": str(len(header))}
        return Response(header + binary, 200, headers=length, mimetype="application/octet-stream")

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

    def _query(self, req: Request) -> dict[str, Any]:
        """The query parameters given, validated; most requests have none, and skip the schema."""
        if not req.query_string:  # cheaper than parsing an empty req.args
            return {}
        repeated = {k: ["Given more than once."] for k, v in req.args.lists() if len(v) > 1}
        if repeated:
            raise ApiError(422, "Request failed validation.", repeated)
        query = self._load(self.query_schema, req.args.to_dict())
        if query["probabilities"] and not self.model.probabilities:
            message = ["This model gives no probabilities."]
            raise ApiError(422, "Request failed validation.", {"probabilities": message})
        return {key: value for key, value in query.items() if key in req.args}

    @staticmethod
    def _load(schema: Any, document: Any) -> Any:
        try:
            return schema.load(document)
        except ValidationError as exc:
            raise ApiError(422, "Request failed validation.", exc.messages) from None
