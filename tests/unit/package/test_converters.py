"""The float64 converters (webapp/package/converters.py): packaged as a user would, each step
is compiled, accepted within 1e-9 and served as the estimator answers; what they do not cover
falls back to scikit-learn, saying why."""

from __future__ import annotations

import itertools
import json
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnxruntime
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    StackingRegressor,
    VotingClassifier,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.kernel_approximation import Nystroem
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    Perceptron,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
)
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.multiclass import OneVsRestClassifier
from sklearn.naive_bayes import BernoulliNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    Binarizer,
    FunctionTransformer,
    KBinsDiscretizer,
    MaxAbsScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    PowerTransformer,
    SplineTransformer,
    StandardScaler,
    TargetEncoder,
)
from sklearn.svm import SVC, SVR, LinearSVC, NuSVC, NuSVR
from sklearn.tree import DecisionTreeClassifier

from webapp.core.model import load_model
from webapp.core.verification import PROBABILITY_FLOOR
from webapp.core.vocabulary import NULL_STRING, ArtifactError
from webapp.package import command, converters, distances
from webapp.package import compile as compiling
from webapp.package import describe as package
from webapp.package.trees import NotSupported

pytestmark = pytest.mark.unit


def packaged(
    model: Any, table: pd.DataFrame, folder: Path, *options: str
) -> tuple[dict[str, Any], Any]:
    """The compiled entry of the model packaged with its table (and the command's `options`),
    and the model as served."""
    artifact = folder / "model.pkl"
    joblib.dump(model, artifact)
    table.to_csv(folder / "table.csv", index=False)
    assert command.main([str(artifact), "--data", str(folder / "table.csv"), *options]) == 0
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    return manifest["compiled"], load_model(artifact)


def data(seed: int, nan: bool = False) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 4)) * [1, 3, 0.5, 10]
    y = X[:, 0] * 2 + X[:, 1] * X[:, 2] + rng.normal(size=300) * 0.1
    binary = (X[:, 0] + X[:, 3] / 10 > 0).astype(int)
    if nan:
        X[rng.random(X.shape) < 0.15] = np.nan
        X[:, 2] = np.nan_to_num(X[:, 2])  # a column that never misses: no indicator for it
    return pd.DataFrame(X, columns=["a", "b", "c", "d"]), y, binary


def held_out(seed: int, nan: bool = False) -> np.ndarray:
    table, _, _ = data(seed, nan)
    return table.to_numpy()


def classes_of(y: np.ndarray, count: int) -> np.ndarray:
    """y cut at its quantiles into `count` classes of about the same size."""
    return np.digitize(y, np.quantile(y, np.linspace(0, 1, count + 1)[1:-1]))


def assert_compiled_exactly(
    model: Any, table: pd.DataFrame, folder: Path, seed: int, rtol: float = 1e-12
) -> Any:
    """Package the fitted model with its table; it must be served by its float64 graph, with
    the estimator's classes and its probabilities within rtol on held-out rows (twice as
    wide as the table's). The model as served."""
    compiled, served = packaged(model, table, folder)
    assert (compiled.get("dtype"), served.engine.name) == ("float64", "onnx"), compiled
    rows = held_out(seed) * 2
    frame = pd.DataFrame(rows, columns=table.columns)
    assert served.predict(rows) == model.predict(frame).tolist()
    proba = served.engine.predict_proba(rows)
    np.testing.assert_allclose(proba, model.predict_proba(frame), rtol=rtol, atol=1e-15)
    return served


def float64_graph(estimator: Any, features: int) -> Any:
    """The estimator's graph under the float64 converters, one [N, features] float64 input
    named "input"."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    with converters.float64_converters():
        return convert_sklearn(
            estimator, "model", initial_types=[("input", DoubleTensorType([None, features]))]
        )


def float64_session(estimator: Any, features: int) -> Any:
    """float64_graph's graph in an onnxruntime session."""
    graph = float64_graph(estimator, features)
    return onnxruntime.InferenceSession(
        graph.SerializeToString(), providers=["CPUExecutionProvider"]
    )


@pytest.mark.parametrize(
    "imputer",
    [
        SimpleImputer(add_indicator=True),
        SimpleImputer(strategy="median", add_indicator=True),
        SimpleImputer(strategy="constant", fill_value=-1.0),
    ],
    ids=["mean-indicator", "median-indicator", "constant"],
)
def test_imputed_numbers(imputer: SimpleImputer, tmp_path: Path) -> None:
    table, _, binary = data(1, nan=True)
    model = make_pipeline(imputer, StandardScaler(), LogisticRegression()).fit(table, binary)
    compiled, served = packaged(model, table, tmp_path)
    assert compiled.get("tolerance") == compiling.EXACT_RTOL, compiled
    assert served.engine.name == "onnx"
    rows = held_out(2, nan=True)
    frame = pd.DataFrame(rows, columns=table.columns)
    assert served.predict(rows) == model.predict(frame).tolist()
    gap = np.abs(served.engine.predict_proba(rows) - model.predict_proba(frame))
    assert gap.max() <= PROBABILITY_FLOOR


