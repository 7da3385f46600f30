"""V2 binary tensors, checked as one array, decide as the per-value path does, value for value.

A numeric [N, n_features] tensor in the binary tensor extension reaches the model as the array
its bytes are (accept.ValidRows.of_tensor); only a refused one is read value by value, so that
marshmallow names every offending field. Proven here on generated tensors of every numeric
datatype against marshmallow's own decisions, through the infer route against the same values
sent as JSON, and with tritonclient against real gunicorn, 10,000 rows at a time, against
scikit-learn's predict.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from typing import Any

import joblib
import numpy as np
import pytest
import tritonclient.http as triton
from flask.testing import FlaskClient
from hypothesis import example, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from tritonclient.utils import InferenceServerException

from testkit import zoo
from testkit.processes import ROOT, Server
from webapp import create_app
from webapp.core.model import load_model
from webapp.core.vocabulary import Feature
from webapp.protocol import v2
from webapp.protocol.accept import ValidRows
from webapp.protocol.predictor import Predictor
from webapp.protocol.schemas import batch_schema

NAME = "iris-logistic-regression"
INFER = f"/v2/models/{NAME}/infer"
SHIPPED = load_model(ROOT / "model.pkl").features  # four numbers, each in (0, 100]

FLOATS = ("FP64", "FP32")
INTEGERS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
DTYPES = {name: np.dtype(code) for name, code in v2._BINARY.items() if name != "BOOL"}

# Numbers on and beside every edge the policies have: the ranges below, float64's and
# float32's largest, integers around 2**53, and values no range takes.
SPECIAL_NUMBERS = (
    0.0, -0.0, 5e-324, -5e-324, 0.5, 1.0, 2.5, 3.0, -10.0, 10.0, math.nextafter(-10.0, 0),
    math.nextafter(10.0, 0), 100.0, math.nextafter(100.0, math.inf), 1000.0, 1000.5, 1001.0,
    2.0**53, -(2.0**53), 2.0**53 + 2, 1e300, -1e300, 3.4028234663852886e38, 1e39, math.inf,
    -math.inf, math.nan,
)  # fmt: skip
SPECIAL_INTEGERS = (
    0, 1, -1, 2, 3, -10, 10, 11, 100, 101, 127, -128, 255, 1000, 1001, 2**31 - 1, -(2**31),
    2**53, -(2**53), 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63), 2**64 - 1,
)  # fmt: skip


@st.composite
def tensors(draw: st.DrawFn, width: int, max_rows: int = 6) -> np.ndarray:
    """An [N, width] array of one numeric datatype, as np.frombuffer reads it from a body."""
    datatype = draw(st.sampled_from(FLOATS + INTEGERS))
    dtype = DTYPES[datatype]
    count = draw(st.integers(1, max_rows)) * width
    if datatype in FLOATS:
        values = draw(
            st.lists(st.floats() | st.sampled_from(SPECIAL_NUMBERS), min_size=count, max_size=count)
        )
        with np.errstate(over="ignore"):  # beyond float32: infinite, as a client's cast gives
            flat = np.array(values, np.float64).astype(dtype)
    else:
        info = np.iinfo(dtype)
        inside = [v for v in SPECIAL_INTEGERS if info.min <= v <= info.max]
        small = st.integers(max(int(info.min), -1100), min(int(info.max), 1100))
        elements = st.sampled_from(inside) | small | st.integers(int(info.min), int(info.max))
        flat = np.array(draw(st.lists(elements, min_size=count, max_size=count)), dtype)
    return np.frombuffer(flat.astype(dtype.newbyteorder("<")).tobytes(), dtype).reshape(-1, width)


def marshmallow_rows(features: tuple[Feature, ...], tensor: np.ndarray) -> np.ndarray | None:
    """What the per-value path makes of the tensor's values: its rows, or None if refused."""
    try:
        rows = batch_schema(features, 50).load({"instances": tensor.tolist()})["instances"]
    except ValidationError:
        return None
    return np.array(rows, dtype=np.float64)


def same_decision(features: tuple[Feature, ...], tensor: np.ndarray) -> None:
    fast = ValidRows(features, 50).of_tensor(tensor)
    slow = marshmallow_rows(features, tensor)
    if slow is None:
        assert fast is None
    else:
        assert fast is not None and fast.dtype == np.float64
        assert np.array_equal(fast, slow)
        assert np.array_equal(np.signbit(fast), np.signbit(slow))  # -0.0 stays -0.0


