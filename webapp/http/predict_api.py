"""The service's own routes, and Vertex AI's: health, readiness, metadata, metrics, predictions.

HTTP only: each handler reads the request, hands validated rows to the predictor and writes
the answer. KServe V1 (kserve_v1.py) answers with the same prediction handler.
"""

from __future__ import annotations

from typing import Any

from flask import Request, Response
from marshmallow import Schema, ValidationError
from werkzeug import wsgi

from ..protocol.errors import ApiError
from ..protocol.instances import Instances
from ..protocol.jsonio import only_number_arrays
from ..protocol.predictor import Predictor
from ..protocol.schemas import PredictQuery
from ..runtime import metrics, tuning
from ..runtime.settings import Settings
from .httpio import load_json, request_body
from .responses import api_error_response, json_response
from .route import Doc, Route

OPTIONS = {"probabilities": False}  # a prediction's options, by default
BATCHES = ("Predictions", "LabeledPredictions")
INVALID = "Request failed validation."


class PredictEndpoints:
    """The handlers of the service's own routes, for one predictor."""

    def __init__(self, predictor: Predictor, settings: Settings) -> None:
        self.predictor = predictor
        self.model = predictor.model
        self.max_body = settings.max_content_length
        self.instances = Instances(predictor.model, settings.max_batch_size)
        self.query_schema = PredictQuery()

    def routes(self) -> list[Route]:
        """/health, /ready, /metadata, /predict and /metrics."""
        return [
            Route("/health", ("GET",), self.health, doc=Doc(("Status",))),
            self._ready("/ready"),
            Route("/metadata", ("GET",), self.metadata, doc=Doc(("Metadata",))),
            self._predict_route("/predict"),
            Route("/metrics", ("GET",), self.metrics, doc=Doc((), media_type="text/plain")),
        ]

    def vertex_routes(self, settings: Settings) -> list[Route]:
        """The health and predict routes a Vertex AI deployment names for itself, if any."""
        health, predict = settings.vertex_health_route, settings.vertex_predict_route
        return [
            *([self._ready(health)] if health else []),
            *([self._predict_route(predict)] if predict else []),
        ]

    def _ready(self, rule: str) -> Route:
        return Route(rule, ("GET",), self.ready, doc=Doc(("Status",), (503,)))

    def _predict_route(self, rule: str) -> Route:
        answers = ("Prediction", "Labeled", *BATCHES)
        errors = (400, 413, 415, 422, 500)
        doc = Doc(answers, errors, body=("Instance", "Batch"), query=True)
        return Route(rule, ("POST",), self.predict, True, doc)

    def schemas(self) -> dict[str, Schema]:
        """The request schemas this protocol's documentation names."""
        return {
            "Instance": self.instances.instance_schema,
            "Batch": self.instances.batch_schema,
        }

    def health(self, req: Request) -> Response:
        """Liveness: the process answers."""
        return json_response({"status": "ok"})

    def ready(self, req: Request) -> Response:
        """Readiness: the model's self-check has passed in this very process."""
        if not self.predictor.ready():
            return api_error_response(ApiError(503, "Model self-check failed."))
        return json_response({"status": "ready"})

    def metadata(self, req: Request) -> Response:
        """The model's public facts from its manifest."""
        return json_response(self.model.describe())

    def metrics(self, req: Request) -> Response:
        """Prometheus exposition of this process, or of every gunicorn worker."""
        body, content_type = metrics.render()
        return Response(body, 200, content_type=content_type)

    def predict(self, req: Request, batch_only: bool = False) -> Response:
        """One instance -> {"prediction": id}; {"instances": [...]} -> {"predictions": [...]}."""
        try:
            response = self._predict(req, batch_only)
        except ApiError as exc:
            response = api_error_response(exc)
        tuning.release(wsgi.get_content_length(req.environ) or 0)  # its temporaries are gone
        return response

    def _predict(self, req: Request, batch_only: bool) -> Response:
        query = self._query(req)
        body = request_body(req, self.max_body)
        document = load_json(body)
        batch = batch_only or self.instances.is_batch(document)
        try:
            if batch:
                rows, parameters = self.instances.batch(document, only_number_arrays(body))
            else:
                rows, parameters = self.instances.one(document), {}
        except ValidationError as exc:
            raise ApiError(422, INVALID, exc.messages) from None
        if parameters.get("probabilities") and not self.model.probabilities:
            message = ["This model gives no probabilities."]
            raise ApiError(422, INVALID, {"parameters": {"probabilities": message}})
        # Where both give an option, the parameters win (Vertex AI sends them), as the
        # OpenAPI document says.
        options = {**OPTIONS, **query, **parameters}
        predictions = self.predictor.predict(rows)
        if options["probabilities"]:
            labels = self.model.labels
            probabilities = self.predictor.predict_proba(rows)
            results: list[Any] = [
                {"prediction": value, "label": labels[value], "probabilities": proba}
                for value, proba in zip(predictions, probabilities, strict=True)
            ]
        else:
            results = predictions
        if batch:
            return json_response({"predictions": results})
        if options["probabilities"]:
            return json_response(results[0])
        return json_response({"prediction": results[0]})

    def _query(self, req: Request) -> dict[str, Any]:
        """The query parameters given, validated; most requests have none, and skip the schema."""
        if not req.query_string:  # cheaper than parsing an empty req.args
            return {}
        repeated = {k: ["Given more than once."] for k, v in req.args.lists() if len(v) > 1}
        if repeated:
            raise ApiError(422, INVALID, repeated)
        try:
            query = self.query_schema.load(req.args.to_dict())
        except ValidationError as exc:
            raise ApiError(422, INVALID, exc.messages) from None
        if query["probabilities"] and not self.model.probabilities:
            message = ["This model gives no probabilities."]
            raise ApiError(422, INVALID, {"probabilities": message})
        return {key: value for key, value in query.items() if key in req.args}
