"""Cloud Function entry point: `functions-framework --target predict --source <this file>`.

`sklearn-serve function` runs it from the installed package, `sklearn-serve bundle` copies it
to the upload's main.py, and the repository's gcf/main.py hands over to it. A thin adapter:
functions-framework sends every method and path to `predict`, which routes the request
through the service's own route table to the service's own handlers. The model is loaded once
per instance, at cold start, with the same checks as the service.

functions-framework loads this file by path, as a module of its own ("main"): so the imports
name the package in full, and it lives in a folder of its own (which functions-framework puts
on sys.path).
"""

from __future__ import annotations

import os

from webapp.runtime import tuning

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