def strings(seed: int, empty: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """Two string columns, a fifth of them missing (with "" a value of colour's, if `empty`),
    and a number."""
    rng = np.random.default_rng(seed)
    colours = ["red", "green", "blue", ""] if empty else ["red", "green", "blue"]
    table = pd.DataFrame(
        {
            "x": rng.normal(size=300),
            "colour": rng.choice(colours, 300),
            "size": rng.choice(["s", "m", "l"], 300),
        }
    )
    for name in ("colour", "size"):
        table[name] = table[name].mask(rng.random(300) < 0.2)
    score = table["x"] + (table["colour"] == "red") - (table["size"] == "s") * 1.5
    return table, (score + (table["colour"] == "") > 0).to_numpy().astype(int)


def imputed_strings(imputer: SimpleImputer, encoder: OneHotEncoder) -> Any:
    """The pipeline users fit: a scaled number, then strings imputed and one-hot encoded (the
    numbers first: skl2onnx gives the encoder's float32 to the model otherwise)."""
    encode = ColumnTransformer(
        [
            ("x", StandardScaler(), ["x"]),
            ("strings", make_pipeline(imputer, encoder), ["colour", "size"]),
        ]
    )
    return make_pipeline(encode, LogisticRegression())


def as_json(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as a client sends them: null for a missing value."""
    records = frame.astype(object).to_dict(orient="records")
    return [{k: None if pd.isna(v) else v for k, v in r.items()} for r in records]


@pytest.mark.parametrize("trees", [False, True], ids=["scaled-logistic", "forest"])
def test_an_imbalanced_learn_pipeline_is_compiled_without_its_sampler(
    trees: bool, tmp_path: Path
) -> None:
    """imbalanced-learn's Pipeline resamples (SMOTE) only while it is fitted, and skl2onnx has
    no converter for a sampler: the graph is the other steps', verified against the pipeline's
    own answers (a forest left alone: its exact trees, in float32)."""
    from imblearn.over_sampling import SMOTE
    from imblearn.pipeline import make_pipeline as resampling_pipeline

    table, _, binary = data(27)
    last = RandomForestClassifier(20, random_state=0) if trees else LogisticRegression()
    steps = (
        [SMOTE(random_state=0), last] if trees else [StandardScaler(), SMOTE(random_state=0), last]
    )
    model = resampling_pipeline(*steps).fit(table, binary)
    compiled, served = packaged(model, table, tmp_path)
    assert served.engine.name == "onnx", compiled
    assert compiled["dtype"] == ("float32" if trees else "float64")
    rows = pd.DataFrame(held_out(28) * 2, columns=table.columns)
    assert served.predict(rows.to_numpy()) == model.predict(rows).tolist()
    proba = served.engine.predict_proba(rows.to_numpy())
    np.testing.assert_allclose(proba, model.predict_proba(rows), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "imputer",
    [
        SimpleImputer(strategy="most_frequent"),
        SimpleImputer(strategy="constant"),
        SimpleImputer(strategy="constant", fill_value="unknown", keep_empty_features=True),
    ],
    ids=["most-frequent", "constant", "constant-kept"],
)
def test_imputed_strings(imputer: SimpleImputer, tmp_path: Path) -> None:
    """A null category (given to the graph as "") becomes the column's statistic, as NaN does
    in scikit-learn; the encoder's categories are closed, so no client sends "" itself."""
    table, y = strings(20)
    model = imputed_strings(imputer, OneHotEncoder()).fit(table, y)
    compiled, served = packaged(model, table, tmp_path)
    assert compiled.get("tolerance") == compiling.EXACT_RTOL, compiled
    assert served.engine.name == "onnx"
    frame, _ = strings(21)
    assert frame.isna().sum()[["colour", "size"]].min() > 20
    columns = served.columns(as_json(frame))
    assert served.predict(columns) == model.predict(frame).tolist()
    gap = np.abs(served.engine.predict_proba(columns) - model.predict_proba(frame))
    assert gap.max() <= PROBABILITY_FLOOR


@pytest.mark.parametrize(
    "empty, encoder", [(False, OneHotEncoder(handle_unknown="ignore")), (True, OneHotEncoder())]
)
def test_an_empty_string_a_client_sends_is_not_taken_for_a_null(
    empty: bool, encoder: OneHotEncoder, tmp_path: Path
) -> None:
    """Where any string is taken (an encoder that ignores unknown values), or "" was a value
    in the training table, "" is a client's value, which scikit-learn keeps, and a null is
    NaN, which it fills: the graph is given the null as NULL_STRING, coded apart from "", and
    fills that alone."""
    table, y = strings(22, empty=empty)
    model = imputed_strings(SimpleImputer(strategy="most_frequent"), encoder).fit(table, y)
    compiled, served = packaged(model, table, tmp_path)
    assert (compiled["inputs"], served.engine.name) == ("matrix", "onnx"), compiled
    row = {"x": 0.5, "colour": "", "size": "m"}
    rows = [row, {**row, "colour": None}, {**row, "colour": NULL_STRING}][: 2 if empty else 3]
    frame = pd.DataFrame(rows).astype({"colour": object})
    frame["colour"] = frame["colour"].fillna(np.nan)  # a null, as pandas reads it
    proba = served.engine.predict_proba(served.columns(rows))
    np.testing.assert_allclose(proba, model.predict_proba(frame), rtol=1e-12, atol=1e-15)
    assert proba[0].tolist() != proba[1].tolist()


def test_strings_fitted_with_none_are_compiled(tmp_path: Path) -> None:
    """A column whose missing values were None when fitted (a table from a database, say): the
    imputer of NaN passed None on, and the encoder learnt it apart from "". The graph is given
    a null as NULL_STRING, and a client's "" or NULL_STRING as any other string."""
    table, y = strings(23)
    for name in ("colour", "size"):
        table[name] = pd.Series([None if pd.isna(v) else v for v in table[name]], dtype=object)
    encoder = OneHotEncoder(handle_unknown="ignore")
    model = imputed_strings(SimpleImputer(strategy="most_frequent"), encoder).fit(table, y)
    assert any(c[-1] is None for c in model[0].named_transformers_["strings"][-1].categories_)
    compiled, served = packaged(model, table, tmp_path)
    assert served.engine.name == "onnx", compiled
    rows = as_json(strings(24)[0])
    for text in ("", NULL_STRING, "red", None):
        rows += [{"x": 0.5, "colour": text, "size": size} for size in ("", NULL_STRING, None)]
    frame = pd.DataFrame({k: pd.Series([r[k] for r in rows], dtype=object) for k in rows[0]})
    frame["x"] = frame["x"].astype(float)
    assert sum(v is None for v in frame["colour"]) > 20  # as a client's null reaches the model
    columns = served.columns(rows)
    assert served.predict(columns) == model.predict(frame).tolist()
    gap = np.abs(served.engine.predict_proba(columns) - model.predict_proba(frame))
    assert gap.max() <= PROBABILITY_FLOOR
    # codes that hold no string for such a null are refused, not taken for ""'s
    manifest = json.loads((tmp_path / "model.json").read_text())
    assert compiled["inputs"] == "matrix" and NULL_STRING in compiled["codes"]["colour"]
    manifest["compiled"]["codes"]["colour"].remove(NULL_STRING)
    (tmp_path / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="codes for 'colour' are not a table"):
        load_model(tmp_path / "model.pkl", engine="onnx")


def transformed_by_graph(
    step: Any, rows: np.ndarray, null: tuple[str, str] | None = ("", "NaN")
) -> Any:
    """What a step's graph alone (an imputer's, an encoder's) gives for rows of strings (or
    numbers), `null` the string that only a null is and what scikit-learn is given for it
    (None: no such string)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    kind = StringTensorType if rows.dtype == object else DoubleTensorType
    with converters.float64_converters({} if null is None else {"input": null}):
        graph = convert_sklearn(
            step, "model", initial_types=[("input", kind([None, rows.shape[1]]))]
        )
    session = onnxruntime.InferenceSession(
        graph.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (imputed,) = session.run(None, {"input": rows})
    return imputed


FITTED = np.array(
    [["a", np.nan, "x"], ["b", np.nan, "?"], ["a", np.nan, "?"], [np.nan, np.nan, "x"]],
    dtype=object,
)  # the second column never seen: its statistic is missing


@pytest.mark.parametrize(
    "imputer",
    [
        SimpleImputer(strategy="most_frequent"),
        SimpleImputer(strategy="constant"),
        SimpleImputer(strategy="constant", fill_value="none", keep_empty_features=True),
        SimpleImputer(strategy="most_frequent", missing_values="?"),
        SimpleImputer(strategy="constant", missing_values=""),
        SimpleImputer(strategy="most_frequent", missing_values=None),
    ],
    ids=["most-frequent", "constant", "constant-kept", "question-mark", "empty", "none"],
)
@pytest.mark.filterwarnings("ignore:Skipping features without any observed values")
def test_string_imputers_fill_as_scikit_learn(imputer: SimpleImputer) -> None:
    """Each string as transform fills it, a column without a statistic dropped (or kept with
    fill_value). A NaN is given as "" (no client's ""); a missing value other than NaN is
    compared as it is, "" a value like any other: no null reaches it (scikit-learn refuses
    NaN there, so the service refuses null)."""
    missing = imputer.missing_values
    nan = isinstance(missing, float) and np.isnan(missing)
    fitted = FITTED.copy()
    if not nan:
        fitted[pd.isna(fitted)] = missing
    imputer.fit(fitted)
    values = np.array(["a", "b", "x", "?", "other", np.nan if nan else ""], dtype=object)
    rows = np.stack(np.meshgrid(values, values, values), axis=-1).reshape(-1, 3)
    expected = imputer.transform(rows)
    given = np.where(pd.isna(rows), "", rows)
    assert given.shape == rows.shape
    assert (transformed_by_graph(imputer, given) == expected).all()


@pytest.mark.parametrize(
    "imputer, why",
    [
        (SimpleImputer(strategy="most_frequent", keep_empty_features=True), "filled with 0"),
        (SimpleImputer(strategy="constant", fill_value=0), "filled with 0"),
        (SimpleImputer(strategy="most_frequent", add_indicator=True), "indicator"),
    ],
    ids=["most-frequent-kept", "a-number", "indicator"],
)
@pytest.mark.filterwarnings("ignore:Skipping features without any observed values")
def test_string_imputers_scikit_learn_alone_serves(imputer: SimpleImputer, why: str) -> None:
    """Strings filled with a number (beside strings), or a missing-value indicator's flags."""
    imputer.fit(FITTED)
    with pytest.raises(NotSupported, match=why):
        transformed_by_graph(imputer, np.array([["a", "", "x"]], dtype=object))


def test_an_empty_string_a_client_may_send_is_not_taken_for_a_null() -> None:
    imputer = SimpleImputer(strategy="most_frequent").fit(FITTED[:, [0, 2]])
    with pytest.raises(NotSupported, match="\"\" may be a value of 'input'"):
        transformed_by_graph(imputer, np.array([["a", ""]], dtype=object), null=None)


@pytest.mark.parametrize(
    "imputer",
    [
        SimpleImputer(strategy="most_frequent"),
        SimpleImputer(strategy="most_frequent", missing_values=None),
        SimpleImputer(strategy="constant", missing_values=None),
    ],
    ids=["nan-passes-none-on", "none-most-frequent", "none-constant"],
)
def test_a_none_is_passed_on_or_filled_as_scikit_learn_does(imputer: SimpleImputer) -> None:
    """A column fitted with None for its missing values (pandas 2 keeps them in an object
    column): an imputer of NaN passes None on, an imputer of None fills it. The graph is given
    NULL_STRING for it, and "" is a client's string like any other."""
    fitted = np.array([["a", None], ["b", None], ["a", "x"], [None, "x"]], dtype=object)
    imputer.fit(fitted)
    values = np.array(["a", "b", "x", "", "other", None], dtype=object)
    rows = np.stack(np.meshgrid(values, values), axis=-1).reshape(-1, 2)
    expected = imputer.transform(rows)
    expected[pd.isna(expected)] = NULL_STRING  # None passed on, where the graph passes its own
    given = np.where(pd.isna(rows), NULL_STRING, rows)
    assert (transformed_by_graph(imputer, given, null=(NULL_STRING, "None")) == expected).all()


WORDS = np.array(["a", "b", "c", "d", None, np.nan], dtype=object)


@pytest.mark.parametrize(
    "encoder, missing",
    [
        (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), np.nan),
        (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=9), None),
        (OrdinalEncoder(encoded_missing_value=-2), np.nan),
        (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), "d"),
        (
            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, min_frequency=5),
            "d",
        ),
        (OrdinalEncoder(dtype=np.int64, encoded_missing_value=-1), np.nan),
    ],
    ids=["nan", "none", "nan-encoded", "complete", "infrequent", "integers"],
)
def test_ordinal_codes_of_strings_are_scikit_learn_s(encoder: Any, missing: Any) -> None:
    """Each string's category's place, the infrequent ones' grouped, a missing category (NaN
    or None, fitted so) encoded_missing_value's or its place, a string no category holds the
    unknown_value: a null given to the graph as NULL_STRING, and "" a string like any other."""
    rng = np.random.default_rng(11)
    fitted = rng.choice(np.array(["a", "b", "c", missing], dtype=object), (200, 2))
    fitted[:3, 1] = "aa"  # infrequent with min_frequency, and not last: grouped apart
    encoder.fit(fitted)
    unknown = encoder.handle_unknown == "use_encoded_value"
    values = [*WORDS[:3], missing, *(["", "zz", "aa"] if unknown else ["aa"])]
    values = [v for v in values if unknown or all(v in set(c) for c in encoder.categories_)]
    rows = np.array(list(itertools.product(values, values)), dtype=object)
    expected = encoder.transform(rows)
    null_as = "None" if missing is None else "NaN"
    given = np.where(pd.isna(rows), NULL_STRING, rows)
    got = transformed_by_graph(encoder, given, null=(NULL_STRING, null_as))
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "encoder",
    [
        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-5),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    ],
    ids=["ordinal", "one-hot"],
)
def test_codes_of_numbers_are_scikit_learn_s(encoder: Any) -> None:
    """Compared in float64 (skl2onnx's ordinal codes in float32: 0.1 and 0.1 + 1e-9 alike),
    a NaN category found by NaN (ordinal: encoded_missing_value)."""
    fitted = np.array([[0.1, 2.0], [0.1 + 1e-9, np.nan], [3.5, 2.0], [np.nan, 7.0]])
    encoder.fit(fitted)
    values = [0.1, 0.1 + 1e-9, 3.5, np.nan, 2.0, 7.0, 2.5, -1e300]
    rows = np.array(list(itertools.product(values, values)))
    np.testing.assert_array_equal(transformed_by_graph(encoder, rows), encoder.transform(rows))


