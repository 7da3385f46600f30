"""Exact tree graphs (webapp/package/trees.py): onnxruntime answers as the library does, on
100,000 rows.

Each model is small and seeded; the rows go across and beyond its training range, include
every split value and its neighbours, NaN where the library takes it, and unseen categories.
Classes must be identical; values and probabilities within 1e-9 relative.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import platform
from typing import Any

import lightgbm
import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest
import xgboost
from onnx import helper
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.ensemble import (
    AdaBoostClassifier,
    AdaBoostRegressor,
    BaggingClassifier,
    BaggingRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from webapp.package import trees

pytestmark = [pytest.mark.unit, pytest.mark.slow]  # 69 models against 100,000 rows each

ROWS = 100_000
RTOL = 1e-9


def session(graph: Any, threads: int = 1) -> onnxruntime.InferenceSession:
    """As webapp/core/onnx_engine.py configures it."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(
        graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def splits(graph: Any, n_features: int) -> list[tuple[int, float]]:
    """(feature, value) of every numeric split in the graph's TreeEnsemble nodes."""
    found = []
    for node in graph.graph.node:
        if node.op_type != "TreeEnsemble":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        values = np.frombuffer(attrs["nodes_splits"].raw_data, dtype=np.float64)
        modes = np.frombuffer(attrs["nodes_modes"].raw_data, dtype=np.uint8)
        for feature, value, mode in zip(attrs["nodes_featureids"], values, modes, strict=True):
            if mode != trees.MEMBER and feature < n_features and np.isfinite(value):
                found.append((int(feature), float(value)))
    return found


