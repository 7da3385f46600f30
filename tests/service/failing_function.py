"""The Cloud Function with a failure injected into its model, served as Cloud Functions serves
gcf/main.py: `functions-framework --target predict --source tests/service/failing_function.py`."""

import sys
from pathlib import Path
from typing import Any

# functions-framework puts only this file's folder on sys.path: the repository root too.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from webapp.gcf.main import _handler, predict  # noqa: E402


def _explode(rows: Any) -> list[int]:
    raise RuntimeError("an injected failure")


_handler.service.predictor.model.predict = _explode  # type: ignore[method-assign]
__all__ = ["predict"]
