"""One JSON error shape for every failure, for the service and the function alike.

    {"code": 422, "status": "Unprocessable Entity", "message": "...", "errors": {...}}

`errors` names the offending fields and appears on validation failures only. Messages are
fixed texts: no request data, no exception text, no traceback ever reaches a client. The /v2
routes answer in the Open Inference Protocol's own shape instead, `{"error": "..."}`, which
its clients read (v2=True below); its messages name the input or field at fault.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from .jsonio import dumps

log = logging.getLogger(__name__)

_MESSAGES = {
    404: "No such route.",
    405: "Method not allowed on this route.",
    413: "Request body too large.",
}


class ApiError(Exception):
    """A client error with its status, fixed message and optional field errors."""

    def __init__(self, status: int, message: str, errors: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def error_body(status: int, message: str, errors: Any = None, v2: bool = False) -> bytes:
    """The JSON body every failure is answered with (`v2`: the Open Inference Protocol's)."""
    if v2:
        return dumps({"error": message})
    body: dict[str, Any] = {
        "code": status,
        "status": HTTPStatus(status).phrase,
        "message": message,
    }
    if errors is not None:
        body["errors"] = errors
    return dumps(body)


def error_response(
    status: int, message: str, errors: Any = None, headers: dict[str, str] | None = None
) -> Response:
    """The JSON error response every failure is answered with."""
    return Response(
        error_body(status, message, errors), status, headers=headers, mimetype="application/json"
    )


def infer_error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """A failure on a /v2 route, in the Open Inference Protocol's shape: {"error": "..."}."""
    body = error_body(status, message, v2=True)
    return Response(body, status, headers=headers, mimetype="application/json")


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
