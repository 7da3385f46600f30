"""Per-request bookkeeping shared by the service and the function: ids, metrics, request logs.

begin() runs before a handler and finish() after it, whichever target routed the request:
dispatch.py calls both, for the blueprint and for the function alike.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from flask import Request, Response

from ..runtime import metrics
from ..runtime.logs import RequestContext, request_context

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_CLOUD_TRACE = re.compile(r"([0-9a-fA-F]{32})(?:/([0-9]{1,20}))?(?:;o=([01]))?")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Observation(NamedTuple):
    """What begin() learnt that finish() needs: the route's rule, the clock, the ids."""

    route: str
    started: float
    context: RequestContext


def trace_of(environ: Mapping[str, Any]) -> tuple[str | None, str | None, bool]:
    """Trace id, span id (16 hex digits) and sampled flag from W3C or Cloud Trace headers."""
    traceparent = _TRACEPARENT.fullmatch(environ.get("HTTP_TRACEPARENT", "").strip())
    if traceparent:
        trace_id, span_id, flags = traceparent.groups()
        if trace_id.strip("0") and span_id.strip("0"):
            return trace_id, span_id, bool(int(flags, 16) & 1)
    cloud = _CLOUD_TRACE.fullmatch(environ.get("HTTP_X_CLOUD_TRACE_CONTEXT", "").strip())
    if cloud and cloud.group(1).strip("0"):
        trace_id, span, sampled = cloud.groups()
        span_id = f"{int(span):016x}" if span and 0 < int(span) < 2**64 else None
        return trace_id.lower(), span_id, sampled == "1"
    return None, None, False


class Observer:
    """Request ids, trace context, metrics and the request log line, for one model.

    Runs twice per request, so it reads the WSGI environ directly rather than through
    werkzeug's header views, and keeps each labelled metric child once looked up.
    """

    def __init__(self, model_version: str, access_log: bool) -> None:
        self.model_version = model_version
        self.access_log = access_log
        self._children: dict[tuple[str, str, int], Any] = {}

    def begin(self, request: Request, route: str, predicting: bool) -> Observation:
        """Start the clock and bind the ids every log line of this request will carry."""
        environ = request.environ
        supplied = environ.get("HTTP_X_REQUEST_ID")
        request_id = (
            supplied if supplied and _REQUEST_ID.fullmatch(supplied) else os.urandom(16).hex()
        )
        trace_id, span_id, sampled = (
            trace_of(environ)
            if "HTTP_TRACEPARENT" in environ or "HTTP_X_CLOUD_TRACE_CONTEXT" in environ
            else (None, None, False)
        )
        context = RequestContext(
            request_id,
            trace_id,
            span_id,
            sampled,
            self.model_version if predicting else None,
        )
        request_context.set(context)
        return Observation(route, time.perf_counter(), context)

    def finish(self, observation: Observation, request: Request, response: Response) -> Response:
        """Count and time the request, log it if asked, and return its id to the client."""
        route, started, context = observation
        elapsed = time.perf_counter() - started
        method = request.method if request.method in _METHODS else "OTHER"
        status = response.status_code
        count, duration = self._metrics(route, method, status)
        count.inc()
        duration.observe(elapsed)
        response.headers.add("X-Request-ID", context.request_id)  # no handler sets it
        if self.access_log or status >= 500:
            log.log(
                logging.ERROR if status >= 500 else logging.INFO,
                "%s %s %d",
                method,
                request.path,
                status,
                extra={
                    "httpRequest": {
                        "requestMethod": method,
                        "requestUrl": request.path,
                        "status": status,
                        "responseSize": str(response.content_length or 0),
                        "userAgent": request.user_agent.string,
                        "remoteIp": request.remote_addr,
                        "protocol": request.environ.get("SERVER_PROTOCOL"),
                        "latency": f"{elapsed:.6f}s",
                    }
                },
            )
        request_context.set(None)  # lines logged between requests belong to none
        return response

    def _metrics(self, route: str, method: str, status: int) -> Any:
        """The request counter and latency histogram for these labels (few: routes x methods)."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                metrics.REQUESTS.labels(route, method, str(status)),
                metrics.LATENCY.labels(route, method),
            )
        return children