@pytest.mark.parametrize("target", ["binary", "continuous", "multiclass"])
@pytest.mark.parametrize("missing", [np.nan, None], ids=["nan", "none"])
def test_target_encodings_are_scikit_learn_s(target: str, missing: Any) -> None:
    """Each string's category's encoding (transform's, learnt on all the rows), a missing
    category's too (NaN or None, given to the graph as NULL_STRING), the target's mean for a
    string no category holds; multiclass, a column per class for each feature."""
    rng = np.random.default_rng(12)
    fitted = rng.choice(np.array(["a", "b", "c", missing], dtype=object), (300, 2))
    y = {
        "binary": rng.integers(0, 2, 300),
        "continuous": rng.normal(size=300),
        "multiclass": rng.integers(0, 3, 300),
    }[target]
    encoder = TargetEncoder().fit(fitted, y)
    assert encoder.target_type_ == target
    values = ["a", "b", "c", missing, "", "zz"]
    rows = np.array(list(itertools.product(values, values)), dtype=object)
    null_as = "None" if missing is None else "NaN"
    given = np.where(pd.isna(rows), NULL_STRING, rows)
    got = transformed_by_graph(encoder, given, null=(NULL_STRING, null_as))
    np.testing.assert_array_equal(got, encoder.transform(rows))


def test_ordinal_codes_before_a_forest_are_compiled(tmp_path: Path) -> None:
    """A string column with missing values ordinal-coded into a RandomForest, the way many
    tree pipelines take strings: exact trees after the codes, "" and unseen strings unknown."""
    table, y = strings(25)
    encode = ColumnTransformer(
        [
            ("x", "passthrough", ["x"]),
            (
                "codes",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                ["colour", "size"],
            ),
        ]
    )
    model = make_pipeline(encode, RandomForestClassifier(30, random_state=0)).fit(table, y)
    compiled, served = packaged(model, table, tmp_path)
    assert (compiled.get("trees"), served.engine.name) == ("exact", "onnx"), compiled
    check_strings_served(model, served)


def test_target_encodings_of_a_complete_and_a_nullable_column_are_compiled(
    tmp_path: Path,
) -> None:
    """One encoder of two columns, one that may be null and one that may not: each column's
    missing category is found by its own null (a column given none has none)."""
    table, y = strings(27)
    table["size"] = table["size"].fillna("m")  # never missing: not nullable
    encode = ColumnTransformer(
        [("x", "passthrough", ["x"]), ("codes", TargetEncoder(), ["size", "colour"])]
    )
    model = make_pipeline(encode, LogisticRegression()).fit(table, y)
    compiled, served = packaged(model, table, tmp_path)
    assert served.engine.name == "onnx", compiled
    check_strings_served(model, served)


def check_strings_served(model: Any, served: Any) -> None:
    """strings()'s rows, and odd ones ("", NULL_STRING, unseen, null), as scikit-learn (those
    the service takes: no null where a feature may not be null)."""
    rows = as_json(strings(26)[0])
    rows += [{"x": 0.1, "colour": c, "size": "m"} for c in ("", NULL_STRING, "mauve", None)]
    nullable = {f.name: f.nullable for f in served.features}
    rows = [r for r in rows if all(v is not None or nullable[k] for k, v in r.items())]
    frame = pd.DataFrame(rows).astype({"colour": object, "size": object})
    frame[["colour", "size"]] = frame[["colour", "size"]].fillna(np.nan)
    columns = served.columns(rows)
    assert served.predict(columns) == model.predict(frame).tolist()
    gap = np.abs(served.engine.predict_proba(columns) - model.predict_proba(frame))
    assert gap.max() <= PROBABILITY_FLOOR


BINNINGS = list(itertools.product(("onehot", "onehot-dense", "ordinal"), ("uniform", "quantile")))


@pytest.mark.parametrize(("encode", "strategy"), BINNINGS)
def test_binned_features_are_scikit_learn_s_bit_for_bit(encode: str, strategy: str) -> None:
    """Each value's bin counted in float64: on every edge, just beside it, and far out too
    (skl2onnx's compares float32, and refuses "onehot", KBinsDiscretizer's default)."""
    X = np.random.default_rng(5).normal(size=(500, 3)) * [1, 10, 0.01]
    binning = KBinsDiscretizer(n_bins=[3, 5, 4], encode=encode, strategy=strategy).fit(X)
    edges = [np.asarray(e) for e in binning.bin_edges_]
    beside = [np.concatenate([e, np.nextafter(e, -np.inf), np.nextafter(e, np.inf)]) for e in edges]
    width = max(map(len, beside))
    rows = np.vstack(
        [
            X,
            np.array([np.resize(b, width) for b in beside]).T,
            np.array([[1e300, -1e300, 0.0], [-1e300, 1e300, -0.0]]),
        ]
    )
    session = float64_session(binning, 3)
    (binned,) = session.run(None, {"input": rows})
    expected = binning.transform(rows)
    assert np.array_equal(binned, expected.toarray() if encode == "onehot" else expected)


@pytest.mark.parametrize("encode", ["onehot", "ordinal"])
def test_binned_features_are_served_compiled(encode: str, tmp_path: Path) -> None:
    table, _, binary = data(6)
    binning = KBinsDiscretizer(n_bins=4, encode=encode, strategy="quantile")
    model = make_pipeline(binning, LogisticRegression()).fit(table, binary)
    assert_compiled_exactly(model, table, tmp_path, 7)


@pytest.mark.parametrize(
    "polynomial",
    [
        PolynomialFeatures(2),
        PolynomialFeatures(2, include_bias=False),
    ],
    ids=["square", "no-bias"],
)
def test_polynomial_features(polynomial: PolynomialFeatures, tmp_path: Path) -> None:
    table, y, _ = data(3)
    model = make_pipeline(polynomial, Ridge()).fit(table.to_numpy(), y)
    compiled, served = packaged(model, table, tmp_path)
    assert compiled.get("tolerance") == compiling.EXACT_RTOL, compiled
    rows = held_out(4)
    np.testing.assert_allclose(served.predict(rows), model.predict(rows), rtol=1e-9)


@pytest.mark.parametrize(
    "polynomial",
    [
        PolynomialFeatures(3),
        PolynomialFeatures(3, interaction_only=True, include_bias=False),
        PolynomialFeatures((2, 4)),
        PolynomialFeatures((0, 1)),
    ],
    ids=["cubes", "interactions", "degrees-2-4", "degrees-0-1"],
)
def test_polynomial_terms_are_scikit_learn_s_bit_for_bit(polynomial: PolynomialFeatures) -> None:
    """Each term a product in scikit-learn's order, so the same bits, not merely close."""

    X = np.random.default_rng(9).normal(size=(1000, 4)) * 7
    polynomial.fit(X)
    session = float64_session(polynomial, 4)
    (terms,) = session.run(None, {"input": X})
    assert np.array_equal(terms, polynomial.transform(X))


@pytest.mark.parametrize(
    "target",
    [
        TransformedTargetRegressor(LinearRegression(), func=np.log, inverse_func=np.exp),
        TransformedTargetRegressor(Ridge(), func=np.log1p, inverse_func=np.expm1),
        TransformedTargetRegressor(Ridge(), transformer=StandardScaler()),
        TransformedTargetRegressor(make_pipeline(StandardScaler(), Ridge())),
    ],
    ids=["log", "log1p", "scaled", "identity"],
)
def test_transformed_targets(target: TransformedTargetRegressor, tmp_path: Path) -> None:
    table, y, _ = data(5)
    model = target.fit(table.to_numpy(), np.exp(y / 10))
    compiled, served = packaged(model, table, tmp_path)
    assert compiled.get("tolerance") == compiling.EXACT_RTOL, compiled
    rows = held_out(6)
    np.testing.assert_allclose(served.predict(rows), model.predict(rows), rtol=1e-9)


