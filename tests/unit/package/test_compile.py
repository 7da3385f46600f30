"""Compiling at package time: only a compiled form that answers as the estimator is accepted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import numpy_helper

from webapp.core.model import load_model
from webapp.core.vocabulary import NULL_STRING, ArtifactError
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
    # an unseen string, "" and a null's own string too, any being allowed, and the known one
    # written otherwise
    assert set(other) == {"x", compiling.UNSEEN, "", NULL_STRING, "X", "xé"}


def test_a_table_row_with_a_null_the_estimator_cannot_take_is_not_verified(
    tmp_path: Path,
) -> None:
    """The service refuses such a row (the feature is not nullable), and the estimator would
    raise on it: packaging leaves it out, and the model is compiled from the rest."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    table = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    model = LogisticRegression().fit(table, table["a"] > 0)
    joblib.dump(model, tmp_path / "model.pkl")
    table.loc[5, "b"] = np.nan
    table.to_csv(tmp_path / "table.csv", index=False)
    assert command.main([str(tmp_path / "model.pkl"), "--data", str(tmp_path / "table.csv")]) == 0
    manifest = json.loads((tmp_path / "model.json").read_text())
    assert not manifest["features"][1]["nullable"]
    assert "file" in manifest["compiled"], manifest["compiled"]


def test_tree_ensembles_are_given_float32_like_scikit_learn() -> None:
    """scikit-learn's trees compare float32 values: only float32 inputs agree on every row."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import Ridge

    X = np.random.default_rng(0).normal(size=(50, 3))
    forest = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, X[:, 0])
    assert compiling._forms(forest)[0] == {"inputs": "matrix", "dtype": "float32"}
    ridge = Ridge().fit(X, X[:, 0])
    assert compiling._forms(ridge) == [
        {"inputs": "matrix", "dtype": "float64"},
        {"inputs": "matrix", "dtype": "float32"},
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
    assert compiling._forms(boosting)[0] == {"inputs": "matrix", "dtype": "float32"}
    members = [
        ("linear", make_pipeline(StandardScaler(), LogisticRegression())),
        ("tree", make_pipeline(StandardScaler(), DecisionTreeClassifier(max_depth=2))),
    ]
    voting = VotingClassifier(members, voting="soft").fit(X, y)
    assert compiling._forms(voting)[0] == {"inputs": "matrix", "dtype": "float64"}


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


@pytest.mark.parametrize("two_classes", [False, True], ids=["classes", "two-classes"])
def test_linear_labels_take_integer_features_columns(two_classes: bool, tmp_path: Path) -> None:
    """Integer features come as one list per feature (accept.py), not a float matrix: the
    labels in numpy take them too, as the graph does, and answer as the estimator (with two
    classes, from one score)."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    table = pd.DataFrame(rng.integers(0, 50, size=(300, 3)), columns=["a", "b", "c"])
    score = table["a"] + table["b"] * 2 - table["c"]
    y = (score > 40).astype(int) if two_classes else score // 40
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(table.to_numpy(), y)
    joblib.dump(model, tmp_path / "model.pkl")
    table.to_csv(tmp_path / "table.csv", index=False)
    assert command.main([str(tmp_path / "model.pkl"), "--data", str(tmp_path / "table.csv")]) == 0
    served = load_model(tmp_path / "model.pkl")
    assert [f.type for f in served.features] == ["integer"] * 3
    assert served.engine.linear is not None
    rows = rng.integers(-20, 80, size=(2000, 3))
    columns = [column.tolist() for column in rows.T]
    expected = model.predict(rows).tolist()
    assert served.predict(columns) == expected
    assert served.predict_array(columns).tolist() == expected
    served.engine.linear = None  # the graph's own
    assert served.predict(columns) == expected


def test_only_a_scaled_logistic_regression_records_linear_parameters() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    X = np.random.default_rng(0).normal(size=(60, 3))
    y3, y2 = np.arange(60) % 3, np.arange(60) % 2
    for y in (y3, y2):
        assert compiling._linear_parameters(
            make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
        )
    assert (
        compiling._linear_parameters(make_pipeline(MinMaxScaler(), LogisticRegression()).fit(X, y3))
        is None
    )
    assert compiling._linear_parameters(LogisticRegression().fit(X, y3)) is None


