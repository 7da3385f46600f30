"""Cloud Function entry point: `functions-framework --target predict --source gcf/main.py`.

A thin adapter: functions-framework sends every method and path to `predict`, which routes
the request through the service's own route table to the service's own handlers. The model is
loaded once per instance, at cold start, with the same checks as the service.
"""

from __future__ import annotations

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
from werkzeug.exceptions import HTTPException  # noqa: E402

from webapp import function_handler  # noqa: E402

_handler = function_handler(os.environ)
functions_framework.errorhandler(HTTPException)(_handler.framework_refusal)


def predict(request: Request) -> Response:
    """Answer any request exactly as the service would, 404 and 405 included."""
    return _handler(request)