@pytest.mark.parametrize(
    "make",
    [
        lambda: SVR(),
        lambda: SVR(kernel="poly", degree=2, C=10),
        lambda: NuSVR(kernel="linear"),
        lambda: StackingRegressor([("svr", SVR()), ("ridge", Ridge())]),
    ],
    ids=["rbf", "poly", "nu-linear", "stacking"],
)
def test_support_vector_regressions(make: Any, tmp_path: Path) -> None:
    """onnxruntime's SVMRegressor computes in float32; libsvm's arithmetic in float64 here."""
    table, y, _ = data(10)
    model = make_pipeline(StandardScaler(), make()).fit(table.to_numpy(), y)
    compiled, served = packaged(model, table, tmp_path)
    assert compiled.get("tolerance") == compiling.EXACT_RTOL, compiled
    rows = held_out(11)
    np.testing.assert_allclose(served.predict(rows), model.predict(rows), rtol=1e-9)


def test_a_nystroem_kernel_map(tmp_path: Path) -> None:
    table, _, binary = data(12)
    mapped = Nystroem(n_components=40, random_state=0)
    model = make_pipeline(StandardScaler(), mapped, LogisticRegression())
    model.fit(table.to_numpy(), binary)
    compiled, served = packaged(model, table, tmp_path)
    assert compiled.get("tolerance") == compiling.EXACT_RTOL, compiled
    rows = held_out(13)
    assert served.predict(rows) == model.predict(rows).tolist()
    gap = np.abs(served.engine.predict_proba(rows) - model.predict_proba(rows))
    assert np.all(gap <= np.maximum(1e-9 * model.predict_proba(rows), PROBABILITY_FLOOR))


@pytest.mark.parametrize(
    "make",
    [
        lambda: LinearSVC(),
        lambda: RidgeClassifier(),
        lambda: Perceptron(random_state=0),
    ],
    ids=["linear-svc", "ridge", "perceptron"],
)
@pytest.mark.parametrize("classes", [("no", "yes"), (3, 5, 7)], ids=["two", "three"])
def test_linear_classifiers_without_probabilities(
    make: Any, classes: tuple[Any, ...], tmp_path: Path
) -> None:
    """skl2onnx writes them only in float32 (a few classes flip in 100,000), and in a pipeline
    not at all (it gives their last step an option they refuse)."""
    table, y, _ = data(14)
    labels = np.array(classes, dtype=object)[
        np.digitize(y, np.quantile(y, [0.5, 0.8])[: len(classes) - 1])
    ]
    model = make_pipeline(StandardScaler(), make()).fit(table, labels.tolist())
    compiled, served = packaged(model, table, tmp_path)
    assert (compiled.get("dtype"), served.engine.name) == ("float64", "onnx"), compiled
    rows = held_out(15)
    assert served.predict(rows) == model.predict(pd.DataFrame(rows, columns=table.columns)).tolist()


def test_float_classes_are_served_compiled(tmp_path: Path) -> None:
    """Classes that are floats (a target column with gaps, read by pandas) are answered as
    those floats by the exact trees, not by scikit-learn."""
    table, y, _ = data(23)
    labels = np.array([-1.0, 0.0, 3.0])[classes_of(y, 3)]
    model = HistGradientBoostingClassifier(max_iter=20).fit(table, labels)
    compiled, served = packaged(model, table, tmp_path)
    assert (compiled.get("trees"), served.engine.name) == ("exact", "onnx"), compiled
    rows = held_out(24)
    answers = served.predict(rows)
    assert answers == model.predict(pd.DataFrame(rows, columns=table.columns)).tolist()
    assert {type(a) for a in answers} == {float} and set(answers) == {-1.0, 0.0, 3.0}


def test_a_value_at_the_binarizer_s_threshold_is_below_it() -> None:
    """skl2onnx's float64 Binarizer gave 1 at the threshold: a class flipped in 100,000."""
    rows = np.array([[0.3, np.nextafter(0.3, 1), np.nextafter(0.3, 0), -2.0, 7.0]]).repeat(2, 0)
    binarizer = Binarizer(threshold=0.3).fit(rows)
    (got,) = float64_session(binarizer, 5).run(None, {"input": rows})
    assert got.tolist() == binarizer.transform(rows).tolist() == [[0, 1, 0, 0, 1]] * 2


@pytest.mark.parametrize("binarize", [0.0, 1.5, None], ids=["zero", "above", "given"])
@pytest.mark.parametrize("classes", [2, 3], ids=["two", "three"])
def test_bernoulli_naive_bayes(binarize: float | None, classes: int, tmp_path: Path) -> None:
    """skl2onnx's float64 form was 2.5e-6 off in probabilities; ours is the estimator's jll
    and log-sum-exp: probabilities within 1e-12. With binarize=None the features come as 0
    and 1 (a MaxAbsScaler and Binarizer before it)."""
    table, y, _ = data(21)
    labels = classes_of(y, classes)
    estimator = BernoulliNB(binarize=binarize, alpha=0.5)
    if binarize is None:
        steps = [MaxAbsScaler(), Binarizer(threshold=0.2), estimator]
        model = make_pipeline(*steps).fit(table, labels)
    else:
        model = estimator.fit(table, labels)
    assert_compiled_exactly(model, table, tmp_path, seed=22)


def test_a_search_is_compiled_as_its_best_estimator(tmp_path: Path) -> None:
    """A fitted search predicts with its best estimator: skl2onnx had no converter for
    RandomizedSearchCV; GridSearchCV's forest had exact trees behind a float64 input, and
    takes its float32 input as the forest alone does now."""
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    table, y, binary = data(31)
    search = RandomizedSearchCV(
        Ridge(), {"alpha": [0.1, 1.0, 10.0]}, n_iter=2, cv=3, random_state=0
    )
    compiled, served = packaged(search.fit(table, y), table, tmp_path)
    assert (compiled["dtype"], served.engine.name) == ("float64", "onnx"), compiled
    rows = held_out(32)
    frame = pd.DataFrame(rows, columns=table.columns)
    np.testing.assert_allclose(served.predict(rows), search.predict(frame), rtol=1e-12)
    grid = GridSearchCV(RandomForestClassifier(random_state=0), {"n_estimators": [5, 10]}, cv=3)
    (tmp_path / "forest").mkdir()
    compiled, served = packaged(grid.fit(table, binary), table, tmp_path / "forest")
    assert (compiled.get("trees"), compiled["dtype"]) == ("exact", "float32"), compiled
    assert served.predict(rows) == grid.predict(frame).tolist()


@pytest.mark.parametrize("bounds", ["clip", "nan"])
def test_isotonic_regression(bounds: str, tmp_path: Path) -> None:
    """skl2onnx has no converter for IsotonicRegression: ours interpolates as numpy does
    between its thresholds, clipped to them, or NaN outside them, where scikit-learn gives NaN
    and the feature's range must then be given (--range), as packaging cannot find it."""
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(33)
    dose = rng.uniform(0.5, 10.0, 300)
    model = IsotonicRegression(out_of_bounds=bounds).fit(
        dose, np.log1p(dose) + rng.normal(0, 0.2, 300)
    )
    table = pd.DataFrame({"dose": dose})
    given = (
        ()
        if bounds == "clip"
        else ("--range", f"dose={float(model.X_min_)!r}:{float(model.X_max_)!r}")
    )
    compiled, served = packaged(model, table, tmp_path, *given)
    assert (compiled["dtype"], served.engine.name) == ("float64", "onnx"), compiled
    rows = np.r_[np.linspace(-100, 100, 997), model.X_thresholds_].reshape(-1, 1)  # NaN: NaN
    np.testing.assert_allclose(served.predict(rows), model.predict(rows.ravel()), rtol=1e-12)


@pytest.mark.parametrize("solver", ["svd", "lsqr"])
@pytest.mark.parametrize("classes", [2, 3], ids=["two", "three"])
def test_linear_discriminant_analysis(solver: str, classes: int, tmp_path: Path) -> None:
    """skl2onnx's probabilities were NaN far out, where scikit-learn's expit and softmax give
    0 and 1, so verification refused its graph; ours are its predict_proba's."""
    table, y, _ = data(29)
    shrinkage = "auto" if solver == "lsqr" else None
    model = LinearDiscriminantAnalysis(solver=solver, shrinkage=shrinkage)
    assert_compiled_exactly(model.fit(table, classes_of(y, classes)), table, tmp_path, seed=30)


