"""Cloud Function entry point: `functions-framework --target predict --source gcf/main.py`.

A thin adapter: functions-framework sends every method and path to `predict`, which routes
the request through the service's own route table to the service's own handlers. The model is
loaded once per instance, at cold start, with the same checks as the service.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

# The functions-framework console script puts only this file's folder on sys.path. In the
# repository the webapp package sits one level up; in the deployed bundle, beside this file.
_HERE = Path(__file__).resolve().parent
if not (_HERE / "webapp").is_dir() and str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

from webapp.runtime import tuning  # noqa: E402

tuning.prepare()  # before numpy and the model load

# No client may say where the app is mounted: functions-framework's gunicorn trusts
# 127.0.0.1's SCRIPT_NAME header by default, and answers a mismatched one with an HTML 500.
os.environ.setdefault("FORWARDED_ALLOW_IPS", "")

import functions_framework  # noqa: E402
from flask import Request, Response  # noqa: E402
from flask import request as current_request  # noqa: E402
from werkzeug.exceptions import HTTPException  # noqa: E402
from werkzeug.routing import Map, Rule  # noqa: E402

from webapp import build_service  # noqa: E402
from webapp.core.vocabulary import ArtifactError  # noqa: E402
from webapp.http.dispatch import dispatch, refuse  # noqa: E402
from webapp.http.responses import http_error_response  # noqa: E402
from webapp.http.route import is_v2  # noqa: E402
from webapp.http.routes import CONVERTERS  # noqa: E402
from webapp.runtime.cloud import setup_logging  # noqa: E402
from webapp.runtime.settings import ConfigError  # noqa: E402

setup_logging(os.environ)
try:
    service = build_service(os.environ)
except (ArtifactError, ConfigError) as exc:
    logging.getLogger(__name__).critical("refusing to start: %s", exc)
    raise SystemExit(1) from None
tuning.settle()

# The service's routes, plus POST at the function's root: its URL is the prediction endpoint.
_predict = next(route for route in service.routes if route.rule == "/predict")
_routes = [*service.routes, _predict._replace(rule="/", doc=None)]
# Bound once: matching needs only the path and method (no host or SCRIPT_NAME rules).
_rules = [
    Rule(r.rule, methods=r.methods, endpoint=i, merge_slashes=False) for i, r in enumerate(_routes)
]
_matcher = Map(_rules, converters=CONVERTERS).bind("function")


def predict(request: Request) -> Response:
    """Answer any request exactly as the service would, 404 and 405 included."""
    try:
        number, values = _matcher.match(request.path, request.method)
    except HTTPException as exc:
        return _unread_body_stays_unread(refuse(service, request, exc))
    return _unread_body_stays_unread(dispatch(service, request, _routes[number], values))


@functions_framework.errorhandler(HTTPException)
def _framework_refusal(exc: HTTPException) -> Response:
    """What functions-framework answers itself (its /robots.txt and /favicon.ico, requests its
    routing refuses, such as a path with a newline), in the service's JSON error shape instead
    of its HTML: under /v2 the Open Inference Protocol's, as the service answers there."""
    return _unread_body_stays_unread(http_error_response(exc, is_v2(current_request.path)))


def _unread_body_stays_unread(response: Response) -> Response:
    """Mark the response as streamed, which tells functions-framework not to read the body.

    After every non-streamed response functions-framework reads the whole request body into
    memory (its `read_request` hook); a 100 MB body we refused with a 413 would be read anyway.
    The length stays explicit, so clients still get a Content-Length, not chunked encoding.
    """
    body = response.get_data()
    response.response = iter([body])
    response.headers["Content-Length"] = str(len(body))
    return response
