"""Cloud Function entry point: `functions-framework --target predict --source gcf/main.py`.

A thin adapter: functions-framework sends every method and path to `predict`, which routes
the request through the service's own route table to the service's own handlers. The model is
loaded once per instance, at cold start, with the same checks as the service.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path

# As in gunicorn.conf.py: no collections while the stack is imported and the model loaded
# (~200,000 objects, almost no garbage), and what they made frozen out of reach afterwards.
gc.disable()

# The functions-framework console script puts only this file's folder on sys.path. In the
# repository the webapp package sits one level up; in the deployed bundle, beside this file.
_HERE = Path(__file__).resolve().parent
if not (_HERE / "webapp").is_dir() and str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

# As in gunicorn.conf.py: one BLAS/OpenMP thread, set before numpy is imported; and no client
# may say where the app is mounted (functions-framework's gunicorn trusts 127.0.0.1's
# SCRIPT_NAME header by default, and answers a mismatched one with an HTML 500).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("FORWARDED_ALLOW_IPS", "")

from flask import Request, Response, current_app, has_app_context  # noqa: E402
from werkzeug.exceptions import HTTPException  # noqa: E402
from werkzeug.routing import Map, Rule  # noqa: E402

from webapp import build_service  # noqa: E402
from webapp.api import ROUTES  # noqa: E402
from webapp.errors import http_error_response, internal_error_response  # noqa: E402
from webapp.logs import configure_logging  # noqa: E402
from webapp.model import ArtifactError  # noqa: E402
from webapp.settings import ConfigError  # noqa: E402

configure_logging(os.environ.get("LOG_LEVEL", "INFO"), os.environ.get("GOOGLE_CLOUD_PROJECT"))
try:
    service = build_service(os.environ)
except (ArtifactError, ConfigError) as exc:
    logging.getLogger(__name__).critical("refusing to start: %s", exc)
    raise SystemExit(1) from None
finally:
    gc.freeze()
    gc.enable()

# functions-framework answers what never reaches `predict` (its /robots.txt and /favicon.ico,
# requests its routing refuses) with HTML: make those JSON errors of our one shape too. This
# module runs inside its app's context, so current_app is functions-framework's app here.
if has_app_context():
    current_app.register_error_handler(
        HTTPException, lambda exc: _unread_body_stays_unread(http_error_response(exc))
    )

# The service's routes, plus POST at the function's root: its URL is the prediction endpoint.
url_map = Map(
    [Rule(r.rule, methods=r.methods, endpoint=r.endpoint) for r in ROUTES]
    + [Rule("/", methods=["POST"], endpoint="predict")],
)

# Bound once: matching needs only the path and method (no host or SCRIPT_NAME rules).
routes = url_map.bind("function")


def predict(request: Request) -> Response:
    """Answer any request exactly as the service would, 404 and 405 included."""
    try:
        rule, values = routes.match(request.path, request.method, return_rule=True)
    except HTTPException as exc:
        service.observer.begin(request, "unmatched", predicting=False)
        response = http_error_response(exc)
    else:
        service.observer.begin(request, rule.rule, predicting=rule.endpoint == "predict")
        try:
            response = service.handler(rule.endpoint)(request, **values)
        except Exception as exc:
            response = internal_error_response(exc)
    return _unread_body_stays_unread(service.observer.finish(request, response))


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