def verification_rows(
    train: np.ndarray, graph: Any, nan: bool, rng: np.random.Generator
) -> np.ndarray:
    """ROWS rows: uniform over the training range widened threefold (a tenth NaN if `nan`),
    then rows where one feature sits on a split value or next to it, in float64 and float32."""
    low, high = np.nanmin(train, axis=0), np.nanmax(train, axis=0)
    width = np.maximum(high - low, 1.0)
    rows = rng.uniform(low - width, high + width, size=(ROWS, train.shape[1]))
    if nan:
        rows[rng.random(rows.shape) < 0.1] = np.nan
    edges = []
    for feature, value in splits(graph, train.shape[1]):
        with np.errstate(over="ignore"):  # LightGBM splits at 1e300 too
            single = np.float32(value)
        for v in (
            value,
            np.nextafter(value, -np.inf),
            np.nextafter(value, np.inf),
            float(single),
            float(np.nextafter(single, np.float32(-np.inf))),
            float(np.nextafter(single, np.float32(np.inf))),
        ):
            edges.append((feature, v))
    picked = rng.permutation(len(edges))[: ROWS // 2]
    for i, e in zip(range(ROWS // 2), picked, strict=False):
        feature, value = edges[e]
        rows[2 * i, feature] = value
    return rows


def assert_close(got: Any, want: Any) -> None:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    ok = (np.isnan(got) & np.isnan(want)) | (np.abs(got - want) <= RTOL * np.abs(want))
    worst = np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300), initial=0.0)
    assert ok.all(), f"{(~ok).sum()} values differ, by up to {worst:.3g} relative"


def check(model: Any, train: np.ndarray, nan: bool = False, seed: int = 0) -> np.ndarray:
    """Convert, run the verification rows through onnxruntime and the model, compare."""
    graph = trees.to_onnx(model, train.shape[1])
    rows = verification_rows(train, graph, nan, np.random.default_rng(seed))
    got = session(graph).run(None, {"input": rows})
    if hasattr(model, "predict_proba"):
        labels = model.predict(rows)
        assert got[0].tolist() == labels.tolist()
        assert_close(got[1], model.predict_proba(rows))
    elif isinstance(model, IsolationForest):
        assert got[0].tolist() == model.predict(rows).tolist()
        assert_close(got[1].ravel(), model.decision_function(rows))
    else:
        assert_close(got[0].ravel(), model.predict(rows))
    return rows


def data(seed: int, n: int = 300, features: int = 5, nan: bool = False) -> tuple[Any, ...]:
    """Features, a regression target, a binary and a three-class one."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    y = X[:, 0] * 3 + np.sin(X[:, 1]) + rng.normal(size=n) * 0.1
    binary = (X[:, 0] + X[:, 2] + rng.normal(size=n) * 0.3 > 0).astype(np.int64)
    three = np.digitize(X[:, 0] + X[:, 3], [-0.5, 0.5])
    if nan:
        X[rng.random(X.shape) < 0.1] = np.nan
    return X, y, binary, three


def test_a_forest_whose_votes_tie_answers_as_scikit_learn() -> None:
    """100 trees on Iris: on a 0.1 grid many rows get equal votes for two classes; the sums
    are scikit-learn's, to the bit, so np.argmax breaks each tie the same way."""
    X, y = load_iris(return_X_y=True)
    for forest in (RandomForestClassifier, ExtraTreesClassifier):
        model = forest(n_estimators=100, random_state=0).fit(X, y)
        graph = trees.to_onnx(model, 4)
        rng = np.random.default_rng(0)
        rows = np.round(rng.uniform(X.min(0) - 1, X.max(0) + 1, size=(ROWS, 4)), 1)
        labels, proba = session(graph).run(None, {"input": rows})
        want = model.predict_proba(rows)
        ties = np.sum(np.sort(want, axis=1)[:, -1] == np.sort(want, axis=1)[:, -2])
        assert ties > 1000  # the test is about ties: it has them
        assert np.array_equal(proba, want)
        assert labels.tolist() == model.predict(rows).tolist()


def test_float32_input_gives_the_same_answers() -> None:
    """The engine feeds tree models float32: the graph then skips its own float32 cast."""
    X, y, binary, _ = data(1)
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, binary)
    graph = trees.to_onnx(model, X.shape[1], "float32")
    rows = verification_rows(X, graph, False, np.random.default_rng(1))
    labels, proba = session(graph).run(None, {"input": rows.astype(np.float32)})
    assert labels.tolist() == model.predict(rows).tolist()
    assert np.array_equal(proba, model.predict_proba(rows))


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomForestRegressor(n_estimators=30, random_state=0),
        lambda: ExtraTreesRegressor(n_estimators=30, random_state=0),
        lambda: DecisionTreeRegressor(random_state=0),
        lambda: BaggingRegressor(n_estimators=20, max_features=3, random_state=0),
    ],
    ids=["random-forest", "extra-trees", "decision-tree", "bagging"],
)
@pytest.mark.parametrize("nan", [False, True], ids=["numbers", "nan"])
def test_forest_regressors(make: Any, nan: bool) -> None:
    X, y, _, _ = data(2, nan=nan)
    check(make().fit(X, y), X, nan)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomForestClassifier(n_estimators=30, random_state=0),
        lambda: ExtraTreesClassifier(n_estimators=30, random_state=0),
        lambda: DecisionTreeClassifier(random_state=0),
        lambda: BaggingClassifier(n_estimators=20, max_features=3, random_state=0),
    ],
    ids=["random-forest", "extra-trees", "decision-tree", "bagging"],
)
@pytest.mark.parametrize("target", [2, 3], ids=["binary", "multiclass"])
def test_forest_classifiers(make: Any, target: int) -> None:
    X, _, *targets = data(3, nan=True)
    check(make().fit(X, targets[target - 2]), X, nan=True)


def test_forest_classes_as_strings() -> None:
    X, _, _, three = data(4)
    names = np.array(["setosa", "versicolor", "virginica"])[three]
    check(RandomForestClassifier(n_estimators=20, random_state=0).fit(X, names), X)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomForestClassifier(n_estimators=20, random_state=0),
        lambda: HistGradientBoostingClassifier(max_iter=20),
    ],
    ids=["forest", "hist"],
)
def test_classes_as_floats(make: Any) -> None:
    """A target read from a CSV with gaps is floats: the labels come out as those floats."""
    X, _, _, three = data(4)
    model = make().fit(X, np.array([-1.0, 0.0, 3.0])[three])
    rows = check(model, X)
    assert set(model.predict(rows).tolist()) == {-1.0, 0.0, 3.0}


