"""The Open Inference Protocol (V2: KServe, Triton, MLServer; docs/protocols.md): HTTP only.

<name> in a path is the manifest's name, <version> its version. The tensors' codec is v2.py;
their values pass the same validation as /predict's instances (instances.py).
"""

from __future__ import annotations

import numpy as np
from flask import Request, Response
from marshmallow import Schema, ValidationError

from ..protocol import jsonio, v2
from ..protocol.errors import ApiError
from ..protocol.instances import Instances
from ..protocol.predictor import Predictor
from ..runtime import tuning
from ..runtime.settings import Settings
from .httpio import json_size, parse_infer
from .responses import (
    FixedResponse,
    api_error_response,
    infer_error_response,
    json_response,
)
from .route import Doc, Route

_ERROR = "InferError"  # the protocol's own error shape
_MODEL = "/v2/models/<name>"
_VERSION = "/v2/models/<name>/versions/<version>"


class OpenInferenceEndpoints:
    """The V2 handlers, for one predictor."""

    def __init__(self, predictor: Predictor, settings: Settings) -> None:
        self.predictor = predictor
        self.model = predictor.model
        self.max_body = settings.max_content_length
        self.max_rows = settings.max_batch_size
        self.instances = Instances(predictor.model, settings.max_batch_size)
        self.metadata = v2.model_metadata(predictor.model)
        self.requests = v2.InferRequests(predictor.model)

    def routes(self) -> list[Route]:
        """The server's and the model's metadata and readiness, and inference."""
        metadata = Doc(("ModelMetadata",), (404,), error=_ERROR)
        ready = Doc(("ModelReady",), (404, 503), error=_ERROR, not_ready=True)
        infer = Doc(
            ("InferResponse",),
            (400, 404, 413, 415, 500),
            body=("InferRequest",),
            error=_ERROR,
            binary=True,
        )
        return [
            Route("/v2", ("GET",), self.server, doc=Doc(("ServerMetadata",), error=_ERROR)),
            Route("/v2/health/live", ("GET",), self.live, doc=Doc(("Live",), error=_ERROR)),
            Route(
                "/v2/health/ready",
                ("GET",),
                self.ready,
                doc=Doc(("Ready",), (503,), error=_ERROR, not_ready=True),
            ),
            Route(_MODEL, ("GET",), self.model_metadata, doc=metadata),
            Route(f"{_MODEL}/ready", ("GET",), self.model_ready, doc=ready),
            Route(f"{_MODEL}/infer", ("POST",), self.infer, True, infer),
            Route(_VERSION, ("GET",), self.model_metadata, doc=metadata),
            Route(f"{_VERSION}/ready", ("GET",), self.model_ready, doc=ready),
            Route(f"{_VERSION}/infer", ("POST",), self.infer, True, infer),
        ]

    def schemas(self) -> dict[str, Schema]:
        """The request schemas this protocol's documentation names."""
        return {"InferRequest": self.requests.schema}

    def server(self, req: Request) -> Response:
        """Open Inference Protocol: the server's name, version and extensions."""
        return json_response(v2.server_metadata())

    def live(self, req: Request) -> Response:
        """Open Inference Protocol: liveness, the process answers."""
        return json_response({"live": True})

    def ready(self, req: Request) -> Response:
        """Open Inference Protocol: readiness, the model's self-check has passed."""
        ready = self.predictor.ready()
        return json_response({"ready": ready}, 200 if ready else 503)

    def model_metadata(self, req: Request, name: str, version: str | None = None) -> Response:
        """Open Inference Protocol: the model's inputs and outputs."""
        unknown = self.predictor.unknown(name, version)
        if unknown is not None:
            return infer_error_response(404, unknown)
        return json_response(self.metadata)

    def model_ready(self, req: Request, name: str, version: str | None = None) -> Response:
        """Open Inference Protocol: whether the model is ready."""
        unknown = self.predictor.unknown(name, version)
        if unknown is not None:
            return infer_error_response(404, unknown)
        ready = self.predictor.ready()
        return json_response({"name": name, "ready": ready}, 200 if ready else 503)

    def infer(self, req: Request, name: str, version: str | None = None) -> Response:
        """Open Inference Protocol: input tensors in, predictions and probabilities out."""
        unknown = self.predictor.unknown(name, version)
        if unknown is not None:
            return infer_error_response(404, unknown)
        try:
            response = self._infer(req)
        except ApiError as exc:  # the body itself: 400, 413 or 415
            response = api_error_response(exc, v2=True)
        except v2.TensorError as exc:
            response = infer_error_response(400, str(exc))
        tuning.release(json_size(req.environ))  # its temporaries are gone
        return response

    def _infer(self, req: Request) -> Response:
        document, blob = parse_infer(req, self.max_body)
        request = self.requests.parse(document)
        outputs = v2.requested_outputs(request, self.model)
        instances, matrix = v2.read_inputs(request, blob, self.model, self.max_rows)
        try:
            if isinstance(instances, np.ndarray):  # the binary matrix, checked as one array
                rows = self.instances.tensor(instances)
            else:
                rows, _ = self.instances.batch({"instances": instances})
        except ValidationError as exc:  # marshmallow says where
            names = self.model.feature_names
            raise v2.TensorError(v2.value_errors(exc.messages, matrix, names)) from None
        predictions = self.predictor.predict_array(rows)
        wanted = any(output == v2.PROBA for output, _ in outputs)
        probabilities = self.predictor.predict_proba(rows) if wanted else None
        body, binary = v2.answer(self.model, request, outputs, predictions, probabilities)
        if not binary:
            return json_response(body)
        header = jsonio.dumps(body)
        length = {"Inference-Header-Content-Length": str(len(header))}
        return FixedResponse(
            header + binary, 200, headers=length, mimetype="application/octet-stream"
        )
