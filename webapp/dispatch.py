"""One request, answered: observed, handed to its route's handler, any failure made JSON.

Both targets call these and nothing else: the blueprint's views (routes.py) and the Cloud
Function (gcf/main.py) once it has matched the request against the same route table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Request, Response
from werkzeug.exceptions import HTTPException, NotFound

from .errors import http_error_response, internal_error_response

if TYPE_CHECKING:
    from .routes import Route
    from .service import PredictionService


def dispatch(
    service: PredictionService, request: Request, route: Route, values: Mapping[str, Any]
) -> Response:
    """Answer a request that `route` matched, with the URL `values` it matched."""
    if encoded_slash(request.environ):
        return refuse(service, request, NotFound())
    observation = service.observer.begin(request, route.rule, route.predicts)
    try:
        response = route.handler(service, request, **values)
    except HTTPException as exc:
        response = http_error_response(exc, route.v2)
    except Exception as exc:
        response = internal_error_response(exc, route.v2)
        if service.debug:  # `flask run --debug`: its debugger shows the error instead
            service.observer.finish(observation, request, response)
            raise
    return service.observer.finish(observation, request, response)


def refuse(service: PredictionService, request: Request, error: HTTPException) -> Response:
    """Answer a request no route takes (404, 405 with Allow, ...): observed like the rest.

    Under /v2, in the Open Inference Protocol's error shape, which its clients read. A path
    sent with an encoded slash is no route's, whatever its decoded form matches: a 404.
    """
    if encoded_slash(request.environ):
        error = NotFound()
    observation = service.observer.begin(request, "unmatched", predicting=False)
    v2 = is_v2(request.path)
    return service.observer.finish(observation, request, http_error_response(error, v2))


def is_v2(path: str) -> bool:
    """Whether a path is the Open Inference Protocol's (/v2 and below)."""
    return path == "/v2" or path.startswith("/v2/")


def encoded_slash(environ: Mapping[str, Any]) -> bool:
    """Whether the path the client sent holds an encoded slash (%2F, %2f).

    Servers decode the path before routing, so /v2/models/m%2Finfer would be routed as
    /v2/models/m/infer. The path as sent is RAW_URI under gunicorn (and functions-framework's
    gunicorn), REQUEST_URI and RAW_URI under werkzeug's server and test client.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    path = raw.partition("?")[0]
    return "%" in path and "%2f" in path.lower()