@pytest.mark.parametrize(
    "make,target",
    [
        (lambda: GradientBoostingRegressor(n_estimators=100, random_state=0), 0),
        (lambda: GradientBoostingRegressor(loss="huber", n_estimators=50, random_state=0), 0),
        (lambda: GradientBoostingClassifier(n_estimators=100, random_state=0), 1),
        (
            lambda: GradientBoostingClassifier(loss="exponential", n_estimators=50, random_state=0),
            1,
        ),
        (lambda: GradientBoostingClassifier(n_estimators=40, random_state=0), 2),
        (lambda: GradientBoostingRegressor(init="zero", n_estimators=30, random_state=0), 0),
    ],
    ids=["regressor", "huber", "binary", "exponential", "multiclass", "zero-init"],
)
def test_gradient_boosting(make: Any, target: int) -> None:
    X, *targets = data(5)
    check(make().fit(X, targets[target]), X)


@pytest.mark.parametrize(
    "make,target",
    [
        (lambda: HistGradientBoostingRegressor(max_iter=60, random_state=0), 0),
        (lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=40, random_state=0), 3),
        (lambda: HistGradientBoostingClassifier(max_iter=60, random_state=0), 1),
        (lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0), 2),
    ],
    ids=["regressor", "poisson", "binary", "multiclass"],
)
def test_hist_gradient_boosting_with_nan(make: Any, target: int) -> None:
    X, y, binary, three = data(6, n=600, nan=True)
    check(make().fit(X, [y, binary, three, np.exp(y / 4)][target]), X, nan=True)


@pytest.mark.parametrize("target", [0, 1, 2], ids=["regressor", "binary", "multiclass"])
def test_hist_gradient_boosting_with_categories(target: int) -> None:
    """Categories as numbers (integers and not), NaN among them; rows with unseen ones,
    values between them and NaN go where the model sends missing values."""
    rng = np.random.default_rng(7)
    n = 1500
    X = rng.normal(size=(n, 4))
    X[:, 1] = rng.integers(0, 8, n)
    X[:, 3] = rng.choice([-1.5, 2.0, 7.0, 30.0], n)
    X[rng.random(n) < 0.05, 1] = np.nan
    y = X[:, 0] + np.nan_to_num(X[:, 1] % 3) + (X[:, 3] > 5) + rng.normal(size=n) * 0.1
    y = [y, (y > np.median(y)).astype(int), np.digitize(y, np.quantile(y, [0.33, 0.66]))][target]
    make = HistGradientBoostingRegressor if target == 0 else HistGradientBoostingClassifier
    model = make(categorical_features=[1, 3], max_iter=40, random_state=0).fit(X, y)
    graph = trees.to_onnx(model, 4)
    rows = verification_rows(X, graph, True, rng)
    rows[:, 1] = rng.integers(-2, 11, ROWS) + rng.choice([0.0, 0.0, 0.5, -0.0], ROWS)
    rows[:, 3] = rng.choice([-1.5, 2.0, 7.0, 30.0, 3.0, np.nan], ROWS)
    rows[rng.random(ROWS) < 0.1, 1] = np.nan
    got = session(graph).run(None, {"input": rows})
    if target == 0:
        assert_close(got[0].ravel(), model.predict(rows))
    else:
        assert got[0].tolist() == model.predict(rows).tolist()
        assert_close(got[1], model.predict_proba(rows))


@pytest.mark.parametrize(
    "make",
    [
        lambda: IsolationForest(n_estimators=100, random_state=0),
        lambda: IsolationForest(n_estimators=50, max_features=3, contamination=0.1, random_state=0),
    ],
    ids=["default", "feature-subsets"],
)
def test_isolation_forest(make: Any) -> None:
    X, *_ = data(8, nan=True)
    check(make().fit(X), X, nan=True)


@pytest.mark.parametrize(
    "make,target",
    [
        (lambda: AdaBoostClassifier(n_estimators=50, random_state=0), 1),
        (lambda: AdaBoostClassifier(DecisionTreeClassifier(max_depth=3), random_state=0), 2),
        (lambda: AdaBoostRegressor(n_estimators=50, random_state=0), 0),
    ],
    ids=["binary", "multiclass", "regressor"],
)
def test_adaboost(make: Any, target: int) -> None:
    """SAMME's weighted votes summed in tree order; the regressor's weighted median."""
    X, *targets = data(18)  # it refuses NaN
    check(make().fit(X, targets[target]), X)


