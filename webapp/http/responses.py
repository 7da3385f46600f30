"""Flask responses: compact JSON answers, and every failure in the error shape (errors.py).

Built without an app context, so the Cloud Function (functions-framework's app) and the
service answer alike.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ..protocol import jsonio
from ..protocol.errors import ApiError, error_body

log = logging.getLogger(__name__)


class FixedResponse(Response):
    """A response of bytes whose headers werkzeug has nothing to fix when it is sent.

    werkzeug copies every response's headers as it is sent, looking for a Location to make
    absolute and a length to set or drop, and wraps the body in an iterator that closes it:
    6.7 µs of a single-row request, 1.8 here. A response of this service's own has its length
    and nothing to fix; one that has something (a HEAD, a status without a body, a Location, a
    close callback, a body other than set_data's list of bytes) is sent as werkzeug sends it.
    tests/unit/http/test_responses.py proves the two send the same.
    """

    def get_wsgi_response(self, environ: Any) -> Any:
        headers = self.headers.to_wsgi_list()  # a new list, as werkzeug's copy gives
        names = {name.lower() for name, _ in headers}  # one pass: Headers' `in` is one each
        status = self.status_code
        if (
            environ["REQUEST_METHOD"] == "HEAD"
            or not 200 <= status
            or status in (204, 304)
            or type(self.response) not in _CHUNKS
            or not all(type(chunk) is bytes for chunk in self.response)
            or self._on_close
            or "content-length" not in names
            or "location" in names
            or "content-location" in names
        ):
            return super().get_wsgi_response(environ)
        return self.response, self.status, headers


class Unsized(tuple[bytes, ...]):
    """A body's chunks that say no length: werkzeug (and so functions-framework) takes a
    response of them as streamed, and FixedResponse still sends them as they are."""

    __len__ = None  # type: ignore[assignment]


_CHUNKS = (list, Unsized)  # the bodies FixedResponse sends as they are

_MESSAGES = {
    404: "No such route.",
    405: "Method not allowed on this route.",
    413: "Request body too large.",
}


def json_response(body: Any, status: int = 200) -> Response:
    """A compact JSON response; jsonify would need an app context the function lacks."""
    return FixedResponse(jsonio.dumps(body), status, mimetype="application/json")


def error_response(
    status: int, message: str, errors: Any = None, headers: dict[str, str] | None = None
) -> Response:
    """The JSON error response every failure is answered with."""
    return FixedResponse(
        error_body(status, message, errors), status, headers=headers, mimetype="application/json"
    )


def infer_error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """A failure on a /v2 route, in the Open Inference Protocol's shape: {"error": "..."}."""
    body = error_body(status, message, v2=True)
    return FixedResponse(body, status, headers=headers, mimetype="application/json")


def api_error_response(exc: ApiError, v2: bool = False) -> Response:
    """Render an ApiError; a 413 also closes the connection so its body is never drained."""
    headers = {"Connection": "close"} if exc.status == 413 else None
    if v2:
        return infer_error_response(exc.status, exc.message, headers)
    return error_response(exc.status, exc.message, exc.errors, headers)


def http_error_response(exc: HTTPException, v2: bool = False) -> Response:
    """Render a routing or protocol error (404, 405, 413, ...), keeping headers such as Allow."""
    status = exc.code or 500
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        # werkzeug lists them in set order, which varies between processes
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    if status == 413:
        headers["Connection"] = "close"
    message = _MESSAGES.get(status, HTTPStatus(status).description)
    if v2:
        return infer_error_response(status, message, headers)
    return error_response(status, message, headers=headers)


def internal_error_response(exc: BaseException, v2: bool = False) -> Response:
    """Log the failure with its traceback, answer a 500 that reveals nothing."""
    log.error("unhandled %s", type(exc).__name__, exc_info=exc)
    if v2:
        return infer_error_response(500, "Internal server error.")
    return error_response(500, "Internal server error.")
