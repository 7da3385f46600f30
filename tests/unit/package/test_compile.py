"""Compiling at package time: only a compiled form that answers as the estimator is accepted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from webapp.core.model import load_model
from webapp.package import command
from webapp.package import compile as compiling
from webapp.package import describe as package

pytestmark = pytest.mark.unit


def repackage(artifact: Path) -> dict[str, Any]:
    """Compile the artifact again into its manifest, as `python -m webapp.package` does."""
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    package.compile_into(joblib.load(artifact), manifest, None, artifact)
    package.write_manifest(manifest, artifact, replace=True)
    return manifest


def test_a_wrong_compiled_form_fails_verification_and_falls_back(
    artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One coefficient off by 5 %: some classes differ, so it is not written, and scikit-learn
    serves the model, saying why."""
    convert = compiling._convert

    def patched(*args: Any) -> Any:
        graph = convert(*args)
        weights = max(graph.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
        values = numpy_helper.to_array(weights).copy()
        values.flat[0] *= 1.05
        weights.CopyFrom(numpy_helper.from_array(values, weights.name))
        return graph

    monkeypatch.setattr(compiling, "_convert", patched)
    manifest = repackage(artifact)
    assert "predicted classes differ" in manifest["compiled"]["error"]
    assert not artifact.with_suffix(".onnx").exists()
    model = load_model(artifact)
    assert model.engine.name == "sklearn"
    assert "predicted classes differ" in model.why


def test_the_same_model_compiles_to_the_same_bytes(artifact: Path) -> None:
    before = artifact.with_suffix(".onnx").read_bytes()
    manifest = repackage(artifact)
    assert artifact.with_suffix(".onnx").read_bytes() == before
    assert manifest["compiled"]["sha256"] == package.sha256_of(artifact.with_suffix(".onnx"))
    assert onnx.load(artifact.with_suffix(".onnx")).graph.name == "model"


def test_the_manifest_records_the_verification(artifact: Path) -> None:
    compiled = json.loads(artifact.with_suffix(".json").read_text())["compiled"]
    assert compiled["inputs"] == "matrix" and compiled["dtype"] == "float64"  # a linear model
    assert compiled["verification"]["rows"] >= compiling.VERIFICATION_ROWS
    assert compiled["verification"]["predictions"] == "identical"
    assert compiled["verification"]["largest_probability_difference"] <= 1e-6
    assert set(compiled["versions"]) == {"onnxruntime", "skl2onnx"}
    assert compiled["opsets"]["ai.onnx.ml"] >= 1


def test_verification_rows_reach_every_bound_null_and_category() -> None:
    spec = [
        {"name": "n", "type": "number", "nullable": True, "min": 0.0, "max": 10.0,
         "train_min": 2.0, "train_max": 3.0},
        {"name": "i", "type": "integer", "min": -5, "max": 5},
        {"name": "c", "type": "category", "categories": ["a", "b"]},
        {"name": "open", "type": "category", "train_categories": ["x"]},
    ]  # fmt: skip
    features = [package.Feature.from_manifest(s) for s in spec]
    n, i, c, other = compiling.verification_columns(features, None, count=2_000)
    assert {0.0, 10.0, None} <= set(n) and min(v for v in n if v is not None) >= 0.0
    assert {-5, 5} <= set(i) and all(type(v) is int for v in i)
    assert set(c) == {"a", "b"}
    assert "x" in other and len(set(other)) == 2  # an unseen string too: any is allowed


def test_tree_ensembles_are_given_float32_like_scikit_learn() -> None:
    """scikit-learn's trees compare float32 values: only float32 inputs agree on every row."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import Ridge

    X = np.random.default_rng(0).normal(size=(50, 3))
    forest = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, X[:, 0])
    assert compiling._forms(forest, True)[0] == {"inputs": "matrix", "dtype": "float32"}
    ridge = Ridge().fit(X, X[:, 0])
    assert compiling._forms(ridge, True)[0] == {"inputs": "matrix", "dtype": "float64"}
    assert compiling._forms(ridge, False) == [
        {"inputs": "columns", "dtype": "float64"},
        {"inputs": "columns", "dtype": "float32"},
    ]


def test_ensembles_of_pipelines_and_of_tree_arrays_get_their_forms() -> None:
    """Members come as a list or as a 2-D array (gradient boosting); a Pipeline member has a
    length and items, which once made numpy take it for a sequence and packaging crash."""
    from sklearn.ensemble import GradientBoostingClassifier, VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    boosting = GradientBoostingClassifier(n_estimators=3).fit(X, y)
    assert compiling._forms(boosting, True)[0] == {"inputs": "matrix", "dtype": "float32"}
    members = [
        ("linear", make_pipeline(StandardScaler(), LogisticRegression())),
        ("tree", make_pipeline(StandardScaler(), DecisionTreeClassifier(max_depth=2))),
    ]
    voting = VotingClassifier(members, voting="soft").fit(X, y)
    assert compiling._forms(voting, True)[0] == {"inputs": "matrix", "dtype": "float64"}


def test_a_voting_ensemble_with_a_pipeline_is_packaged_and_served_as_it_answers(
    tmp_path: Path,
) -> None:
    from sklearn.ensemble import VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    X = np.random.default_rng(1).normal(size=(200, 3))
    y = np.where(X[:, 0] + X[:, 1] > 0, "up", "down")
    members = [
        ("linear", make_pipeline(StandardScaler(), LogisticRegression())),
        ("tree", DecisionTreeClassifier(max_depth=3)),
    ]
    voting = VotingClassifier(members, voting="soft").fit(X, y)
    artifact = tmp_path / "voting.pkl"
    joblib.dump(voting, artifact)
    assert command.main([str(artifact)]) == 0
    model = load_model(artifact)
    rows = np.random.default_rng(2).normal(size=(500, 3))
    assert model.predict(rows) == voting.predict(rows).tolist()


def test_linear_parameters_that_disagree_with_the_graph_are_not_used(
    artifact: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The recorded parameters must give the graph's labels at load, or the graph answers."""
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    assert load_model(artifact).engine.linear is not None
    manifest["compiled"]["linear"]["intercept"][0] += 5.0
    artifact.with_suffix(".json").write_text(json.dumps(manifest))
    model = load_model(artifact)
    assert model.engine.linear is None
    assert "disagree with the compiled graph" in caplog.text
    assert model.predict(np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])) == [0, 2]


def test_only_a_scaled_multinomial_logistic_regression_records_linear_parameters() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    X = np.random.default_rng(0).normal(size=(60, 3))
    y3, y2 = np.arange(60) % 3, np.arange(60) % 2
    assert compiling._linear_parameters(
        make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y3)
    )
    assert (
        compiling._linear_parameters(
            make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y2)
        )
        is None
    )
    assert (
        compiling._linear_parameters(make_pipeline(MinMaxScaler(), LogisticRegression()).fit(X, y3))
        is None
    )
    assert compiling._linear_parameters(LogisticRegression().fit(X, y3)) is None