def test_pipelines_convert_through_skl2onnx_with_exact_trees() -> None:
    """Preprocessing in float64 (StandardScaler's subtraction and division, as numpy does
    them), then the trees' float32 cast: the pipeline answers as scikit-learn's."""
    X, _, binary, _ = data(9)
    X = X * [1, 10, 100, 0.1, 3]
    scaled = make_pipeline(StandardScaler(), RandomForestClassifier(30, random_state=0))
    check(scaled.fit(X, binary), X)
    columns = ColumnTransformer([("scale", StandardScaler(), [0, 1])], remainder="passthrough")
    boosted = make_pipeline(columns, GradientBoostingClassifier(n_estimators=50, random_state=0))
    check(boosted.fit(X, binary), X)


def test_sums_do_not_depend_on_onnxruntime_threads() -> None:
    """Each tree is its own target and CumSum adds them in order, so more threads (which
    split onnxruntime's own sums) give the same bits."""
    X, y, _, _ = data(10)
    model = RandomForestRegressor(n_estimators=64, random_state=0).fit(X, y)
    graph = trees.to_onnx(model, X.shape[1])
    rows = verification_rows(X, graph, False, np.random.default_rng(10))[:20_000]
    (one,) = session(graph, threads=1).run(None, {"input": rows})
    (four,) = session(graph, threads=4).run(None, {"input": rows})
    assert np.array_equal(one, four)
    assert np.array_equal(one.ravel(), model.predict(rows))


def test_what_has_no_exact_graph_says_so() -> None:
    X, y, _, _ = data(11)
    model = GradientBoostingRegressor(init=LinearRegression(), n_estimators=5).fit(X, y)
    with pytest.raises(trees.NotSupported, match="init estimator"):
        trees.to_onnx(model, X.shape[1])


def test_lightgbm_linear_trees_have_no_exact_graph() -> None:
    """A linear tree's leaf is a linear model of the features, not a value."""
    X, y, _, _ = data(12)
    model = lightgbm.LGBMRegressor(linear_tree=True, n_estimators=5, verbose=-1, n_jobs=1)
    with pytest.raises(trees.NotSupported, match="linear trees"):
        trees.to_onnx(model.fit(X, y), X.shape[1])


def test_skl2onnx_converters_come_back_after() -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    X, y, _, _ = data(12)
    model = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, y)
    trees.to_onnx(model, X.shape[1])
    graph = convert_sklearn(model, initial_types=[("input", DoubleTensorType([None, 5]))])
    assert [n.op_type for n in graph.graph.node] == ["TreeEnsembleRegressor"]


XGBOOST_LOG_LINKS = {"poisson": "count:poisson", "gamma": "reg:gamma", "tweedie": "reg:tweedie"}


@pytest.mark.parametrize(
    "kind",
    ["regressor", "binary", "multiclass", "early-stopping", *XGBOOST_LOG_LINKS, "logistic"]
    + ["forest", "forest-regressor", "dart", "dart-multiclass"],
)
def test_xgboost(kind: str) -> None:
    """float32 margins summed tree by tree in float32, glibc's expf for the probabilities and
    the log-link regressions' values."""
    X, y, binary, three = data(13, n=600, nan=True)
    settings = {"n_estimators": 60, "max_depth": 4}
    if kind == "regressor":
        model = xgboost.XGBRegressor(**settings).fit(X, y)
    elif kind in XGBOOST_LOG_LINKS:
        objective = XGBOOST_LOG_LINKS[kind]
        model = xgboost.XGBRegressor(objective=objective, **settings).fit(X, np.exp(y / 4))
    elif kind == "logistic":  # a regression on [0, 1], through the sigmoid
        sigmoid = 1 / (1 + np.exp(-y))
        model = xgboost.XGBRegressor(objective="reg:logistic", **settings).fit(X, sigmoid)
    elif kind == "forest":  # one round of 30 trees per class, summed
        model = xgboost.XGBRFClassifier(n_estimators=30, max_depth=4).fit(X, three)
    elif kind == "forest-regressor":
        model = xgboost.XGBRFRegressor(n_estimators=30, max_depth=4).fit(X, y)
    elif kind.startswith("dart"):  # trees dropped while fitting, then weighed
        dart = xgboost.XGBClassifier(booster="dart", rate_drop=0.3, **settings)
        model = dart.fit(X, three if kind == "dart-multiclass" else binary)
        weights = json.loads(model.get_booster().save_raw(raw_format="json"))
        assert len(set(weights["learner"]["gradient_booster"]["weight_drop"])) > 1
    elif kind == "early-stopping":  # predict stops at the best iteration
        model = xgboost.XGBClassifier(n_estimators=300, early_stopping_rounds=3)
        model.fit(X[:400], three[:400], eval_set=[(X[400:], three[400:])], verbose=False)
        assert model.best_iteration < 299
    else:
        target = binary if kind == "binary" else three
        model = xgboost.XGBClassifier(n_estimators=40, max_depth=4).fit(X, target)
    check(model, X, nan=True)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="XGBoost's expf is glibc's here")
