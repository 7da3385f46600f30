"""schemathesis hooks for tests/test_fuzz.py: cases the OpenAPI document cannot describe."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    """Leave out a batch that gives `probabilities` both in its query and in its `parameters`:
    where the two disagree it is refused (422), by a rule JSON Schema cannot state across them."""
    query = case.query or {}
    parameters = case.body.get("parameters") if isinstance(case.body, dict) else None
    return not ("probabilities" in query and isinstance(parameters, dict) and parameters)
