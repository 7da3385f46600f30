"""The pinned libraries' private APIs, trusted only on the versions they were tested with.

Two fast paths reach inside a library: the ONNX engine calls onnxruntime's session without the
public wrapper's per-call checks, and the metrics write prometheus_client's multiprocess files
themselves. Each asks `private_api_usable` first: on any other version of the library, or with
PUBLIC_APIS_ONLY=true, it takes the public API instead, as exact and slower, and says so once
in the log. Moving a pin in requirements.txt without moving TESTED fails the tests, so that
the private paths are looked at again.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import version

TESTED = {"onnxruntime": "1.32.0", "prometheus-client": "0.26.0"}
_TRUE = ("1", "true", "yes", "on")  # as webapp/runtime/settings.py's boolean(), which checks it


def private_api_usable(distribution: str, purpose: str) -> bool:
    """Whether `purpose` may use `distribution`'s private API here; logs why not."""
    installed = version(distribution)
    if os.environ.get("PUBLIC_APIS_ONLY", "").strip().lower() in _TRUE:
        reason = "PUBLIC_APIS_ONLY is set"
    elif installed != TESTED[distribution]:
        reason = f"it is {installed}, not {TESTED[distribution]}, the version this was tested with"
    else:
        return True
    logging.getLogger(__name__).info(
        "%s through %s's public API: %s", purpose, distribution, reason
    )
    return False