def test_xgboost_exp_is_glibc_expf_for_every_margin() -> None:
    """expf bit for bit (a plain exp rounded to float32 is not), down to 0 below -103.97 and up
    to inf above 88.72, for margins far beyond either."""
    expf = ctypes.CDLL(ctypes.util.find_library("m")).expf
    expf.restype, expf.argtypes = ctypes.c_float, [ctypes.c_float]
    rng = np.random.default_rng(16)
    edges = np.float32([-103.97, -103.972, -104, 88.7, 88.72283, 88.722839, 89, 89.5])
    edges = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    margins = np.concatenate(
        [rng.uniform(-110, 95, 100_000), edges, [-1e30, 1e30, -3e38, 3e38, 0.0, -0.0]]
    ).astype(np.float32)
    w = trees.Writer()
    w.op("Identity", [trees._xgboost_exp(w, "margin")], output="exp")
    graph = helper.make_model(
        helper.make_graph(
            w.nodes,
            "exp",
            [helper.make_tensor_value_info("margin", onnx.TensorProto.FLOAT, [None])],
            [helper.make_tensor_value_info("exp", onnx.TensorProto.FLOAT, [None])],
            w.initializers,
        ),
        opset_imports=[helper.make_opsetid("", trees.OPSET)],
    )
    (got,) = session(graph).run(None, {"margin": margins})
    want = np.array([expf(float(m)) for m in margins], np.float32)
    assert np.isinf(want).sum() > 100 and (want == 0).sum() > 100  # both ends are reached
    assert got.tobytes() == want.tobytes()
    with np.errstate(over="ignore"):
        plain = np.exp(margins.astype(np.float64)).astype(np.float32)
    assert plain.tobytes() != want.tobytes()  # what the test tells apart


@pytest.mark.parametrize(
    "kind",
    ["regressor", "binary", "multiclass", "categories", "zero-as-missing", "poisson", "stopped"]
    + ["one-vs-all", "forest", "forest-regressor"],
)
def test_lightgbm(kind: str) -> None:
    X, y, binary, three = data(14, n=800, nan=kind != "zero-as-missing")
    settings: dict[str, Any] = {"n_estimators": 60, "verbose": -1}
    target = {"binary": binary, "multiclass": three, "poisson": np.exp(y / 4)}.get(kind, y)
    rng = np.random.default_rng(14)
    fit: dict[str, Any] = {}
    if kind == "categories":
        X[:, 4] = rng.integers(0, 6, len(X))
        target = y + (X[:, 4] % 3 == 0) * 2
        settings.update(min_data_per_group=5, cat_smooth=1)
        fit["categorical_feature"] = [4]
    if kind == "zero-as-missing":
        X[np.abs(X) < 0.3] = 0
        settings["zero_as_missing"] = True
    if kind == "poisson":
        settings["objective"] = "poisson"
    if kind == "stopped":  # predict stops at the best iteration
        settings["n_estimators"] = 300
        fit["eval_X"], fit["eval_y"] = X[600:], y[600:]
        fit["callbacks"] = [lightgbm.early_stopping(3, verbose=False)]
    if kind == "one-vs-all":  # a sigmoid per class, not normalised
        settings["objective"], target = "multiclassova", three
    if kind.startswith("forest"):  # the trees' average
        settings.update(boosting_type="rf", subsample=0.6, subsample_freq=1)
        target = y if kind == "forest-regressor" else three
    classes = ("binary", "multiclass", "one-vs-all", "forest")
    make = lightgbm.LGBMClassifier if kind in classes else lightgbm.LGBMRegressor
    fitted = 600 if kind == "stopped" else len(X)  # the rest is the evaluation set
    model = make(**settings).fit(X[:fitted], target[:fitted], **fit)
    if kind == "stopped":
        assert 0 < model.booster_.best_iteration < 300
    graph = trees.to_onnx(model, X.shape[1])
    rows = verification_rows(X, graph, kind != "zero-as-missing", rng)
    if kind == "categories":  # unseen, negative, fractional and NaN categories
        rows[:, 4] = rng.integers(-2, 9, ROWS) + rng.choice([0.0, 0.5, -0.5, 0.999], ROWS)
        rows[rng.random(ROWS) < 0.05, 4] = np.nan
    if kind == "zero-as-missing":
        near_zero = [0.0, -0.0, 1e-36, trees.LIGHTGBM_ZERO, -trees.LIGHTGBM_ZERO, 2e-35, np.nan]
        mask = rng.random(rows.shape) < 0.1
        rows[mask] = rng.choice(near_zero, mask.sum())
    got = session(graph).run(None, {"input": rows})
    if hasattr(model, "classes_"):
        assert got[0].tolist() == model.predict(rows).tolist()
        assert_close(got[1], model.predict_proba(rows))
    else:
        assert_close(got[0].ravel(), model.predict(rows))


