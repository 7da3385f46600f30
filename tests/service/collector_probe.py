"""A WSGI app reporting the cyclic garbage collector's state, for tests/service/test_servers.py.

Served by `gunicorn -c gunicorn.conf.py tests.service.collector_probe:app`: the project's
settings and hooks, with this app in place of the service's.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = json.dumps({"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