@pytest.mark.unit
@settings(max_examples=1500, deadline=None)
@given(tensors(len(SHIPPED)))
@example(np.array([[100.0, 0.5, 5e-324, 3.0]]))  # each on an edge of (0, 100]: taken
@example(np.array([[math.nextafter(100.0, math.inf), 1.0, 1.0, 1.0]]))  # just above it
@example(np.array([[1.0, 0.0, 1.0, 1.0]]))
@example(np.array([[1.0, 1.0, 1.0, math.nan]]))
def test_the_shipped_models_tensor_policy_matches_marshmallow(tensor: np.ndarray) -> None:
    same_decision(SHIPPED, tensor)


# Every rule a numeric feature can carry: open, half-open and closed ranges, on numbers and on
# integers (fractional bounds too), unbounded ones, and nullable ones (whose null a binary
# tensor cannot send: NaN is a number, and refused).
NUMERIC = (
    Feature("n", "number", nullable=True, min=-10.0, max=10.0, min_inclusive=False),
    Feature("i", "integer", min=0, max=1000),
    Feature("big", "integer", nullable=True),
    Feature("any", "number"),
    Feature("half", "integer", min=-0.5, max=2.5, max_inclusive=False),
    Feature("top", "number", min=1, max=100.0, min_inclusive=False),
)


@pytest.mark.unit
@settings(max_examples=3000, deadline=None)
@given(tensors(len(NUMERIC)))
def test_every_numeric_rule_decides_as_marshmallow(tensor: np.ndarray) -> None:
    same_decision(NUMERIC, tensor)


# Numbers of one range each, or of none: the whole tensor is checked at once (ValidRows._within).
ONE_RANGE = {
    "unbounded": tuple(Feature(name, "number", nullable=name == "c") for name in "abc"),
    "half-open": tuple(Feature(name, "number", min=-10.0, min_inclusive=False) for name in "abc"),
}


@pytest.mark.unit
@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(sorted(ONE_RANGE)), tensors(3))
@example("half-open", np.array([[-10.0, 0.0, 0.0]]))
@example("half-open", np.array([[math.nextafter(-10.0, 0), 1e308, 0.0]]))
@example("unbounded", np.array([[1.7976931348623157e308, -1.7976931348623157e308, 0.0]]))
@example("unbounded", np.array([[0.0, -math.inf, 0.0]]))
@example("unbounded", np.array([[0.0, 0.0, math.nan]]))
def test_features_of_one_range_decide_as_marshmallow(features: str, tensor: np.ndarray) -> None:
    same_decision(ONE_RANGE[features], tensor)


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NUMERIC), tensors(1, max_rows=20))
@example(NUMERIC[2], np.array([[2**53 + 1]], np.int64))  # 2**53 as a float: too large all the same
@example(NUMERIC[2], np.array([[-(2**53) - 1]], np.int64))
@example(NUMERIC[2], np.array([[2**53 + 1]], np.uint64))
@example(NUMERIC[2], np.array([[2**53]], np.uint64))
def test_each_rule_alone_decides_as_marshmallow(feature: Feature, tensor: np.ndarray) -> None:
    same_decision((feature,), tensor)


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 1000), min_size=6, max_size=6),
    st.sampled_from(("FP64", "FP32", "INT16", "UINT16", "INT64", "UINT64")),
)
def test_valid_tensors_take_the_array_path(row: list[int], datatype: str) -> None:
    """Whole numbers inside every range above, in any datatype that holds them."""
    row = [row[0] % 20 - 9, row[1], row[2] - 500, row[3] - 500, row[4] % 3, 2 + row[5] % 99]
    if datatype.startswith("U"):
        row = [abs(value) for value in row]
    tensor = np.array([row, row], DTYPES[datatype])
    assert np.array_equal(ValidRows(NUMERIC, 50).of_tensor(tensor), np.array([row, row], float))


@pytest.mark.unit
@pytest.mark.parametrize("bound", [2**53 + 1, 10**400])
def test_a_bound_no_float_holds_is_left_to_marshmallow(bound: int) -> None:
    """numpy would compare such a bound rounded (2**53 + 1 as 2**53): the tensor is then read
    value by value, where Python compares integers and floats exactly."""
    features = (Feature("x", "number", min=bound), Feature("k", "integer", max=bound))
    for row in ([2.0**53, 0], [2.0**53 + 2, 2**53], [1e300, -1]):
        tensor = np.array([row], np.float64)
        assert ValidRows(features, 50).of_tensor(tensor) is None
        assert (marshmallow_rows(features, tensor) is None) == (row[0] < bound)


