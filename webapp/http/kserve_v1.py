"""KServe's V1 protocol (docs/protocols.md): the model's readiness, and batch predictions.

<name> in a path is the manifest's name; a prediction is POST /predict's batch, validated and
answered exactly as it is.
"""

from __future__ import annotations

from flask import Request, Response

from ..protocol.errors import ApiError
from ..protocol.predictor import Predictor
from .predict_api import BATCHES, PredictEndpoints
from .responses import api_error_response, json_response
from .route import Doc, Route


class KServeV1Endpoints:
    """The V1 handlers, over the service's own prediction handler."""

    def __init__(self, predictor: Predictor, own: PredictEndpoints) -> None:
        self.predictor = predictor
        self.own = own

    def routes(self) -> list[Route]:
        """/v1/models/<name> and /v1/models/<name>:predict."""
        errors = (400, 404, 413, 415, 422, 500)
        return [
            Route(
                "/v1/models/<model:name>",
                ("GET",),
                self.model,
                doc=Doc(("ModelReady",), (404, 503), not_ready=True),
            ),
            Route(
                "/v1/models/<model:name>:predict",
                ("POST",),
                self.predict,
                True,
                Doc(BATCHES, errors, body=("Batch",), query=True),
            ),
        ]

    def model(self, req: Request, name: str) -> Response:
        """KServe V1: whether the model is ready."""
        unknown = self.predictor.unknown(name)
        if unknown is not None:
            return api_error_response(ApiError(404, unknown))
        ready = self.predictor.ready()
        return json_response({"name": name, "ready": ready}, 200 if ready else 503)

    def predict(self, req: Request, name: str) -> Response:
        """KServe V1: {"instances": [...]} -> {"predictions": [...]}, as POST /predict."""
        unknown = self.predictor.unknown(name)
        if unknown is not None:
            return api_error_response(ApiError(404, unknown))
        return self.own.predict(req, batch_only=True)