@pytest.mark.parametrize(
    "make", [LogisticRegression, LinearSVC], ids=["logistic-regression", "linear-svc"]
)
@pytest.mark.parametrize("classes", [2, 3], ids=["two", "three"])
def test_one_vs_rest_linear_classifiers(make: Any, classes: int, tmp_path: Path) -> None:
    """OneVsRestClassifier (the one-vs-rest LogisticRegression, now that it has no multi_class):
    labels from the decision functions. skl2onnx took them from the probabilities, which all
    round to 1.0 far out, so its graph failed verification on the far-out rows and scikit-learn
    served. Probabilities where the estimators have them: each sigmoid over their sum."""
    table, y, _ = data(25)
    labels = np.digitize(y, np.quantile(y, [0.5, 0.8])[: classes - 1])
    model = make_pipeline(StandardScaler(), OneVsRestClassifier(make())).fit(table, labels)
    compiled, served = packaged(model, table, tmp_path)
    assert (compiled.get("dtype"), served.engine.name) == ("float64", "onnx"), compiled
    rows = held_out(26) * 1e4  # far out, where the sigmoids saturate
    frame = pd.DataFrame(rows, columns=table.columns)
    assert served.predict(rows) == model.predict(frame).tolist()
    if make is LogisticRegression:
        got = served.engine.predict_proba(rows / 1e4)
        want = model.predict_proba(frame / 1e4)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)


def test_one_vs_rest_ties_go_where_scikit_learns_loop_sends_them(tmp_path: Path) -> None:
    """Two classes whose estimators are the same decide every row alike: the class scikit-
    learn's loop gives the tie to (the first, since it runs in reverse) is the graph's too, or
    its verification would fail and scikit-learn would serve."""
    table, y, _ = data(27)
    labels = np.digitize(y, np.quantile(y, [0.3, 0.6]))
    model = OneVsRestClassifier(LogisticRegression()).fit(table.to_numpy(), labels)
    model.estimators_[2] = model.estimators_[1]
    rows = held_out(28)
    tied = model.predict(rows)
    assert (1 in tied) != (2 in tied)  # every tie goes to the same one of the two
    compiled, served = packaged(model, table, tmp_path)
    assert (compiled.get("dtype"), served.engine.name) == ("float64", "onnx"), compiled
    assert served.predict(rows) == tied.tolist()


@pytest.mark.parametrize("classes", [2, 3], ids=["two", "three"])
def test_a_stochastic_gradient_logistic_regression(classes: int, tmp_path: Path) -> None:
    """SGDClassifier's log loss: labels from the decision function (skl2onnx took them from
    the probabilities, whose sigmoids all round to 1.0 far out, and flipped some), and its
    one-vs-rest probabilities: a sigmoid per class over their sum, 1 / K where all are 0."""
    table, y, _ = data(21)
    labels = np.digitize(y, np.quantile(y, [0.5, 0.8])[: classes - 1])
    model = make_pipeline(StandardScaler(), SGDClassifier(loss="log_loss", random_state=0))
    model.fit(table, labels)
    compiled, served = packaged(model, table, tmp_path)
    assert compiled.get("tolerance") == compiling.EXACT_RTOL, compiled
    rows = held_out(22) * 1e3  # far out, where the sigmoids saturate
    frame = pd.DataFrame(rows, columns=table.columns)
    assert served.predict(rows) == model.predict(frame).tolist()
    got = np.array([list(p.values()) for p in served.predict_proba(rows)], dtype=np.float64)
    want = model.predict_proba(frame)
    if classes == 3:  # the test is about rows whose every sigmoid is 0
        assert (want == 1 / 3).all(axis=1).any()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("voting", ["soft", "hard"])
def test_voting_classifiers(voting: str, tmp_path: Path) -> None:
    """skl2onnx refuses flatten_transform=True, the default, which only shapes transform():
    the vote is compiled all the same (a forest among the voters: its exact trees), and the
    user's estimator is left as it was."""
    table, _, binary = data(19)
    voters = [
        ("linear", make_pipeline(StandardScaler(), LogisticRegression())),
        ("forest", RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0)),
    ]
    model = VotingClassifier(voters, voting=voting).fit(table.to_numpy(), binary)
    compiled, served = packaged(model, table, tmp_path)
    assert (compiled.get("dtype"), served.engine.name) == ("float64", "onnx"), compiled
    assert model.flatten_transform is True
    rows = held_out(20)
    assert served.predict(rows) == model.predict(rows).tolist()
    if voting == "soft":
        proba = served.engine.predict_proba(rows)
        np.testing.assert_allclose(proba, model.predict_proba(rows), rtol=1e-9)


@pytest.mark.parametrize("weights", [None, [2, 1, 1]], ids=["counted", "weighted"])
def test_a_hard_vote_counts_each_voters_label(weights: list[int] | None, tmp_path: Path) -> None:
    """Each voter's vote is its label: an SVC's is not the greatest of its decision function
    (skl2onnx's vote), so its graph would not verify. Three classes, three voters: rows where
    they all differ, or the weights tie, go to the first class of the greatest sum."""
    table, y, _ = data(20)
    voters = [
        ("svc", make_pipeline(StandardScaler(), SVC())),
        ("linear", make_pipeline(StandardScaler(), LogisticRegression())),
        ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
    ]
    three = classes_of(y, 3)
    model = VotingClassifier(voters, voting="hard", weights=weights).fit(table.to_numpy(), three)
    compiled, served = packaged(model, table, tmp_path)
    assert (compiled.get("dtype"), served.engine.name) == ("float64", "onnx"), compiled
    rows = held_out(21)
    labels = np.column_stack([voter.predict(rows) for voter in model.estimators_])
    assert (np.sort(labels, axis=1)[:, [0, 1]] != np.sort(labels, axis=1)[:, [1, 2]]).all(1).any()
    assert served.predict(rows) == model.predict(rows).tolist()


@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
def test_kernel_ridges(kernel: str, tmp_path: Path) -> None:
    """skl2onnx has no KernelRidge: the kernel as scikit-learn's pairwise_kernels computes it,
    then the dual coefficients."""
    table, y, _ = data(23)
    model = make_pipeline(StandardScaler(), KernelRidge(kernel=kernel, degree=2))
    compiled, served = packaged(model.fit(table.to_numpy(), y), table, tmp_path)
    assert (compiled.get("dtype"), served.engine.name) == ("float64", "onnx"), compiled
    rows = held_out(24)
    np.testing.assert_allclose(served.predict(rows), model.predict(rows), rtol=1e-9)


@pytest.mark.parametrize("classes", [2, 3])
def test_a_calibrated_linear_svc(classes: int, tmp_path: Path) -> None:
    """Probabilities for a LinearSVC: CalibratedClassifierCV's converter takes the decision
    function's second column with two classes, as skl2onnx writes it ([-d, d])."""
    table, y, _ = data(25)
    model = CalibratedClassifierCV(make_pipeline(StandardScaler(), LinearSVC()))
    compiled, served = packaged(
        model.fit(table.to_numpy(), classes_of(y, classes)), table, tmp_path
    )
    assert (compiled.get("dtype"), served.engine.name) == ("float64", "onnx"), compiled
    rows = held_out(26)
    assert served.predict(rows) == model.predict(rows).tolist()
    proba = served.engine.predict_proba(rows)
    np.testing.assert_allclose(proba, model.predict_proba(rows), rtol=1e-9)


# scikit-learn 1.9 deprecates probability=True (for CalibratedClassifierCV), models fitted
# before it keep it
PLATT = pytest.mark.filterwarnings("ignore:The `probability` parameter:FutureWarning")


@PLATT
@pytest.mark.parametrize(
    "svc",
    [
        lambda: SVC(probability=True, random_state=0),
        lambda: SVC(kernel="linear", probability=True, random_state=0),
        lambda: SVC(kernel="poly", degree=3, probability=True, random_state=0),
        lambda: NuSVC(kernel="sigmoid", gamma=0.01, probability=True, random_state=0),
    ],
    ids=["rbf", "linear", "poly", "nu-sigmoid"],
)
def test_two_class_svc_probabilities_are_libsvm_s(svc: Callable[[], Any], tmp_path: Path) -> None:
    """Platt's probabilities for two classes: skl2onnx's are 1e-5 off, so scikit-learn
    served them; now the graph does, within 1e-12."""
    table, _, binary = data(27)
    labels = np.where(binary == 1, "yes", "no")
    model = make_pipeline(StandardScaler(), svc()).fit(table, labels)
    assert_compiled_exactly(model, table, tmp_path, 28)


SVCS = {
    "rbf": SVC,
    "linear": lambda: SVC(kernel="linear"),
    "nu-poly": lambda: NuSVC(kernel="poly", nu=0.3),
    "ovo": lambda: SVC(decision_function_shape="ovo"),
    "break-ties": lambda: SVC(break_ties=True),
}