def test_lightgbm_splits_nan_from_every_number_at_infinity() -> None:
    """Where NaN is what matters, LightGBM splits it from every number at an infinite
    threshold, which dump_model() writes as 1e300: numbers above 1e300 (inf too) go where
    every other number goes."""
    X, y, _, _ = data(15, n=800)
    gone = np.random.default_rng(15).random(len(X)) < 0.3
    X[gone, 1] = np.nan
    model = lightgbm.LGBMRegressor(n_estimators=30, verbose=-1).fit(X, y + gone * 5)
    text = model.booster_.model_to_string().splitlines()
    thresholds = [t.removeprefix("threshold=").split() for t in text if t.startswith("threshold=")]
    assert any("inf" in t for t in thresholds)  # the test is about such a split: it has one
    graph = trees.to_onnx(model, X.shape[1])
    rng = np.random.default_rng(15)
    rows = verification_rows(X, graph, True, rng)
    huge = [1e300, np.nextafter(1e300, np.inf), 1e301, np.finfo(np.float64).max, np.inf]
    mask = rng.random(rows.shape) < 0.1
    rows[mask] = rng.choice([*huge, *(-v for v in huge)], mask.sum())
    (got,) = session(graph).run(None, {"input": rows})
    assert_close(got.ravel(), model.predict(rows))


COLOURS = ["red", "green", "blue", "grey", "violet"]  # not sorted; no training row is violet
SIZES = ["s", "m", "l"]
NUMBERS = ["f0", "f1", "f2"]


def category_frame(rng: np.random.Generator, n: int, colours: list[Any], sizes: list[Any]) -> Any:
    """Three numbers (a tenth missing), then a colour and a size of the pandas category dtypes
    above, drawn from `colours` and `sizes` (None: missing)."""
    frame = pd.DataFrame(rng.normal(size=(n, 3)) * [1, 10, 0.1], columns=NUMBERS)
    frame = frame.mask(rng.random((n, 3)) < 0.1)
    for name, values, dtype in (("colour", colours, COLOURS), ("size", sizes, SIZES)):
        drawn = rng.choice(np.array(values, dtype=object), n)
        frame[name] = pd.Categorical(drawn, categories=dtype)
    return frame


def category_target(frame: Any, classes: int) -> np.ndarray:
    """Classes 0 to classes - 1 from f0, the colour and the size (missing included)."""
    colour, size = frame["colour"], frame["size"]
    score = frame["f0"].fillna(0) + 2 * (colour == "red") + (colour == "blue")
    score += size.isna() - 1.5 * (size == "l")
    return np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))


