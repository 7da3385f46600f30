"""The Cloud Function's side of the seam: functions-framework sends every method and path to
one function, which matches the request against the service's own route table and hands it to
the same dispatch as the blueprint's views.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Request, Response
from flask import request as current_request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

from .dispatch import Service, dispatch, refuse
from .responses import Unsized, http_error_response
from .route import is_v2, static_answers
from .routes import CONVERTERS


class Function:
    """The function's handler for a service: its routes, plus POST at the function's root (its
    URL is the prediction endpoint)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        predict = next(route for route in service.routes if route.rule == "/predict")
        self.routes = [*service.routes, predict._replace(rule="/", doc=None)]
        # Bound once: matching needs only the path and method (no host or SCRIPT_NAME rules).
        rules = [
            Rule(r.rule, methods=r.methods, endpoint=i, merge_slashes=False)
            for i, r in enumerate(self.routes)
        ]
        self.matcher = Map(rules, converters=CONVERTERS).bind("function")
        self.static = static_answers(rules, self.matcher.match)

    def __call__(self, request: Request) -> Response:
        """Answer any request exactly as the service would, 404 and 405 included."""
        try:
            number, values = self.route_of(request.path, request.method)
        except HTTPException as exc:
            return unread_body_stays_unread(refuse(self.service, request, exc))
        route = self.routes[number]
        return unread_body_stays_unread(dispatch(self.service, request, route, values))

    def route_of(self, path: str, method: str) -> tuple[int, Mapping[str, Any]]:
        """The route's number and URL values, as werkzeug's matcher finds them; its
        HTTPException (404, 405, a redirect) where it finds none."""
        found = self.static.get((path, method))
        return (found[0], dict(found[1])) if found else self.matcher.match(path, method)

    @staticmethod
    def framework_refusal(exc: HTTPException) -> Response:
        """What functions-framework answers itself (its /robots.txt and /favicon.ico, requests
        its routing refuses, such as a path with a newline), in the service's JSON error shape
        instead of its HTML: under /v2 the Open Inference Protocol's, as the service answers."""
        return unread_body_stays_unread(http_error_response(exc, is_v2(current_request.path)))


def unread_body_stays_unread(response: Response) -> Response:
    """Mark the response as streamed, which tells functions-framework not to read the body.

    After every non-streamed response functions-framework reads the whole request body into
    memory (its `read_request` hook); a 100 MB body we refused with a 413 would be read anyway.
    The length stays explicit, so clients still get a Content-Length, not chunked encoding.
    A body of bytes set whole (every answer of the service's) keeps its chunks, unsized, and
    FixedResponse sends it without werkzeug's copy of its headers.
    """
    if type(response.response) is list and "Content-Length" in response.headers:
        response.response = Unsized(response.response)
        return response
    body = response.get_data()
    response.response = iter([body])
    response.headers["Content-Length"] = str(len(body))
    return response