@pytest.mark.parametrize("classes", [2, 3, 4])
@pytest.mark.parametrize("name", list(SVCS))
def test_svc_decisions_are_libsvm_s(name: str, classes: int) -> None:
    """libsvm's decision for each pair of classes, its vote, and decision_function's "ovr"
    and "ovo" shapes, in float64: skl2onnx's SVMClassifier gave them 4e-6 off or more.

    Within the rounding of the terms summed, not of their sum: libsvm takes its dot products
    from the BLAS, whose order and fused multiply-adds depend on the CPU, and a polynomial
    kernel's terms reach 1e8 where they cancel to a decision near 1 (7.7e-9 relative on one
    machine's CPU, within 1e-9 on another's)."""
    table, y, _ = data(29)
    svc = SVCS[name]().fit(table.to_numpy(), classes_of(y, classes))
    session = float64_session(svc, 4)
    rows = held_out(30) * 2
    predicted, decisions = session.run(None, {"input": rows})
    assert predicted.tolist() == svc.predict(rows).tolist()
    expected = svc.decision_function(rows)
    if classes == 2:  # [-d, d], where CalibratedClassifierCV's converter reads the second
        expected = np.column_stack([-expected, expected])
    parameters = {"gamma": svc._gamma, "degree": svc.degree, "coef0": svc.coef0}
    kernel = pairwise_kernels(
        rows, svc.support_vectors_, metric=svc.kernel, filter_params=True, **parameters
    )
    terms = np.abs(kernel) @ np.abs(svc.dual_coef_).max(axis=0)  # at least any pair's
    assert (np.abs(decisions - expected) <= 1e-12 * terms[:, np.newaxis] + 1e-12).all()


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("ensemble", [False, True])
def test_a_calibrated_svc(classes: int, ensemble: bool, tmp_path: Path) -> None:
    """scikit-learn 1.9's way to an SVC's probabilities: CalibratedClassifierCV's sigmoids of
    the decision function, exact now that the decisions are."""
    table, y, _ = data(31)
    model = CalibratedClassifierCV(make_pipeline(StandardScaler(), SVC()), ensemble=ensemble)
    assert_compiled_exactly(model.fit(table, classes_of(y, classes)), table, tmp_path, 32)


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("base", ["forest", "svc"])
def test_isotonic_calibration(base: str, classes: int, tmp_path: Path) -> None:
    """CalibratedClassifierCV(method="isotonic"): scipy's linear interpolation between the
    calibrator's thresholds, where skl2onnx took the nearest one's value."""
    table, y, _ = data(33)
    estimator = RandomForestClassifier(20, random_state=0) if base == "forest" else SVC()
    model = CalibratedClassifierCV(estimator, method="isotonic")
    assert_compiled_exactly(model.fit(table, classes_of(y, classes)), table, tmp_path, 34, 1e-9)


@PLATT
@pytest.mark.parametrize("classes", [3, 4])
@pytest.mark.parametrize("nu", [False, True], ids=["svc", "nu"])
def test_svc_probabilities_for_many_classes(classes: int, nu: bool, tmp_path: Path) -> None:
    """probability=True with more classes: libsvm's coupling iterates a row until it settles
    (an ONNX Loop, each row stopped where libsvm stops it); skl2onnx's were up to 6e-2 off."""
    table, y, _ = data(40)
    svc = (
        NuSVC(nu=0.3, probability=True, random_state=0)
        if nu
        else SVC(probability=True, random_state=0)
    )
    model = make_pipeline(StandardScaler(), svc).fit(table, classes_of(y, classes))
    served = assert_compiled_exactly(model, table, tmp_path, 41)
    rows = held_out(41) * 2  # one row alone, through the bound tensors, as in the batch
    assert (
        served.engine.predict_proba(rows[:1]).tolist()
        == served.engine.predict_proba(rows)[:1].tolist()
    )


@PLATT
def test_two_class_coupling_stops_where_libsvm_s_does() -> None:
    """scikit-learn's libsvm couples two classes' probabilities by iterating until they
    settle: (1/2, 1/2) as they are where r01 is within 0.005 of 1/2, one or two updates
    elsewhere, each step's rounding kept. A sweep of r01 from 1e-7 to 1 - 1e-7 (a linear
    kernel on one feature, its decision exact), against libsvm's own."""
    x = np.linspace(-3, 3, 40)[:, np.newaxis]
    svc = SVC(kernel="linear", probability=True, random_state=0).fit(x, (x[:, 0] > 0.3) * 1)
    session = float64_session(svc, 1)
    decision = svc.decision_function(x)
    slope = (decision[-1] - decision[0]) / 6
    # decisions whose Platt sigmoid spans 1e-9 to 1 - 1e-9, then rows giving them
    reach = 21 / abs(svc._probA[0] * slope)
    rows = np.linspace(-reach, reach, 200_001)[:, np.newaxis]
    (_, proba) = session.run(None, {"input": rows})
    expected = svc.predict_proba(rows)
    assert (expected == 0.5).any() and (expected < 2e-7).any() and (expected > 1 - 2e-7).any()
    np.testing.assert_allclose(proba, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("algorithm", ["kd_tree", "ball_tree"])
@pytest.mark.parametrize("k", [5, 10, 19])
@pytest.mark.parametrize("task", ["regressor", "classifier"])
def test_neighbours_weighed_by_distance(task: str, k: int, algorithm: str) -> None:
    """weights="distance": 1 / d summed in numpy's order (pairwise from 8 values on), and a
    row at distance 0 from training rows (here some are there twice) answered by those
    alone; skl2onnx weighed every neighbour alike (its distances negated, floored at 1e-6)."""
    table, y, _ = data(35)
    X = np.vstack([table.to_numpy(), table.to_numpy()[:20]])
    labels = np.digitize(y, np.quantile(y, [0.3, 0.6]))
    if task == "regressor":
        model = KNeighborsRegressor(k, weights="distance", algorithm=algorithm)
        model.fit(X, np.r_[y, y[:20]])
    else:
        model = KNeighborsClassifier(k, weights="distance", algorithm=algorithm)
        model.fit(X, np.r_[labels, labels[:20]])
    session = float64_session(model, 4)
    rows = np.vstack([held_out(36) * 2, X[::7]])  # and training rows: distance 0
    outputs = session.run(None, {"input": rows})
    if task == "regressor":
        np.testing.assert_allclose(outputs[0].ravel(), model.predict(rows), rtol=1e-12, atol=0)
        return
    assert outputs[0].tolist() == model.predict(rows).tolist()
    np.testing.assert_allclose(outputs[1], model.predict_proba(rows), rtol=1e-12, atol=0)


def test_neighbours_weighed_alike_are_compiled_for_a_regressor(tmp_path: Path) -> None:
    """Uniform weights went to skl2onnx's converter, which reads an option ("optim") that only
    the classifier's registration declared, and answered up to 1.1 relative off: the
    regressor fell back to scikit-learn. Its features' ranges given: far out, neighbours tie
    (see test_distances.packaged)."""
    table, y, _ = data(38)
    model = make_pipeline(StandardScaler(), KNeighborsRegressor()).fit(table.to_numpy(), y)
    ranges = [
        f"--range={c}={-100 * table[c].abs().max()}:{100 * table[c].abs().max()}" for c in table
    ]
    compiled, served = packaged(model, table, tmp_path, *ranges)
    assert (compiled.get("dtype"), served.engine.name) == ("float64", "onnx"), compiled
    rows = held_out(39)
    np.testing.assert_allclose(served.predict(rows), model.predict(rows), rtol=1e-12, atol=0)


@pytest.mark.parametrize("make", [KMeans, MiniBatchKMeans])
def test_k_means_is_compiled_as_its_lloyd_code_computes(make: Any, tmp_path: Path) -> None:
    """Each centre's squared norm minus twice the row's dot product with it, the first least:
    skl2onnx added the row's own squared norm, which far out (1e15 in one feature) swamps
    the rest and made the first centre win every row there."""
    table, _, _ = data(40)
    model = make(n_clusters=5, n_init=3, random_state=0).fit(table.to_numpy())
    compiled, served = packaged(model, table, tmp_path)
    assert (compiled.get("dtype"), served.engine.name) == ("float64", "onnx"), compiled
    rows = np.repeat(held_out(41)[:40], 4, axis=0)
    for feature in range(4):  # each feature alone far out, on each side
        rows[40 * feature : 40 * (feature + 1), feature] *= 1e15
    rows[::2] *= -1
    assert len(set(model.predict(rows).tolist())) > 1
    assert served.predict(rows) == model.predict(rows).tolist()


def test_neighbours_weighed_by_distance_are_called_on_slices() -> None:
    """Their [N, training rows, features] broadcast is counted, so that the engine calls
    the graph on slices of a batch (rows_per_call), as for skl2onnx's rewritten Scans."""
    table, y, _ = data(37)
    model = KNeighborsRegressor(weights="distance").fit(table.to_numpy(), y)
    graph = float64_graph(model, 4)
    assert distances.without_scans(graph) == 0  # no Scan: the broadcast is written at once
    assert distances.broadcast_bytes(graph) == len(table) * 4 * 8


def test_an_rbf_kernel_is_called_on_slices() -> None:
    """An SVC's rbf kernel broadcasts rows against its support vectors, [N, vectors, F]."""
    table, _, binary = data(42)
    svc = SVC().fit(table.to_numpy(), binary)
    graph = float64_graph(svc, 4)
    assert distances.broadcast_bytes(graph) == svc.support_vectors_.size * 8


ONE_HOT = {
    "numbers": (lambda: OneHotEncoder(handle_unknown="ignore"), "code"),
    "numbers-infrequent": (
        lambda: OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20),
        "code",
    ),
    "numbers-drop-first": (lambda: OneHotEncoder(drop="first", handle_unknown="ignore"), "code"),
    "strings-first": (lambda: OneHotEncoder(handle_unknown="ignore"), "word"),
    "strings-infrequent": (
        lambda: OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20),
        "text",
    ),
    "strings-most-categories": (
        lambda: OneHotEncoder(handle_unknown="warn", max_categories=3),
        "text",
    ),
}


