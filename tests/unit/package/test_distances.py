"""Nearest neighbours' distances without a Scan (webapp/package/distances.py): the rewritten
graph answers bit for bit as skl2onnx's, and the engine calls it on bounded slices of rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from webapp.core.model import load_model
from webapp.core.vocabulary import ArtifactError
from webapp.package import command, distances

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(7)
X = RNG.normal(size=(120, 3)) * [1.0, 30.0, 1000.0]
Y = (X[:, 0] + X[:, 1] / 30 > 0).astype(int) + (X[:, 2] > 500)
ESTIMATORS = {
    "classifier": lambda: KNeighborsClassifier(n_neighbors=4).fit(X, Y),
    "regressor": lambda: KNeighborsRegressor().fit(X, X[:, 0] * 2 - X[:, 1]),
    "scaled-brute": lambda: make_pipeline(
        StandardScaler(), KNeighborsClassifier(algorithm="brute")
    ).fit(X, Y),
    "distance-weights": lambda: KNeighborsRegressor(weights="distance").fit(X, X[:, 2]),
}


def sessions(estimator: Any) -> tuple[Any, Any, onnx.ModelProto]:
    """onnxruntime over skl2onnx's graph, and over the same graph rewritten."""
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None
    graph = convert_sklearn(
        estimator, "m", initial_types=[("input", DoubleTensorType([None, 3]))], options=options
    )
    # the distances themselves, as an output of both graphs: the Transpose after the Scan
    scans = {o for n in graph.graph.node if n.op_type == "Scan" for o in n.output}
    (name,) = [n.output[0] for n in graph.graph.node if set(n.input) & scans]
    graph.graph.output.append(helper.make_tensor_value_info(name, TensorProto.DOUBLE, None))
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(graph)
    assert distances.without_scans(rewritten) > 0
    assert not any(n.op_type == "Scan" for n in rewritten.graph.node)
    return session(graph), session(rewritten), rewritten


def session(graph: onnx.ModelProto) -> Any:
    return onnxruntime.InferenceSession(
        graph.SerializeToString(), providers=["CPUExecutionProvider"]
    )


SESSIONS = {name: sessions(build()) for name, build in ESTIMATORS.items()}


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(ESTIMATORS)),
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(1, 40),
    scale=st.sampled_from([1.0, 1e3, 1e150, 1e308]),
    training=st.booleans(),
)
def test_the_broadcast_answers_as_the_scan(
    name: str, seed: int, count: int, scale: float, training: bool
) -> None:
    """Every output identical, bit for bit, the distances too, on rows near the training
    rows, far away, at overflowing magnitudes, and on training rows themselves (distance 0,
    ties)."""
    scan, broadcast, _ = SESSIONS[name]
    rng = np.random.default_rng(seed)
    rows = rng.uniform(-1.0, 1.0, size=(count, 3)) * scale  # finite, as the schemas take
    if training:
        rows[: count // 2] = X[rng.integers(0, 40, count // 2)]
    feeds = {"input": rows}
    for before, after in zip(scan.run(None, feeds), broadcast.run(None, feeds), strict=True):
        assert before.dtype == after.dtype
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize(
    "estimator",
    [
        KNeighborsClassifier(p=3).fit(X, Y),  # |a - b| ** 3: another Scan body
        GaussianProcessRegressor().fit(X[:40], X[:40, 0]),  # scans rows the graph computes
    ],
    ids=["minkowski-3", "gaussian-process"],
)
def test_other_scans_are_left_as_they_are(estimator: Any) -> None:
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None
    graph = convert_sklearn(
        estimator, "m", initial_types=[("input", DoubleTensorType([None, 3]))], options=options
    )
    assert any(n.op_type == "Scan" for n in graph.graph.node)
    before = graph.SerializeToString()
    assert distances.without_scans(graph) == 0
    assert graph.SerializeToString() == before


def test_rows_per_call_bounds_the_temporaries() -> None:
    assert distances.rows_per_call(400 * 3 * 8) == distances.CALL_BYTES // 9600
    assert distances.rows_per_call(distances.CALL_BYTES * 4) == 1  # one row, always


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A k-nearest-neighbours classifier packaged as a user would, its features' ranges given:
    far out (one feature at 1e15, say), many training rows are equally far in float64, and
    its tree keeps those it meets first, which no graph reproduces."""
    folder = tmp_path_factory.mktemp("knn")
    estimator = ESTIMATORS["classifier"]()
    joblib.dump(estimator, folder / "model.pkl")
    pd.DataFrame(X, columns=["a", "b", "c"]).to_csv(folder / "table.csv", index=False)
    ranges = ["--range", "a=-10:10", "--range", "b=-300:300", "--range", "c=-1e4:1e4"]
    argv = [str(folder / "model.pkl"), "--data", str(folder / "table.csv"), *ranges]
    assert command.main(argv) == 0
    return folder / "model.pkl", estimator


def with_rows_per_call(artifact: Path, value: Any, folder: Path) -> Path:
    """A copy of the packaged model whose manifest says `value` for rows_per_call."""
    for file in artifact.parent.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    manifest = json.loads((folder / "model.json").read_text())
    manifest["compiled"]["rows_per_call"] = value
    (folder / "model.json").write_text(json.dumps(manifest))
    return folder / "model.pkl"


def test_a_packaged_model_is_compiled_without_scans(packaged: tuple[Path, Any]) -> None:
    artifact, estimator = packaged
    compiled = json.loads(artifact.with_suffix(".json").read_text())["compiled"]
    assert compiled["rows_per_call"] == distances.rows_per_call(len(X) * 3 * 8)
    graph = onnx.load(artifact.with_name(compiled["file"]))
    assert not any(n.op_type == "Scan" for n in graph.graph.node)
    model = load_model(artifact)
    assert model.engine.name == "onnx"
    rows = np.random.default_rng(1).normal(size=(500, 3)) * [1.0, 30.0, 1000.0]
    assert model.predict(rows) == estimator.predict(rows).tolist()
    assert model.predict(rows[:1]) == estimator.predict(rows[:1]).tolist()


@pytest.mark.parametrize("step", [1, 7, 100])
def test_a_batch_is_answered_in_slices(
    packaged: tuple[Path, Any], step: int, tmp_path: Path
) -> None:
    """Slices of at most rows_per_call rows, of a matrix and of one list per feature, give
    the estimator's answers, in order."""
    artifact, estimator = packaged
    model = load_model(with_rows_per_call(artifact, step, tmp_path))
    rows = np.random.default_rng(2).normal(size=(101, 3)) * [1.0, 30.0, 1000.0]
    expected = estimator.predict(rows).tolist()
    assert model.predict(rows) == expected
    assert model.predict([column.tolist() for column in rows.T]) == expected
    np.testing.assert_array_equal(model.engine.predict_proba(rows), estimator.predict_proba(rows))


@pytest.mark.parametrize("value", [0, -3, 2.5, "7", True])
def test_rows_per_call_must_be_a_positive_integer(
    packaged: tuple[Path, Any], value: Any, tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError, match="rows_per_call"):
        load_model(with_rows_per_call(packaged[0], value, tmp_path), engine="onnx")