@pytest.mark.unit
def test_shapes_and_kinds_the_policy_does_not_take() -> None:
    policy = ValidRows(NUMERIC, 3)
    assert policy.of_tensor(np.zeros((0, 6))) is None
    assert policy.of_tensor(np.zeros((4, 6))) is None  # more rows than MAX_BATCH_SIZE
    assert policy.of_tensor(np.zeros((2, 5))) is None
    assert policy.of_tensor(np.zeros(6)) is None
    assert policy.of_tensor(np.zeros((1, 6), bool)) is None
    assert policy.of_tensor(np.zeros((1, 6), np.float16)) is None
    categories = ValidRows((Feature("c", "category"),), 3)
    assert categories.of_tensor(np.zeros((1, 1))) is None
    assert np.array_equal(policy.of_tensor(np.full((3, 6), 2)), np.full((3, 6), 2.0))


# Through the infer route, in process: a binary tensor is answered as the same values sent as
# JSON data (the per-value path), and a refused one with the same message.


@pytest.fixture(scope="module")
def app_client() -> FlaskClient:
    return create_app({"MODEL_PATH": str(ROOT / "model.pkl")}).test_client()


def binary_request(tensor: np.ndarray, datatype: str) -> tuple[bytes, dict[str, str]]:
    data = tensor.astype(DTYPES[datatype]).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(tensor.shape),
                    "datatype": datatype,
                    "parameters": {"binary_data_size": len(data)},
                }
            ]
        }
    ).encode()
    return header + data, {"Inference-Header-Content-Length": str(len(header))}


def json_request(tensor: np.ndarray, datatype: str) -> dict[str, Any]:
    tensor_json = {"name": "input", "shape": list(tensor.shape), "datatype": datatype}
    return {"inputs": [{**tensor_json, "data": tensor.tolist()}]}


def per_value_refusal(tensor: np.ndarray) -> str:
    """The message the per-value path gives for a tensor marshmallow refuses."""
    with pytest.raises(ValidationError) as refused:
        batch_schema(SHIPPED, 10_000).load({"instances": tensor.tolist()})
    return v2.value_errors(refused.value.messages, True, [f.name for f in SHIPPED])


@pytest.mark.unit
@settings(max_examples=400, deadline=None)
@given(tensor=tensors(4, max_rows=12))
def test_binary_tensors_are_answered_as_their_values_in_json(
    app_client: FlaskClient, tensor: np.ndarray
) -> None:
    datatype = next(name for name, dtype in DTYPES.items() if dtype == tensor.dtype)
    body, headers = binary_request(tensor, datatype)
    binary = app_client.post(INFER, data=body, headers=headers)
    if np.isfinite(tensor).all():  # JSON can carry them
        plain = app_client.post(INFER, json=json_request(tensor, datatype))
        assert (binary.status_code, binary.get_json()) == (plain.status_code, plain.get_json())
    if binary.status_code == 200:
        assert marshmallow_rows(SHIPPED, tensor) is not None
    else:
        assert binary.status_code == 400
        assert binary.get_json() == {"error": per_value_refusal(tensor)}


# tritonclient against real gunicorn: a whole MAX_BATCH_SIZE of rows in binary, as scikit-learn.


@pytest.fixture(scope="module")
def estimator() -> Any:
    return joblib.load(ROOT / "model.pkl")


def rows_10000() -> np.ndarray:
    """The 150 Iris rows, then rows across the model's whole valid range."""
    from sklearn.datasets import load_iris

    rng = np.random.default_rng(2026)
    spread = rng.uniform(1e-3, 100.0, size=(10_000 - 152, 4))
    edges = [[100.0, 5e-324, 100.0, 5e-324], [5e-324, 100.0, 5e-324, 100.0]]
    return np.vstack([load_iris().data, edges, spread])