@pytest.mark.parametrize("name", list(ONE_HOT))
def test_one_hot_encoders(name: str, tmp_path: Path) -> None:
    """OneHotEncoder in float64: codes held as floats (skl2onnx cast them to integers, 2.5
    to 2: scikit-learn served them), infrequent categories (which it refused), and strings
    encoded first in a ColumnTransformer (its float32 output then made the whole graph
    float32, 1e-7 off). Unknown values too: 2.5, and words never seen."""
    rng = np.random.default_rng(39)
    codes = rng.choice([0.0, 1, 2, 3, 4, 5], size=300, p=[0.35, 0.25, 0.2, 0.1, 0.06, 0.04])
    words = np.array(["a", "b", "c", "d", "e", "f"])[codes.astype(int)]
    noise = rng.normal(size=300)
    y = (codes + noise > 1.5).astype(int)
    encoder, column = ONE_HOT[name]
    table = pd.DataFrame({column: codes if column == "code" else words, "noise": noise})
    encode = ColumnTransformer([("one_hot", encoder(), [column])], remainder="passthrough")
    model = make_pipeline(encode, LogisticRegression()).fit(table, y)
    compiled, served = packaged(model, table, tmp_path)
    assert (compiled.get("dtype"), served.engine.name) == ("float64", "onnx"), compiled
    unknown = 2.5 if column == "code" else "zz"
    frame = pd.concat([table, table.head(20).assign(**{column: unknown})], ignore_index=True)
    columns = [frame[c].tolist() for c in frame.columns]
    with warnings.catch_warnings():  # scikit-learn says it met the unknown values
        warnings.simplefilter("ignore", UserWarning)
        expected = model.predict(frame).tolist(), model.predict_proba(frame)
    assert served.predict(columns) == expected[0]
    proba = served.engine.predict_proba(columns)
    np.testing.assert_allclose(proba, expected[1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("unknown", ["error", "ignore"])
def test_a_missing_category_among_strings(unknown: str, tmp_path: Path) -> None:
    """A string column fitted with its missing values (NaN, not imputed) has a NaN category,
    which the graph's null (NULL_STRING) finds, as scikit-learn's NaN does. With
    handle_unknown="ignore" any string is taken, "" and NULL_STRING itself among them, which
    scikit-learn encodes as unknown, and so does the graph."""
    rng = np.random.default_rng(40)
    words = rng.choice(np.array(["a", "b", "c", np.nan], dtype=object), 400, p=[0.4, 0.3, 0.2, 0.1])
    noise = rng.normal(size=400)
    y = ((words == "a") + noise > 0.5).astype(int)
    table = pd.DataFrame({"word": words, "noise": noise})
    encode = ColumnTransformer(
        [("one_hot", OneHotEncoder(handle_unknown=unknown), ["word"])], remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression()).fit(table, y)
    compiled, served = packaged(model, table, tmp_path)
    assert (compiled.get("dtype"), served.engine.name) == ("float64", "onnx"), compiled
    rows = [[None, "a", "b", "c", None], [0.1, -0.2, 0.3, 2.0, -1.5]]
    if unknown == "ignore":
        rows = [[*rows[0], "", NULL_STRING, "z"], [*rows[1], 0.1, 0.1, 0.1]]
    words = [np.nan if w is None else w for w in rows[0]]
    frame = pd.DataFrame({"word": pd.Series(words, dtype=object), "noise": rows[1]})
    assert served.predict(rows) == model.predict(frame).tolist()
    proba = served.engine.predict_proba(rows)
    np.testing.assert_allclose(proba, model.predict_proba(frame), rtol=1e-12, atol=1e-15)


SPLINES = [
    dict(degree=degree, n_knots=knots, extrapolation=extrapolation, include_bias=bias, knots=at)
    for degree, knots, extrapolation, bias, at in itertools.product(
        [0, 1, 2, 3, 5],
        [2, 3, 7],
        ["constant", "linear", "continue", "periodic"],
        [True, False],
        ["uniform", "quantile"],
    )
    # scikit-learn's own answer is off (linear, degree <= 1) or an error (beyond the knots
    # at degree 0; periodic, unless degree < n_knots)
    if not (extrapolation == "linear" and degree <= 1)
    and not (extrapolation == "constant" and degree == 0)
    and not (extrapolation == "periodic" and degree >= knots)
    and (bias or degree + knots > 2)  # some basis left
]


@pytest.mark.parametrize("params", SPLINES, ids=lambda p: "-".join(map(str, p.values())))
def test_spline_bases_are_scikit_learn_s(params: dict[str, Any]) -> None:
    """scipy's recursion step by step, inside the knots, on each knot, and beyond them on both
    sides: the same bits where scipy's build keeps each multiplication and addition apart (as
    on x86-64, here), within a rounding where it fuses them (aarch64's compilers may)."""

    rng = np.random.default_rng(12)
    X = np.column_stack([rng.uniform(18, 80, 300), rng.lognormal(10, 0.5, 300)])
    splines = SplineTransformer(**params).fit(X)
    session = float64_session(splines, 2)
    rows = np.column_stack([rng.uniform(-50, 150, 3000), rng.lognormal(10, 1.5, 3000)])
    knots = np.column_stack([s.t for s in splines.bsplines_])
    rows = np.vstack([rows, knots, np.nextafter(knots, -np.inf), np.nextafter(knots, np.inf)])
    (bases,) = session.run(None, {"input": rows})
    np.testing.assert_allclose(bases, splines.transform(rows), rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("degree", [1, 2, 3])
@pytest.mark.parametrize("extrapolation", ["constant", "continue", "periodic"])
def test_spline_bases_where_knots_coincide(degree: int, extrapolation: str) -> None:
    """Quantile knots on repeated values fall together, inside and at the ends, and scipy
    skips those terms of its recursion (a weight of 0 where it would divide by 0)."""
    rng = np.random.default_rng(13)
    X = np.column_stack(
        [rng.choice([1.0, 1, 1, 2, 3, 3, 3], 300), rng.choice([0.0, 1, 1, 1, 2], 300)]
    )
    splines = SplineTransformer(
        n_knots=5, degree=degree, knots="quantile", extrapolation=extrapolation
    )
    splines.fit(X)
    assert all((np.diff(spline.t) == 0).any() for spline in splines.bsplines_)
    session = float64_session(splines, 2)
    knots = np.column_stack([s.t for s in splines.bsplines_])
    rows = np.vstack([rng.uniform(-2, 6, (3000, 2)), knots, np.nextafter(knots, np.inf)])
    (bases,) = session.run(None, {"input": rows})
    np.testing.assert_allclose(bases, splines.transform(rows), rtol=1e-14, atol=1e-16)


def test_a_dataframe_pipeline_with_splines(tmp_path: Path) -> None:
    table, _, binary = data(16)
    model = make_pipeline(
        ColumnTransformer(
            [("curves", SplineTransformer(n_knots=4), ["a", "d"])], remainder="passthrough"
        ),
        LogisticRegression(),
    ).fit(table, binary)
    compiled, served = packaged(model, table, tmp_path)
    assert compiled["dtype"] == "float64" and compiled["verification"]["rows"] >= 100_000
    rows = held_out(17) * 3  # beyond the knots too
    frame = pd.DataFrame(rows, columns=table.columns)
    assert served.engine.name == "onnx"
    assert served.predict(rows) == model.predict(frame).tolist()


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"extrapolation": "linear", "degree": 1}, "linearly at degree 0 or 1"),
        ({"handle_missing": "zeros"}, "handle_missing='zeros'"),
    ],
    ids=["linear-degree-1", "missing-as-zeros"],
)
def test_splines_it_does_not_write_are_left_to_scikit_learn(
    params: dict[str, Any], why: str, tmp_path: Path
) -> None:
    table, _, binary = data(18)
    model = make_pipeline(SplineTransformer(**params), LogisticRegression())
    compiled, served = packaged(model.fit(table.to_numpy(), binary), table, tmp_path)
    assert why in compiled["error"]
    assert served.engine.name == "sklearn"


def test_expm1_keeps_a_small_values_digits() -> None:
    """ONNX has no expm1, and exp(x) - 1 loses a small x's digits (here, all of 1e-300's):
    Kahan's identity stays within a few ulps of numpy's from 1e-300 to overflow, both signs;
    at the edges, x itself, -1 and infinity."""

    # a regression whose prediction is its input: the graph's output is expm1 of it
    target = TransformedTargetRegressor(LinearRegression(), func=np.log1p, inverse_func=np.expm1)
    target.fit(np.array([[0.0], [1.0]]), np.expm1([0.0, 1.0]))
    target.regressor_.coef_, target.regressor_.intercept_ = np.array([1.0]), np.array(0.0)
    session = float64_session(target, 1)
    rng = np.random.default_rng(8)
    x = rng.choice([-1.0, 1.0], 20_000) * 10 ** rng.uniform(-300, np.log10(709), 20_000)
    assert target.predict(x[:, None]).tolist() == np.expm1(x).tolist()
    (values,) = session.run(None, {"input": x[:, None]})
    np.testing.assert_allclose(values.ravel(), np.expm1(x), rtol=1e-14, atol=0)
    edges = np.array([[0.0], [1e-300], [-1e-300], [5e-324], [-800.0], [710.0]])
    (values,) = session.run(None, {"input": edges})
    assert values.ravel().tolist() == [0.0, 1e-300, -1e-300, 5e-324, -1.0, np.inf]


