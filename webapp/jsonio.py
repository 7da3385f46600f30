"""Strict JSON in, compact JSON out.

Stricter than json.loads: UTF-8 only, no NaN or Infinity literals, no duplicate keys (which
json.loads silently resolves to the last one), and nesting depth that cannot exhaust the stack.
"""

from __future__ import annotations

import json
from typing import Any


class JSONDecodeError(ValueError):
    """The body is not strict JSON; the message is fixed text safe to show a client."""


def _reject_constant(name: str) -> Any:
    raise JSONDecodeError("NaN and Infinity are not JSON.")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise JSONDecodeError("Duplicate key in a JSON object.")
    return obj


_decoder = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_reject_constant)


def loads(data: bytes) -> Any:
    """Parse a request body, raising JSONDecodeError with a client-safe message."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise JSONDecodeError("Request body is not valid UTF-8.") from None
    try:
        return _decoder.decode(text)
    except JSONDecodeError:
        raise
    except RecursionError:
        raise JSONDecodeError("JSON nesting is too deep.") from None
    except ValueError:  # json.JSONDecodeError, and int() refusing a number of 4,300+ digits
        raise JSONDecodeError("Request body is not valid JSON.") from None


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; refuses NaN rather than emitting invalid JSON."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")