@pytest.mark.parametrize(
    "ensemble", ["RandomForestRegressor", "BaggingRegressor", "AdaBoostRegressor"]
)
def test_a_forest_regressor_is_compiled_to_exact_trees(ensemble: str, tmp_path: Path) -> None:
    """skl2onnx's trees sum in float32 (its float64 bagging does not load, and its float64
    boosting was not tried); trees.py's answer as scikit-learn does, and are accepted, then
    served, within 1e-9."""
    from sklearn import ensemble as ensembles

    X = np.random.default_rng(3).normal(size=(300, 4))
    make = getattr(ensembles, ensemble)  # an ensemble of its default estimator, a tree
    forest = make(n_estimators=30, random_state=0).fit(X, X[:, 0] * 1e3)
    artifact = tmp_path / "forest.pkl"
    joblib.dump(forest, artifact)
    assert command.main([str(artifact)]) == 0
    compiled = json.loads(artifact.with_suffix(".json").read_text())["compiled"]
    assert compiled["trees"] == "exact" and compiled["tolerance"] == compiling.EXACT_RTOL
    assert compiled["verification"]["largest_relative_difference"] <= compiling.EXACT_RTOL
    assert compiled["opsets"]["ai.onnx.ml"] == 5
    model = load_model(artifact)
    assert model.engine.name == "onnx" and model.engine.tolerance == compiling.EXACT_RTOL
    rows = np.random.default_rng(4).normal(size=(500, 4))
    assert model.predict(rows) == forest.predict(rows).tolist()


def test_a_forest_whose_votes_tie_is_compiled_with_scikit_learn_s_tie_breaks(
    tmp_path: Path,
) -> None:
    """100 trees on Iris give many rows equal votes for two classes (skl2onnx's float32 sums
    flipped thousands of them): the exact sums are scikit-learn's, and the first of the tied
    classes wins, as np.argmax picks it."""
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    artifact = tmp_path / "iris-forest.pkl"
    joblib.dump(forest, artifact)
    table = tmp_path / "iris.csv"
    pd.DataFrame(X, columns=["a", "b", "c", "d"]).to_csv(table, index=False)
    assert command.main([str(artifact), "--data", str(table)]) == 0
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    compiled = manifest["compiled"]
    assert compiled["trees"] == "exact", compiled
    assert compiled["verification"]["predictions"] == "identical"
    features = [package.Feature.from_manifest(f) for f in manifest["features"]]
    rows = np.array(compiling.verification_columns(features, None), dtype=np.float64).T
    votes = np.sort(forest.predict_proba(rows), axis=1)
    assert np.sum(votes[:, -1] == votes[:, -2]) > 1000  # the verification had ties to break
    model = load_model(artifact)
    assert model.engine.name == "onnx"
    assert model.predict(rows) == forest.predict(rows).tolist()


