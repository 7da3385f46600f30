"""Cloud Function entry point from the repository:
`functions-framework --target predict --source gcf/main.py`.

A thin hand-over to the package's entry file, webapp/gcf/main.py (which the upload's main.py
is a copy of, and which `sklearn-serve function` serves).
"""

from __future__ import annotations

import sys
from pathlib import Path

# The functions-framework console script puts only this file's folder on sys.path: the webapp
# package sits one level up.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from webapp.gcf.main import predict  # noqa: E402

__all__ = ["predict"]
