"""One JSON error shape for every failure, for the service, the function and the worker alike.

    {"code": 422, "status": "Unprocessable Entity", "message": "...", "errors": {...}}

`errors` names the offending fields and appears on validation failures only. Messages are
fixed texts: no request data, no exception text, no traceback ever reaches a client. The /v2
routes answer in the Open Inference Protocol's own shape instead, `{"error": "..."}`, which
its clients read (v2=True below); its messages name the input or field at fault.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from .jsonio import dumps


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