def test_once_a_float64_form_runs_no_form_is_accepted_within_float32_s_tolerance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A float64 graph 1e-8 off is refused (1e-9), and the float32 graph, which float32 sums
    keep within 1e-6, is then held to 1e-9 too: scikit-learn serves the model."""
    from sklearn.linear_model import LinearRegression

    X = np.random.default_rng(5).normal(size=(100, 3))
    regression = LinearRegression().fit(X, X @ [1.0, 2.0, 3.0] + 10)
    artifact = tmp_path / "linear.pkl"
    joblib.dump(regression, artifact)
    assert command.main([str(artifact)]) == 0
    manifest_path = artifact.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    for feature in manifest["features"]:  # bounds float32 can hold, so its form can pass
        feature.update(min=-10.0, max=10.0)
    manifest_path.write_text(json.dumps(manifest))
    convert = compiling._convert

    def off_by_1e8(*args: Any) -> Any:
        graph = convert(*args)
        for weights in graph.graph.initializer:
            values = numpy_helper.to_array(weights)
            if values.dtype == np.float64:
                weights.CopyFrom(numpy_helper.from_array(values * (1 + 1e-8), weights.name))
        return graph

    compare, tolerances = compiling.compare, []

    def recorded(*args: Any) -> Any:
        tolerances.append(args[3])
        return compare(*args)

    monkeypatch.setattr(compiling, "_convert", off_by_1e8)
    monkeypatch.setattr(compiling, "compare", recorded)
    error = repackage(artifact)["compiled"]["error"]
    assert "matrix of float64: regression outputs differ by up to 1e-08 relative" in error
    assert "matrix of float32: regression outputs differ" in error
    assert tolerances == [compiling.EXACT_RTOL] * 2  # the float64 form's, then the float32's
    monkeypatch.setattr(compiling, "_convert", convert)
    compiled = repackage(artifact)["compiled"]
    assert compiled["dtype"] == "float64" and compiled["tolerance"] == compiling.EXACT_RTOL


def test_the_self_check_allows_the_compiled_form_s_tolerance_only(tmp_path: Path) -> None:
    """An exact form's self-check allows 1e-9 relative, not the float32 forms' 1e-6."""
    from sklearn.ensemble import GradientBoostingRegressor

    X = np.random.default_rng(6).normal(size=(200, 3))
    boosting = GradientBoostingRegressor(n_estimators=20, random_state=0).fit(X, X[:, 0] + 5)
    artifact = tmp_path / "boosting.pkl"
    joblib.dump(boosting, artifact)
    assert command.main([str(artifact)]) == 0
    load_model(artifact).self_check()
    path = artifact.with_suffix(".json")
    manifest = json.loads(path.read_text())
    manifest["self_check"]["predictions"][0] *= 1 + 1e-8
    path.write_text(json.dumps(manifest))
    model = load_model(artifact)
    assert model.engine.name == "onnx"
    with pytest.raises(ArtifactError, match="self-check"):
        model.self_check()


def test_only_the_outputs_the_engine_reads_are_computed() -> None:
    """onnxruntime runs every node of a graph: a model without probabilities keeps its labels
    and what they need, a tensor a Loop's body reads without naming it among them, made after
    the Loop (skl2onnx orders an SVC's coupling so; onnxruntime sorts it out)."""
    from onnx import TensorProto, helper

    one = numpy_helper.from_array(np.array(1.0), "one")
    body = helper.make_graph(
        [
            helper.make_node("Add", ["carried", "outer"], ["next"]),
            helper.make_node("Identity", ["condition"], ["going"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("step", TensorProto.INT64, []),
            helper.make_tensor_value_info("condition", TensorProto.BOOL, []),
            helper.make_tensor_value_info("carried", TensorProto.DOUBLE, None),
        ],
        [
            helper.make_tensor_value_info("going", TensorProto.BOOL, []),
            helper.make_tensor_value_info("next", TensorProto.DOUBLE, None),
        ],
    )
    nodes = [  # the body's outer tensor made after the Loop, as skl2onnx may order them
        helper.make_node("Loop", ["steps", "", "input"], ["label"], body=body),
        helper.make_node("Add", ["input", "one"], ["scores"]),
        helper.make_node("Neg", ["input"], ["outer"]),
    ]
    steps = numpy_helper.from_array(np.array(3, dtype=np.int64), "steps")
    graph = helper.make_model(
        helper.make_graph(
            nodes,
            "model",
            [helper.make_tensor_value_info("input", TensorProto.DOUBLE, [None, 2])],
            [
                helper.make_tensor_value_info(name, TensorProto.DOUBLE, None)
                for name in ("label", "scores")
            ],
            [one, steps],
        ),
        opset_imports=[helper.make_opsetid("", 21)],
    )
    x = np.array([[1.0, 2.0]])
    before = onnxruntime_answer(graph, ["label"], x)
    compiling._outputs_read(graph, 1)
    assert [o.name for o in graph.graph.output] == ["label"]
    assert [n.op_type for n in graph.graph.node] == ["Loop", "Neg"]
    assert [t.name for t in graph.graph.initializer] == ["steps"]
    np.testing.assert_array_equal(onnxruntime_answer(graph, ["label"], x), before)
    np.testing.assert_array_equal(before, x - 3 * x)


def onnxruntime_answer(graph: onnx.ModelProto, outputs: list[str], x: np.ndarray) -> Any:
    import onnxruntime

    session = onnxruntime.InferenceSession(
        graph.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(outputs, {"input": x})[0]
