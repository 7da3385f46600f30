"""One request, answered: observed, handed to its route's handler, any failure made JSON.

Both targets call these and nothing else: the blueprint's views (routes.py) and the Cloud
Function (gcf/main.py) once it has matched the request against the same route table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from flask import Request, Response
from werkzeug.exceptions import HTTPException, NotFound

from ..protocol.predictor import Predictor
from ..runtime import metrics
from ..runtime.settings import Settings
from .observe import Observer
from .responses import http_error_response, internal_error_response
from .route import Route, is_v2

# What a prediction route answers for a request it refuses as invalid, counted as such.
_REFUSALS = frozenset({400, 413, 415, 422})


class Service(NamedTuple):
    """What answering takes, assembled once per process (webapp.build_service): the model's
    predictor, the settings, the route table, the observer, and whether errors propagate to
    Flask's debugger (`flask run --debug`)."""

    predictor: Predictor
    settings: Settings
    routes: tuple[Route, ...]
    observer: Observer
    debug: bool = False


def dispatch(
    service: Service, request: Request, route: Route, values: Mapping[str, Any]
) -> Response:
    """Answer a request that `route` matched, with the URL `values` it matched."""
    if encoded_slash(request.environ):
        return refuse(service, request, NotFound())
    observation = service.observer.begin(request, route.rule, route.predicts)
    try:
        response = route.handler(request, **values)
    except HTTPException as exc:
        response = http_error_response(exc, route.v2)
    except Exception as exc:
        response = internal_error_response(exc, route.v2)
        if service.debug:  # `flask run --debug`: its debugger shows the error instead
            service.observer.finish(observation, request, response)
            raise
    if route.predicts and response.status_code in _REFUSALS:
        metrics.VALIDATION_FAILURES.labels(str(response.status_code)).inc()
    return service.observer.finish(observation, request, response)


def refuse(service: Service, request: Request, error: HTTPException) -> Response:
    """Answer a request no route takes (404, 405 with Allow, ...): observed like the rest.

    Under /v2, in the Open Inference Protocol's error shape, which its clients read. A path
    sent with an encoded slash is no route's, whatever its decoded form matches: a 404.
    """
    if encoded_slash(request.environ):
        error = NotFound()
    observation = service.observer.begin(request, "unmatched", predicting=False)
    v2 = is_v2(request.path)
    return service.observer.finish(observation, request, http_error_response(error, v2))


def encoded_slash(environ: Mapping[str, Any]) -> bool:
    """Whether the path the client sent holds an encoded slash (%2F, %2f).

    Servers decode the path before routing, so /v2/models/m%2Finfer would be routed as
    /v2/models/m/infer. The path as sent is RAW_URI under gunicorn (and functions-framework's
    gunicorn), REQUEST_URI and RAW_URI under werkzeug's server and test client.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    path = raw.partition("?")[0]
    return "%" in path and "%2f" in path.lower()
