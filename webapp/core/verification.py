"""Whether an engine answers as the estimator did: the comparison packaging accepts a compiled
form by, and the rows that let serving hold the form to it again under another onnxruntime.

Packaging (package/compile.py) compares the compiled form's answers with the estimator's on
its verification rows, and keeps a few thousand of those rows with the estimator's answers in
a file beside the model (MODEL.verification.json, the manifest's top-level "verification"
entry). Where the onnxruntime installed differs from the one the form was verified with,
load_model replays those rows through the form, without scikit-learn, and serves it only if
every answer still agrees under the same tolerance. No numpy arrays in the file: plain JSON,
one list per feature, as the service holds rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from .vocabulary import ArtifactError, Feature, Rows, one_line

ROWS_FORMAT = 1
REGRESSION_RTOL = 1e-6  # float32 forms: regression outputs, relative
PROBABILITY_ATOL = 1e-6  # float32 forms: probabilities, absolute
# A probability near zero is within a relative tolerance when no further than this from the
# estimator's: float64 rounds numbers near 1 (1 - p) to 1.1e-16, onnxruntime's sigmoid is a few
# of those off, and the service answers probabilities to 12 decimals.
PROBABILITY_FLOOR = 1e-14

Answers = tuple[list[Any], "np.ndarray | None"]  # predictions, and probabilities where given


def compare(
    expected: Answers,
    got: Answers,
    classifier: bool,
    tolerance: float | None = None,
) -> tuple[str | None, dict[str, Any]]:
    """(why the answers differ, or None; the largest differences found).

    Classes must be identical, value and type. With a tolerance (a float64 form's), regression
    outputs and probabilities must agree within it, relative (probabilities closer than
    PROBABILITY_FLOOR always do); without one (a float32 form's), within REGRESSION_RTOL and
    PROBABILITY_ATOL.
    """
    want, want_proba = expected
    have, have_proba = got
    if len(want) != len(have):
        return f"{len(have)} answers for {len(want)} rows", {}
    if classifier:
        differing = sum(
            1 for w, h in zip(want, have, strict=True) if w != h or type(w) is not type(h)
        )
        if differing:
            return f"{differing} of {len(want)} predicted classes differ", {}
        found: dict[str, Any] = {"predictions": "identical"}
    else:
        w, h = np.asarray(want, dtype=np.float64), np.asarray(have, dtype=np.float64)
        if not np.all(np.isfinite(h)) or not np.all(np.isfinite(w)):
            return "regression outputs that are not finite numbers", {}
        relative = float(np.max(np.abs(h - w) / np.maximum(np.abs(w), 1e-300), initial=0.0))
        if relative > (tolerance or REGRESSION_RTOL):
            return f"regression outputs differ by up to {relative:.3g} relative", {}
        found = {"largest_relative_difference": relative}
    if want_proba is not None and have_proba is not None:
        if want_proba.shape != have_proba.shape:
            return f"probabilities of shape {have_proba.shape}, not {want_proba.shape}", {}
        odd = ~np.isfinite(want_proba)  # NaN where a row's probabilities sum to 0, as 0 / 0
        if not np.array_equal(odd, ~np.isfinite(have_proba)) or not np.array_equal(
            want_proba[odd], have_proba[odd], equal_nan=True
        ):
            return "probabilities that are not finite numbers where the estimator's are", {}
        have_proba, want_proba = np.where(odd, 0.0, have_proba), np.where(odd, 0.0, want_proba)
        gap = np.abs(have_proba - want_proba)
        absolute = float(np.max(gap, initial=0.0))
        if tolerance is not None:  # relative, of those further apart than the floor
            beyond = gap > PROBABILITY_FLOOR
            relative = float(
                np.max(gap[beyond] / np.maximum(np.abs(want_proba[beyond]), 1e-300), initial=0.0)
            )
            if relative > tolerance:
                return f"probabilities differ by up to {relative:.3g} relative", {}
            found["largest_relative_probability_difference"] = relative
        elif absolute > PROBABILITY_ATOL:
            return f"probabilities differ by up to {absolute:.3g}", {}
        found["largest_probability_difference"] = absolute
    return None, found


def rows_document(
    features: Sequence[Feature],
    columns: Sequence[Sequence[Any]],
    predictions: Sequence[Any],
    probabilities: np.ndarray | None,
) -> bytes:
    """The verification rows file: each feature's values (None for null), the estimator's
    predictions and, where it gives them, its probabilities, a row per instance."""
    document: dict[str, Any] = {
        "format": ROWS_FORMAT,
        "columns": {f.name: list(c) for f, c in zip(features, columns, strict=True)},
        "predictions": list(predictions),
    }
    if probabilities is not None:
        document["probabilities"] = np.asarray(probabilities, dtype=np.float64).tolist()
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def read_rows(data: bytes, features: Sequence[Feature]) -> tuple[list[list[Any]], Answers]:
    """The rows (one list per feature) and the answers a rows file records; ArtifactError if
    it is not one, or not for these features."""
    try:
        document = json.loads(data)
        if document.get("format") != ROWS_FORMAT:
            raise ValueError(f"format {document.get('format')!r}, not {ROWS_FORMAT}")
        columns = [document["columns"][f.name] for f in features]
        predictions = document["predictions"]
        probabilities = document.get("probabilities")
        proba = None if probabilities is None else np.asarray(probabilities, dtype=np.float64)
        if any(len(c) != len(predictions) for c in columns) or (
            proba is not None and len(proba) != len(predictions)
        ):
            raise ValueError("its columns and answers differ in length")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"the verification rows are malformed: {exc!r}") from None
    return columns, (predictions, proba)


def plain(features: Sequence[Feature]) -> bool:
    """Whether the service holds rows for these features as one float matrix (every feature a
    number that may not be null, protocol/accept.py), not one list per feature."""
    return all(f.type == "number" and not f.nullable for f in features)


def answers(engine: Any, rows: Rows, probabilities: bool) -> Answers:
    """What an engine answers for rows: its predictions, and probabilities if asked."""
    return engine.predict(rows), engine.predict_proba(rows) if probabilities else None


def reverify(
    engine: Any,
    data: bytes,
    features: Sequence[Feature],
    classifier: bool,
    tolerance: float | None = None,
) -> tuple[str | None, int]:
    """(why `engine` does not answer a rows file's rows as it records, or None; how many rows
    were compared). The rows are given as the service holds them, so the path that serves
    (the numpy labels of a linear model included) is the path proven."""
    from .onnx_engine import number_rows

    columns, expected = read_rows(data, features)
    rows = number_rows(columns) if plain(features) else columns
    try:
        got = answers(engine, rows, expected[1] is not None)
    except Exception as exc:  # onnxruntime raises its own types for what it cannot run
        return f"it fails on them ({one_line(exc, 200)})", 0
    verdict, _ = compare(expected, got, classifier, tolerance)
    return verdict, len(expected[0])
