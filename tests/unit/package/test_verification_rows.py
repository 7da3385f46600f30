"""The rows kept with a compiled model, to verify it again under another onnxruntime: which
rows, the estimator's own answers for them, and every kind of model verified again with them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from webapp.core.model import load_model
from webapp.core.verification import compare
from webapp.core.vocabulary import Feature
from webapp.package import command
from webapp.package import compile as compiling

pytestmark = pytest.mark.unit


def pretend_verified_with(artifact: Path, version: str) -> None:
    """The manifest as packaging under onnxruntime `version` would have written it."""
    path = artifact.with_suffix(".json")
    manifest = json.loads(path.read_text())
    manifest["compiled"]["versions"]["onnxruntime"] = version
    path.write_text(json.dumps(manifest))


def kept(
    expected: tuple[list[Any], np.ndarray | None],
    got: tuple[list[Any], np.ndarray | None],
    classifier: bool,
    self_checks: int,
) -> list[int]:
    """Which rows _rows_to_keep keeps, when each row's one feature is its own index."""
    columns = [list(range(len(expected[0])))]
    data = compiling._rows_to_keep([Feature("x")], columns, expected, got, classifier, self_checks)
    rows: list[int] = json.loads(data)["columns"]["x"]
    return rows


def test_the_shipped_rows_are_the_estimators_own_answers(artifact: Path) -> None:
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    entry = manifest["verification"]
    rows = json.loads((artifact.parent / entry["file"]).read_bytes())
    assert entry["rows"] == len(rows["predictions"]) == compiling.REVERIFICATION_ROWS
    assert entry["tolerance"] == manifest["compiled"]["tolerance"] == compiling.EXACT_RTOL
    X = np.array([rows["columns"][f["name"]] for f in manifest["features"]]).T
    estimator = joblib.load(artifact)
    assert estimator.predict(X).tolist() == rows["predictions"]
    # the same arithmetic on fewer rows at once: BLAS may block it otherwise, in the last bits
    np.testing.assert_allclose(estimator.predict_proba(X), rows["probabilities"], atol=1e-12)
    checks = [
        [i[f["name"]] for f in manifest["features"]] for i in manifest["self_check"]["instances"]
    ]
    assert all(any(np.array_equal(row, check) for row in X) for check in checks)


def test_a_classifiers_rows_are_the_edges_the_self_check_and_the_closest_calls() -> None:
    total = compiling.VERIFICATION_ROWS + compiling.REVERIFICATION_ROWS // 4
    rng = np.random.default_rng(1)
    top = rng.uniform(0.6, 1.0, total)
    close = rng.choice(compiling.VERIFICATION_ROWS, 900, replace=False)
    top[close] = 0.5 + rng.uniform(0, 1e-3, close.size)  # a hair from the other class
    proba = np.c_[top, 1 - top]
    answers = ([0] * total, proba)
    rows = kept(answers, answers, True, 3)
    assert len(rows) == len(set(rows)) == compiling.REVERIFICATION_ROWS
    assert set(range(compiling.VERIFICATION_ROWS, total)) <= set(rows)  # edges, table, checks
    assert set(close.tolist()) <= set(rows)


def test_a_regressors_rows_are_those_where_the_graph_strays_most() -> None:
    total = compiling.VERIFICATION_ROWS + 10
    want = np.random.default_rng(2).uniform(1, 2, total)
    have = want.copy()
    strays = np.arange(0, compiling.VERIFICATION_ROWS, 97)[:1000]
    have[strays] *= 1 + 1e-7
    rows = kept((want.tolist(), None), (have.tolist(), None), False, 2)
    assert set(strays.tolist()) | set(range(compiling.VERIFICATION_ROWS, total)) <= set(rows)


def test_few_rows_are_all_kept() -> None:
    answers: tuple[list[Any], np.ndarray | None] = ([1.0, 2.0, 3.0], None)
    assert kept(answers, answers, False, 1) == [0, 1, 2]