@pytest.mark.parametrize("library", ["xgboost", "lightgbm", "hist-gradient-boosting"])
@pytest.mark.parametrize("target", [2, 3], ids=["binary", "multiclass"])
def test_pandas_categories_given_as_strings(library: str, target: int) -> None:
    """Fitted on a DataFrame with pandas category columns and given one input per column, a
    category's as strings (compile.py's "columns" form): each string is the code the model
    learnt. XGBoost's and LightGBM's is its place among the dtype's categories, violet (in
    the dtype, in no training row) too; a null (which the compiled engine gives as "") and a
    string the dtype lacks are missing, as pandas.Categorical makes both for the estimator
    (the schema refuses such a string: the graph still takes it as the estimator would).
    HistGradientBoosting's is its place among the strings it saw, sorted (not the dtype's
    order); it is given the strings as they are, and any other string is missing to it."""
    rng = np.random.default_rng(15)
    train = category_frame(rng, 1000, COLOURS[:4], [*SIZES, None])
    y = category_target(train, target)
    if library == "xgboost":  # one-hot splits (the default below 4 categories), or partitions
        model = xgboost.XGBClassifier(
            n_estimators=30,
            max_depth=4,
            enable_categorical=True,
            tree_method="hist",
            max_cat_to_onehot=4 if target == 2 else 1,
        )
    elif library == "lightgbm":
        model = lightgbm.LGBMClassifier(
            n_estimators=30, verbose=-1, min_data_per_group=5, cat_smooth=1, n_jobs=1
        )
    else:
        model = HistGradientBoostingClassifier(
            categorical_features="from_dtype", max_iter=30, random_state=0
        )
    model.fit(train, y)
    dtype = "float32" if trees.compares_float32(model) else "float64"
    graph = trees.to_onnx(model, 5, dtype, columns=True)
    rows = verification_rows(train[NUMBERS].to_numpy(), graph, True, rng)
    strings = {
        "colour": rng.choice(np.array([*COLOURS, "purple", None], dtype=object), ROWS),
        "size": rng.choice(np.array([*SIZES, "xl", None], dtype=object), ROWS),
    }
    feeds = {name: rows[:, [i]].astype(dtype) for i, name in enumerate(NUMBERS)}
    frame = pd.DataFrame(rows, columns=NUMBERS)
    for (name, values), dtype_values in zip(strings.items(), (COLOURS, SIZES), strict=True):
        feeds[name] = np.array(["" if v is None else v for v in values], dtype=object)[:, None]
        if library == "hist-gradient-boosting":
            frame[name] = pd.Series(values, dtype=object)
        else:
            known = [v if v in dtype_values else None for v in values]
            frame[name] = pd.Categorical(known, categories=dtype_values)
    labels, proba = session(graph).run(None, feeds)
    assert labels.tolist() == model.predict(frame).tolist()
    assert_close(proba, model.predict_proba(frame))


def test_xgboost_categories_given_as_numbers() -> None:
    """Codes in a matrix, as XGBoost takes them from an array: the integer part of those from
    zero; negative ones, and those beyond the categories, in no set; NaN the default way."""
    rng = np.random.default_rng(17)
    train = category_frame(rng, 1000, COLOURS[:4], [*SIZES, None])
    model = xgboost.XGBClassifier(
        n_estimators=30, max_depth=4, enable_categorical=True, max_cat_to_onehot=1
    ).fit(train, category_target(train, 3))
    graph = trees.to_onnx(model, 5, "float32")
    codes = [train[c].cat.codes.replace(-1, np.nan) for c in ("colour", "size")]
    rows = verification_rows(np.column_stack([train[NUMBERS], *codes]), graph, True, rng)
    for f, count in ((3, len(COLOURS)), (4, len(SIZES))):
        rows[:, f] = rng.integers(-2, count + 2, ROWS) + rng.choice([0.0, 0.5, -0.5, 0.999], ROWS)
        rows[rng.random(ROWS) < 0.1, f] = np.nan
    labels, proba = session(graph).run(None, {"input": rows.astype(np.float32)})
    assert labels.tolist() == model.predict(rows, validate_features=False).tolist()
    assert_close(proba, model.predict_proba(rows, validate_features=False))


def test_an_empty_string_among_the_categories_has_no_exact_graph() -> None:
    """The compiled engine gives a null as "": a category "" would be taken for one."""
    rng = np.random.default_rng(16)
    frame = category_frame(rng, 200, COLOURS, SIZES)
    frame["colour"] = frame["colour"].cat.rename_categories({"violet": ""})
    model = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1, n_jobs=1)
    model.fit(frame, frame["f0"].fillna(0) > 0)
    with pytest.raises(trees.NotSupported, match="empty string"):
        trees.to_onnx(model, 5, columns=True)
