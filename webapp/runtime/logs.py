"""Logging as Cloud Logging reads it: one JSON object per line, with the request's ids.

Entry points call configure_logging() once, before the app exists (through cloud.py, which
learns the project); gunicorn.conf.py gives gunicorn's own error and access lines the same
formatter. The request context (request id, trace, span, model version) lives in a ContextVar
set by the observability layer, so every line logged during a request carries it. Errors are
written as Error Reporting reads them, so it groups them.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, NamedTuple

from pythonjsonlogger.json import JsonFormatter

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug's dev server colours its request lines
TRACE = "logging.googleapis.com/trace"
SPAN = "logging.googleapis.com/spanId"
SAMPLED = "logging.googleapis.com/trace_sampled"
ERROR_EVENT = "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
DEFAULT_SERVICE = "sklearn-serve"  # Error Reporting's service, where the platform names none


class RequestContext(NamedTuple):
    """What every log line of one request carries (a tuple: built on every request)."""

    request_id: str
    trace_id: str | None = None
    span_id: str | None = None
    sampled: bool = False
    model_version: str | None = None


request_context: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)


class CloudLoggingFormatter(JsonFormatter):
    """JSON lines with `severity`, `message`, trace fields and `httpRequest` where known."""

    def __init__(
        self, project: str | None = None, service_context: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(
            "%(message)s %(name)s",
            rename_fields={"levelname": "severity"},
            timestamp="time",
        )
        self.project = project
        self.service_context = dict(service_context or {"service": DEFAULT_SERVICE})

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["severity"] = record.levelname
        if record.name == "werkzeug":
            log_data["message"] = _ANSI_STYLE.sub("", str(log_data.get("message", "")))
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            log_data["httpRequest"] = _gunicorn_http_request(record.args)
        if record.levelno >= logging.ERROR and (record.exc_info or record.name == "gunicorn.error"):
            self._error_event(log_data, record)
        context = request_context.get()
        if context is None:
            return
        log_data["requestId"] = context.request_id
        if context.trace_id and self.project:
            log_data[TRACE] = f"projects/{self.project}/traces/{context.trace_id}"
            log_data[SAMPLED] = context.sampled
        if context.span_id:
            log_data[SPAN] = context.span_id
        if context.model_version:
            log_data["modelVersion"] = context.model_version

    def _error_event(self, log_data: dict[str, Any], record: logging.LogRecord) -> None:
        """Mark an error for Error Reporting, which groups entries by the traceback in
        `message`, or, for gunicorn's own errors (a worker killed, timed out), by where they
        were logged."""
        log_data["@type"] = ERROR_EVENT
        log_data["serviceContext"] = self.service_context
        traceback = log_data.pop("exc_info", None)
        if traceback:
            log_data["message"] = f"{log_data.get('message', '')}\n{traceback}"
        else:
            log_data["context"] = {
                "reportLocation": {
                    "filePath": record.pathname,
                    "lineNumber": record.lineno,
                    "functionName": record.funcName,
                }
            }


def _gunicorn_http_request(atoms: Mapping[str, Any]) -> dict[str, Any]:
    """Cloud Logging's HttpRequest from gunicorn's access-log atoms."""
    return {
        "requestMethod": atoms.get("m"),
        "requestUrl": atoms.get("U"),
        "status": int(atoms.get("s") or 0),
        "responseSize": str(atoms.get("B") or 0),
        "userAgent": atoms.get("a"),
        "remoteIp": atoms.get("h"),
        "protocol": atoms.get("H"),
        "latency": f"{float(atoms.get('L') or 0):.6f}s",
    }


def parse_level(level: str) -> str:
    """A valid LOG_LEVEL name, or SystemExit naming the setting."""
    name = level.strip().upper()
    if name not in LEVELS:
        raise SystemExit(f"LOG_LEVEL must be one of {', '.join(LEVELS)}, got {level!r}")
    return name


def configure_logging(
    level: str = "INFO",
    project: str | None = None,
    service_context: Mapping[str, str] | None = None,
) -> None:
    """Send every record to stderr as one JSON line, at `level` (LOG_LEVEL); Python's warnings
    too (logger "py.warnings"), which would otherwise be lines of plain text among them."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CloudLoggingFormatter(project, service_context))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(parse_level(level))
    logging.captureWarnings(True)