def test_a_regressor_on_a_dataframe_is_verified_again(tmp_path: Path) -> None:
    """Strings, integers and numbers through the rows file and back, one list per feature."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(3)
    table = pd.DataFrame(
        {
            "size": rng.normal(50, 10, 300),
            "rooms": rng.integers(1, 6, 300),
            "city": rng.choice(["north", "south", "east"], 300),
        }
    )
    target = table["size"] * 3 + table["rooms"] * 10 + (table["city"] == "north") * 7
    model = make_pipeline(
        make_column_transformer(
            (StandardScaler(), ["size", "rooms"]),
            (OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ),
        Ridge(),
    ).fit(table, target)
    artifact = tmp_path / "prices.pkl"
    joblib.dump(model, artifact)
    data = tmp_path / "prices.csv"
    table.to_csv(data, index=False)
    assert command.main([str(artifact), "--data", str(data)]) == 0
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    # one matrix, the city as its code (package/codes.py)
    assert manifest["compiled"]["inputs"] == "matrix"
    assert {"north", "south", "east", ""} <= set(manifest["compiled"]["codes"]["city"])
    assert manifest["verification"]["file"] == "prices.verification.json"
    rows = json.loads((tmp_path / "prices.verification.json").read_bytes())
    assert all(type(v) is int for v in rows["columns"]["rooms"])
    assert {"north", "south", "east", compiling.UNSEEN} <= set(rows["columns"]["city"])

    pretend_verified_with(artifact, "1.0.0")
    served = load_model(artifact)
    assert served.engine.name == "onnx", served.why
    assert served.why.endswith(f"on {compiling.REVERIFICATION_ROWS} rows")
    sample = table.head(50)
    columns = [sample[c].tolist() for c in sample]
    np.testing.assert_allclose(served.predict(columns), model.predict(sample), rtol=1e-6)


def test_packaging_again_without_a_compiled_form_removes_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(4).normal(size=(60, 2))
    artifact = tmp_path / "model.pkl"
    joblib.dump(LogisticRegression().fit(X, X[:, 0] > 0), artifact)
    assert command.main([str(artifact)]) == 0
    rows = tmp_path / "model.verification.json"
    assert rows.is_file()

    def unconvertible(*args: Any) -> Any:
        raise NotImplementedError("no converter")

    monkeypatch.setattr(compiling, "_convert", unconvertible)
    assert command.main([str(artifact), "--force"]) == 0
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    assert "verification" not in manifest and "error" in manifest["compiled"]
    assert not rows.exists() and not artifact.with_suffix(".onnx").exists()


@pytest.mark.parametrize("tolerance", [None, 1e-9], ids=["float32", "float64"])
def test_not_a_number_passes_only_where_the_estimator_gives_it(tolerance: float | None) -> None:
    """NaN compares false with everything: a form giving NaN where the estimator gives a
    probability, or a value where it gives NaN, must fail, not slip past as no difference."""
    want = np.array([[0.25, 0.75], [np.nan, np.nan], [0.5, 0.5]])
    same = compare(([1, 0, 0], want), ([1, 0, 0], want.copy()), True, tolerance)
    assert same[0] is None and same[1]["largest_probability_difference"] == 0.0
    for bad in (
        [[np.nan, 0.75], [np.nan, np.nan], [0.5, 0.5]],
        [[0.25, 0.75], [0.5, 0.5], [0.5, 0.5]],
    ):
        verdict, _ = compare(([1, 0, 0], want), ([1, 0, 0], np.array(bad)), True, tolerance)
        assert verdict is not None and "not finite" in verdict
    values = [1.0, float("nan"), 2.0]
    for got in ([1.0, 3.0, 2.0], values):  # a NaN the estimator gives is not served either
        verdict, _ = compare((values, None), (got, None), False, tolerance)
        assert verdict is not None and "not finite" in verdict
