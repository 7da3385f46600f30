"""The baseline for the Cloud Function: a plain function under functions-framework's defaults.

`functions-framework --target plain --source bench/plain_function.py`, exactly as the project's
function is served. The function can at best match it.
"""

from flask import Request


def plain(request: Request) -> dict[str, int]:
    """Parse the body as the function must, then answer a constant."""
    request.get_json()
    return {"prediction": 0}
