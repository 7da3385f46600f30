"""The API: every route's logic, written once, and the blueprint that serves it.

PredictionService's handlers take a flask.Request and return a Response, and use neither
`current_app` nor `abort()`, so the Cloud Function (gcf/main.py) can call exactly the same
code with the request functions-framework hands it. ROUTES is the one route table both use.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from flask import Blueprint, Request, Response, current_app, request
from marshmallow import ValidationError
from werkzeug import wsgi

from . import docs, jsonio, memory, metrics
from .errors import ApiError, api_error_response
from .model import ArtifactError, Model
from .observe import Observer
from .schemas import FastAcceptor, PredictQuery, batch_schema, instance_schema
from .settings import Settings

log = logging.getLogger(__name__)

_READ_CHUNK = 64 * 1024


class Route(NamedTuple):
    """A URL rule, its methods and the PredictionService method that handles it."""

    rule: str
    methods: tuple[str, ...]
    endpoint: str


ROUTES = (
    Route("/health", ("GET",), "health"),
    Route("/ready", ("GET",), "ready"),
    Route("/metadata", ("GET",), "metadata"),
    Route("/predict", ("POST",), "predict"),
    Route("/metrics", ("GET",), "metrics"),
    Route("/openapi.json", ("GET",), "openapi"),
    Route("/docs", ("GET",), "docs"),
    Route("/docs/<name>", ("GET",), "docs_asset"),
)


def json_response(body: Any, status: int = 200) -> Response:
    """A compact JSON response; jsonify would need an app context the function lacks."""
    return Response(jsonio.dumps(body), status, mimetype="application/json")


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The whole body, refused (413) as soon as it is known to exceed `limit` bytes.

    With a Content-Length, exactly that many bytes must arrive; without one (chunked), reading
    stops one byte past the limit. Broken framing is the client's fault: a 400, never a 500.
    With a length, the server's own stream is read, never past it; without one, werkzeug's
    get_input_stream decides, as Request.stream would, whether the stream ends by itself.
    """
    expected = wsgi.get_content_length(environ)
    if expected is not None and expected > limit:
        raise ApiError(413, "Request body too large.")
    if expected is None:
        wanted, stream = limit + 1, wsgi.get_input_stream(environ)
    else:
        wanted, stream = expected, environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    try:
        while size < wanted:
            chunk = stream.read(min(_READ_CHUNK, wanted - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except Exception as exc:  # the server's chunked-encoding parser, a dropped connection
        log.info("unreadable request body: %s", type(exc).__name__)
        raise ApiError(400, "Request body could not be read.") from None
    if size > limit:
        raise ApiError(413, "Request body too large.")
    if expected is not None and size < expected:
        raise ApiError(400, "Request body is shorter than its Content-Length.")
    return b"".join(chunks)


def parse_json(req: Request, limit: int) -> Any:
    """The request's JSON document: 415 for another content type, 413 too big, 400 malformed."""
    environ = req.environ  # read directly: werkzeug's header views cost more than the checks
    if environ.get("CONTENT_TYPE") != "application/json":  # else parse it: parameters, case
        charset = req.mimetype_params.get("charset", "utf-8").lower()
        if not req.is_json or charset not in ("utf-8", "utf8"):
            raise ApiError(415, "Content-Type must be application/json (UTF-8).")
    if environ.get("HTTP_CONTENT_ENCODING", "identity").strip().lower() != "identity":
        raise ApiError(415, "Content-Encoding is not supported: send the JSON uncompressed.")
    codings = environ.get("HTTP_TRANSFER_ENCODING", "chunked").lower().replace(" ", "")
    if codings not in ("chunked", ""):
        raise ApiError(400, "Transfer-Encoding other than chunked is not supported.")
    data = read_body(environ, limit)
    if not data.strip():
        raise ApiError(400, "Request body is empty.")
    try:
        return jsonio.loads(data)
    except jsonio.JSONDecodeError as exc:
        raise ApiError(400, str(exc)) from None


class PredictionService:
    """The handlers for a loaded model; one instance per process, built at start-up."""

    def __init__(self, model: Model, settings: Settings) -> None:
        self.model = model
        self.settings = settings
        self.instance_schema = instance_schema(model.features)
        self.batch_schema = batch_schema(model.features, settings.max_batch_size)
        self.fast = FastAcceptor(model.features, settings.max_batch_size)
        self.query_schema = PredictQuery()
        self.observer = Observer(model.manifest["version"], settings.access_log)
        self._predicted = {
            class_id: metrics.PREDICTIONS.labels(label) for class_id, label in model.labels.items()
        }
        self._checked_pid: int | None = None
        self._spec: dict[str, Any] | None = None
        metrics.MODEL_INFO.labels(
            model.manifest["name"], model.manifest["version"], model.sha256
        ).set(1)

    def handler(self, endpoint: str) -> Callable[..., Response]:
        """The bound handler for a ROUTES endpoint name; it takes the request and URL values."""
        handler: Callable[..., Response] = getattr(self, endpoint)
        return handler

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
        """The OpenAPI document, generated from the validating schemas on first use."""
        if self._spec is None:
            # Imported here: apispec is needed by this route only, not on the cold-start path.
            from .openapi import build_spec

            self._spec = build_spec(self.model, self.instance_schema, self.batch_schema)
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
        if (wsgi.get_content_length(req.environ) or 0) > memory.LARGE_BODY:  # temporaries gone
            memory.release_freed_memory()
        return response

    def _predict(self, req: Request) -> Response:
        try:
            query = self._query(req)
            document = parse_json(req, self.settings.max_content_length)
            batch = isinstance(document, dict) and "instances" in document
            if batch:
                matrix = self.fast.batch(document)
                if matrix is None:  # invalid, most likely: marshmallow says where
                    rows = self._load(self.batch_schema, document)["instances"]
                    matrix = np.asarray(rows, dtype=np.float64)
            else:
                matrix = self.fast.instance(document)
                if matrix is None:
                    loaded = self._load(self.instance_schema, document)
                    matrix = np.array([[loaded[name] for name in self.model.feature_names]])
        except ApiError as exc:
            metrics.VALIDATION_FAILURES.labels(str(exc.status)).inc()
            return api_error_response(exc)

        class_ids = self.model.predict(matrix)
        metrics.BATCH_SIZE.observe(len(class_ids))
        if len(class_ids) == 1:  # most requests: skip the Counter
            self._predicted[class_ids[0]].inc()
        else:
            for class_id, count in Counter(class_ids).items():
                self._predicted[class_id].inc(count)
        if query["probabilities"]:
            results: list[Any] = [
                {"prediction": cid, "label": self.model.labels[cid], "probabilities": proba}
                for cid, proba in zip(class_ids, self.model.predict_proba(matrix), strict=True)
            ]
        else:
            results = class_ids
        if batch:
            return json_response({"predictions": results})
        if query["probabilities"]:
            return json_response(results[0])
        return json_response({"prediction": results[0]})

    def _query(self, req: Request) -> Any:
        """The validated query parameters; most requests have none, and skip the schema."""
        if not req.query_string:  # cheaper than parsing an empty req.args
            return {"probabilities": False}
        repeated = {k: ["Given more than once."] for k, v in req.args.lists() if len(v) > 1}
        if repeated:
            raise ApiError(422, "Request failed validation.", repeated)
        return self._load(self.query_schema, req.args.to_dict())

    @staticmethod
    def _load(schema: Any, document: Any) -> Any:
        try:
            return schema.load(document)
        except ValidationError as exc:
            raise ApiError(422, "Request failed validation.", exc.messages) from None


bp = Blueprint("api", __name__)


def current_request() -> Request:
    """flask.request itself: each attribute read through the proxy costs a context lookup."""
    return request._get_current_object()  # type: ignore[attr-defined]


def _view(endpoint: str) -> Callable[..., Response]:
    def view(**values: Any) -> Response:
        service: PredictionService = current_app.extensions["prediction_service"]
        return service.handler(endpoint)(current_request(), **values)

    view.__name__ = endpoint
    return view


for _route in ROUTES:
    bp.add_url_rule(
        _route.rule,
        endpoint=_route.endpoint,
        view_func=_view(_route.endpoint),
        methods=list(_route.methods),
        provide_automatic_options=False,
    )