@pytest.mark.parametrize("standardize", [False, True], ids=["powers", "standardized"])
@pytest.mark.parametrize("method", ["yeo-johnson", "box-cox"])
def test_power_transforms_are_scipy_s(method: str, standardize: bool) -> None:
    """Yeo-Johnson and Box-Cox as scipy computes them, through expm1 and log1p, within a few
    ulps (1e-12 relative, or absolute beside a standardized 0), for exponents at and beside
    their logarithm's cases (0, and 2 below zero) and values from 1e-200 to 1e6 (where exp
    overflows, at 1e-237 with -1.3, is each libm's own)."""

    rng = np.random.default_rng(21)
    positive = method == "box-cox"
    table = rng.lognormal(0, 1, size=(300, 6)) * (1 if positive else rng.choice([-1, 1], (300, 6)))
    power = PowerTransformer(method=method, standardize=standardize).fit(table)
    power.lambdas_ = np.array([0.0, 1e-20, 2.0, 2 + 1e-17, 0.7, -1.3])  # the cases, exactly
    if standardize:
        power._scaler.fit(power.transform(table))
    session = float64_session(power, 6)
    magnitudes = 10 ** rng.uniform(-200, 6, size=(20_000, 6))
    rows = magnitudes if positive else magnitudes * rng.choice([-1, 1], magnitudes.shape)
    (values,) = session.run(None, {"input": rows})
    np.testing.assert_allclose(values, power.transform(rows), rtol=1e-12, atol=1e-12 * standardize)


@pytest.mark.parametrize("method", ["yeo-johnson", "box-cox"])
def test_power_transformed_pipelines(method: str, tmp_path: Path) -> None:
    """skl2onnx writes PowerTransformer with float32 constants its float64 graph refuses."""
    table, _, binary = data(22)
    if method == "box-cox":
        table = table.abs() + 0.1  # Box-Cox takes positive values only
    model = make_pipeline(PowerTransformer(method=method), LogisticRegression())
    compiled, served = packaged(model.fit(table.to_numpy(), binary), table, tmp_path)
    assert (compiled.get("dtype"), served.engine.name) == ("float64", "onnx"), compiled
    rows = table.to_numpy()
    assert served.predict(rows) == model.predict(rows).tolist()


def cube(values: np.ndarray) -> np.ndarray:
    """A user's own inverse function, found by its module and name when unpickled."""
    return values**3


def test_an_inverse_function_it_does_not_know_is_left_to_scikit_learn(tmp_path: Path) -> None:
    table, y, _ = data(7)
    target = TransformedTargetRegressor(Ridge(), func=np.cbrt, inverse_func=cube)
    compiled, served = packaged(target.fit(table.to_numpy(), y), table, tmp_path)
    assert "the inverse function 'cube'" in compiled["error"]
    assert served.engine.name == "sklearn"


@pytest.mark.parametrize("name", [None, *converters.ELEMENTWISE])
def test_elementwise_functions_are_numpy_s(name: str | None) -> None:
    """FunctionTransformer(np.<name>): each value as numpy gives it, within a few ulps (the
    logarithms and exponentials), over many magnitudes, either sign where numpy takes it."""
    rng = np.random.default_rng(17)
    magnitudes = 10.0 ** rng.uniform(-300, 300, size=(5000, 2))
    positive = name in ("log", "log1p", "sqrt", "log2", "log10")
    X = np.hstack([magnitudes, rng.normal(size=(5000, 2)) * 40])
    X = np.abs(X) if positive else X * np.where(rng.random(X.shape) < 0.5, -1, 1)
    if name in ("exp", "expm1"):
        X = np.clip(X, -745, 709)
    X[:4] = [0.0, 1e-320, 1.0, 3.0]  # zero, a subnormal, one, and a small whole number
    transformer = FunctionTransformer(None if name is None else getattr(np, name)).fit(X)
    (got,) = float64_session(transformer, 4).run(None, {"input": X})
    with np.errstate(all="ignore"):
        want = transformer.transform(X)
        close = (got == want) | (np.abs(got - want) <= 1e-14 * np.abs(want))
    close |= np.isnan(got) & np.isnan(want)
    assert close.all(), (name, X[~close][:3], got[~close][:3], want[~close][:3])


def test_a_dataframe_pipeline_with_a_logarithm(tmp_path: Path) -> None:
    """np.log1p of two columns inside a ColumnTransformer, then a logistic regression."""
    table, _, binary = data(18)
    table[["b", "d"]] = table[["b", "d"]].abs()
    logged = ColumnTransformer(
        [("log", FunctionTransformer(np.log1p), ["b", "d"])], remainder=StandardScaler()
    )
    model = make_pipeline(logged, LogisticRegression()).fit(table, binary)
    compiled, served = packaged(model, table, tmp_path)
    assert compiled.get("tolerance") == compiling.EXACT_RTOL, compiled
    rows, _, _ = data(19)
    rows[["b", "d"]] = rows[["b", "d"]].abs()
    assert served.predict(served.columns(rows.to_dict("records"))) == model.predict(rows).tolist()


def test_a_function_it_does_not_know_is_left_to_scikit_learn(tmp_path: Path) -> None:
    table, y, _ = data(20)
    model = make_pipeline(FunctionTransformer(cube), Ridge()).fit(table.to_numpy(), y)
    compiled, served = packaged(model, table, tmp_path)
    assert "the function 'cube'" in compiled["error"]
    assert served.engine.name == "sklearn"


def test_verification_writes_free_text_otherwise() -> None:
    """Text any string may be: upper-cased, with a letter beyond ASCII ending its words, empty,
    and the string a null of another feature is given to the graph as."""
    feature = package.Feature.from_manifest(
        {"name": "review", "type": "category", "train_categories": ["good movie"]}
    )
    (column,) = compiling.verification_columns([feature], None, count=2000)
    written = {"good movie", "GOOD MOVIE", "goodé movieé", compiling.UNSEEN, "", NULL_STRING}
    assert written == set(column)


def test_skl2onnx_s_float64_trees_refuse_a_threshold_of_infinity_instead_of_never_finishing() -> (
    None
):
    """scikit-learn's trees fitted with missing values split NaN apart at a threshold of
    infinity, whose float32 neighbours skl2onnx's float64 trees search for forever: compile.py
    tries those forms where the exact trees fail (a step before them has no exact graph)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    rng = np.random.default_rng(9)
    X = rng.normal(size=(300, 2))
    X[rng.random(300) < 0.2, 1] = np.nan
    forest = RandomForestClassifier(5, random_state=0).fit(X, np.isnan(X[:, 1]) ^ (X[:, 0] > 0))
    assert any(np.isinf(tree.tree_.threshold).any() for tree in forest.estimators_)
    outcome: list[BaseException] = []

    def convert() -> None:
        try:
            with warnings.catch_warnings(), converters.float64_converters():
                warnings.simplefilter("ignore")  # as compile.py: numpy's, on NaN
                convert_sklearn(forest, initial_types=[("input", DoubleTensorType([None, 2]))])
        except BaseException as exc:  # noqa: BLE001 (what the test is about, whatever it is)
            outcome.append(exc)

    converting = threading.Thread(target=convert, daemon=True)  # left spinning if it hangs
    converting.start()
    converting.join(120)
    assert not converting.is_alive(), "skl2onnx still converting after 120 s"
    assert len(outcome) == 1 and isinstance(outcome[0], NotSupported), outcome
    assert "threshold of infinity" in str(outcome[0])


def test_a_text_vectorizer_loads_on_a_host_without_en_us_and_falls_back_for_what_it_splits(
    tmp_path: Path,
) -> None:
    """skl2onnx's graph asks for en_US.UTF-8 (absent here), so the locale is C.UTF-8; the graph
    then loads, and answers other words for text beyond ASCII, so scikit-learn serves it."""
    rng = np.random.default_rng(8)
    words = np.array(["good", "bad", "great", "awful", "fine", "movie", "the", "plot"])
    texts = [" ".join(rng.choice(words, 5)) for _ in range(200)]
    table = pd.DataFrame({"review": texts})
    y = np.array([("good" in t) or ("great" in t) for t in texts]).astype(int)
    vectorize = ColumnTransformer([("text", TfidfVectorizer(), "review")])
    compiled, served = packaged(
        make_pipeline(vectorize, LogisticRegression()).fit(table, y), table, tmp_path
    )
    assert "locale" not in compiled["error"]
    assert "predicted classes differ" in compiled["error"] or "differ by" in compiled["error"]
    assert served.engine.name == "sklearn"