@pytest.mark.integration
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.uint8])
def test_10000_binary_rows_through_tritonclient_are_scikit_learns(
    gunicorn_server: Server, estimator: Any, dtype: Any
) -> None:
    rows = rows_10000().astype(dtype)
    if dtype != np.float64:
        rows = np.maximum(rows, 1)  # the ranges are open at 0 (5e-324 is 0 in float32)
    client = triton.InferenceServerClient(f"127.0.0.1:{gunicorn_server.port}")
    try:
        tensor = triton.InferInput("input", list(rows.shape), triton.np_to_triton_dtype(dtype))
        tensor.set_data_from_numpy(rows, binary_data=True)
        for binary in (True, False):
            wanted = [
                triton.InferRequestedOutput(name, binary_data=binary)
                for name in ("predict", "predict_proba")
            ]
            result = client.infer(NAME, [tensor], outputs=wanted)
            expected = estimator.predict(rows.astype(np.float64))
            assert result.as_numpy("predict").tolist() == expected.tolist()
            np.testing.assert_allclose(
                result.as_numpy("predict_proba"),
                estimator.predict_proba(rows.astype(np.float64)),
                rtol=0,
                atol=1e-11,
            )
    finally:
        client.close()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("value", "dtype", "message"),
    [
        (math.nan, np.float64, "Not a finite number."),
        (math.inf, np.float32, "Not a finite number."),
        (0.0, np.float64, "Must be greater than 0.0 and less than or equal to 100.0."),
        (100.5, np.float32, "Must be greater than 0.0 and less than or equal to 100.0."),
        (101, np.int64, "Must be greater than 0.0 and less than or equal to 100.0."),
        (2**64 - 1, np.uint64, "Must be greater than 0.0 and less than or equal to 100.0."),
    ],
)
def test_a_bad_value_among_10000_binary_rows_is_named(
    gunicorn_server: Server, value: Any, dtype: Any, message: str
) -> None:
    rows = np.maximum(rows_10000().astype(dtype), 1)
    rows[9_999, 2] = value
    client = triton.InferenceServerClient(f"127.0.0.1:{gunicorn_server.port}")
    try:
        tensor = triton.InferInput("input", list(rows.shape), triton.np_to_triton_dtype(dtype))
        tensor.set_data_from_numpy(rows, binary_data=True)
        with pytest.raises(InferenceServerException) as refused:
            client.infer(NAME, [tensor])
    finally:
        client.close()
    assert refused.value.status() == "400"
    assert refused.value.message() == f'input "input" row 9999, column 2 (petal_length): {message}'


# The predict output as one array (Predictor.predict_array): the list's values, counted alike.


def predicted_counts(labels: Any) -> dict[str, float]:
    from prometheus_client import REGISTRY

    return {
        label: REGISTRY.get_sample_value("predictions_total", {"label": label}) or 0.0
        for label in labels
    }


def same_as_the_list(model: Any, rows: Any) -> np.ndarray:
    """The predictor's batch, as a list and as an array: the engine's own list of values (each
    of its Python type: 1, 1.0 and True are equal), each counted under its class's label."""
    predictor = Predictor(model)
    expected = model.predict(rows)  # the engine's list, not the predictor's array
    labels = [*model.labels.values(), ""]
    counted = (
        Counter(model.labels[v] for v in expected)
        if model.classification
        else Counter({"": len(expected)})
    )
    wanted = {k: float(counted[k]) for k in labels}
    before = predicted_counts(labels)
    listed = predictor.predict(rows)
    between = predicted_counts(labels)
    array = predictor.predict_array(rows)
    after = predicted_counts(labels)
    types = list(map(type, expected))
    assert listed == expected and list(map(type, listed)) == types
    assert array.tolist() == expected and list(map(type, array.tolist())) == types
    assert {k: between[k] - before[k] for k in labels} == wanted
    assert {k: after[k] - between[k] for k in labels} == wanted
    kind = {"BOOL": "b", "INT64": "i", "FP64": "f", "BYTES": "O"}[v2.predict_datatype(model)]
    assert array.dtype.kind == kind
    return array


@pytest.mark.unit
def test_the_shipped_models_predictions_as_an_array() -> None:
    from sklearn.datasets import load_iris

    rows = load_iris().data
    array = same_as_the_list(load_model(ROOT / "model.pkl"), rows)
    assert array.tolist() == joblib.load(ROOT / "model.pkl").predict(rows).tolist()


@pytest.fixture(scope="module", params=["knn", "string-labels", "hist-gradient-boosting"])
def specimen(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Boolean classes, string classes, a regressor's values."""
    return zoo.build(request.param, tmp_path_factory.mktemp(request.param))


@pytest.mark.unit
@pytest.mark.slow
def test_other_models_predictions_as_an_array(specimen: Any) -> None:
    model = load_model(specimen.path)
    array = same_as_the_list(model, model.columns(specimen.rows))
    assert array.tolist() == specimen.predict()


@pytest.mark.unit
@pytest.mark.slow
@pytest.mark.parametrize("classes", [[-1, 4, 10], [1.0, 2.0, 4.0]], ids=["integers", "floats"])
def test_numbered_classes_predictions_as_an_array(classes: list[Any], tmp_path: Any) -> None:
    """Integer classes that are not 0, 1, 2 (counted by where they fall among the classes, not
    as their own places), and float classes."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    estimator = LogisticRegression(max_iter=1000).fit(X, np.array(classes)[y])
    joblib.dump(estimator, tmp_path / "model.pkl")
    subprocess.run(
        [sys.executable, "-m", "webapp.package", str(tmp_path / "model.pkl")],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    model = load_model(tmp_path / "model.pkl")
    array = same_as_the_list(model, X)
    assert array.tolist() == estimator.predict(X).tolist()
    assert sorted(set(array.tolist())) == classes
