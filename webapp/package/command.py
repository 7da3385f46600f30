"""The packaging command's arguments and its run: `sklearn-serve package` and
`python -m webapp.package`.

Only the standard library at import, so `--help` answers where scikit-learn is not installed;
describe.py (scikit-learn, pandas, skl2onnx) is imported when a model is packaged.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

USAGE = """\
Reads the pickle (your own: unpickling runs its code), asks the estimator and, with --data, a
table with its training columns what it takes and what it answers, checks the answer by
predicting, and writes the manifest (MODEL.json) and, where it converts and verifies, the
compiled form (MODEL.onnx) beside the pickle. Prints the pin last: MODEL_SHA256, the manifest's
sha256. Needs scikit-learn, pandas, skl2onnx and onnx: sklearn-serve's extra [package].

A function the pipeline calls (FunctionTransformer's, say) must live in a module of its own,
importable where the model is packaged and served (the current folder, or PYTHONPATH): pickle
stores it by module and name, and a function of the training script is not found again.
"""


def parser(prog: str) -> argparse.ArgumentParser:
    """The command's arguments, under the name it is run by."""
    parsed = argparse.ArgumentParser(
        prog=prog,
        description="Describe, compile and verify a fitted scikit-learn model for serving.",
        epilog=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parsed.add_argument("model", type=Path, help="a fitted estimator saved with joblib.dump")
    parsed.add_argument("--data", type=Path, help="a CSV table of rows like the training data")
    parsed.add_argument(
        "--name",
        type=_route_name,
        help="the model's name, in its V1 and V2 routes (default: the file's stem, or its "
        "folder's name for a file named model.pkl)",
    )
    parsed.add_argument("--version", default="1.0.0", help="the model's version (1.0.0)")
    parsed.add_argument("--target", help="the table's target column, if it has one: left out")
    parsed.add_argument(
        "--range",
        action="append",
        type=_feature_range,
        metavar="FEATURE=LOW:HIGH",
        help="a number feature's valid range, both ends included (repeatable): requests "
        "outside it are refused, and the compiled form is verified within it, not far out",
    )
    parsed.add_argument(
        "--force", action="store_true", help="replace an existing manifest and compiled form"
    )
    return parsed


def _route_name(name: str) -> str:
    """A name its routes can match (/v2/models/NAME/infer): one path segment, not empty."""
    if name in ("", ".", "..") or "/" in name or name != name.strip():
        raise argparse.ArgumentTypeError(
            f"{name!r}: a model's name is one part of its routes' paths: not '.' or '..', "
            "without '/' or spaces around it"
        )
    return name


def _feature_range(text: str) -> tuple[str, tuple[float, float]]:
    """FEATURE=LOW:HIGH, two finite numbers."""
    name, _, bounds = text.rpartition("=")
    low, colon, high = bounds.partition(":")
    try:
        ends = (float(low), float(high))
    except ValueError:
        ends = (math.nan, math.nan)
    if not name or not colon or not all(map(math.isfinite, ends)):
        raise argparse.ArgumentTypeError(f"{text!r}: FEATURE=LOW:HIGH, two finite numbers")
    return name, ends


def main(argv: list[str] | None = None, prog: str = "python -m webapp.package") -> int:
    """Package the model the arguments name; 0, or 1 after one line on stderr."""
    args = parser(prog).parse_args(argv)
    try:
        from . import describe
    except ImportError as exc:
        from ..extras import install_command

        print(
            f"cannot package {args.model}: {exc.name} is not installed: "
            f"{install_command('package')}",
            file=sys.stderr,
        )
        return 1
    if "" not in sys.path:  # as `python -m` does: a pickle's own modules in this folder
        sys.path.insert(0, "")
    return describe.package(args)
