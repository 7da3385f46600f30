"""`python -m webapp.package`: what it refuses, in one line, and what it infers from a table."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import joblib
import lightgbm
import numpy as np
import pandas as pd
import pytest
import sklearn.base
from sklearn.base import BaseEstimator
from sklearn.compose import make_column_transformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from webapp import create_app
from webapp.extras import install_command
from webapp.package import command, describe

pytestmark = pytest.mark.unit


def refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command, expecting it to refuse: its one line on stderr."""
    assert command.main(argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"cannot package {argv[0]}: ")
    return lines[0]


def saved(estimator: object, folder: Path, name: str = "model.pkl") -> Path:
    path = folder / name
    joblib.dump(estimator, path)
    return path


def frame(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=rows), "flag": rng.random(rows) < 0.5})


def test_what_it_cannot_describe_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    X = np.random.default_rng(0).normal(size=(40, 3))
    unfitted = saved(LogisticRegression(), tmp_path, "unfitted.pkl")
    assert "LogisticRegression is not fitted" in refusal([str(unfitted)], capsys)

    two_targets = RandomForestRegressor(n_estimators=2).fit(X, np.c_[X[:, 0], X[:, 1]])
    multi = saved(two_targets, tmp_path, "multi.pkl")
    assert "multi-output models are not supported" in refusal([str(multi)], capsys)

    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle")
    assert "cannot unpickle it" in refusal([str(garbage)], capsys)

    on_array = saved(LogisticRegression().fit(X, X[:, 0] > 0), tmp_path, "array.pkl")
    wide = tmp_path / "wide.csv"
    pd.DataFrame(np.c_[X, X[:, :1]], columns=["a", "b", "c", "d"]).to_csv(wide, index=False)
    assert "the table has 4 columns" in refusal([str(on_array), "--data", str(wide)], capsys)

    on_frame = saved(DecisionTreeClassifier().fit(frame(), [0, 1] * 30), tmp_path, "frame.pkl")
    lacking = tmp_path / "lacking.csv"
    frame()[["x"]].to_csv(lacking, index=False)
    said = refusal([str(on_frame), "--data", str(lacking)], capsys)
    assert "the table lacks the estimator's columns ['flag']" in said

    logarithm = make_pipeline(FunctionTransformer(np.log), LogisticRegression())
    positive = saved(logarithm.fit(np.exp(X), X[:, 0] > 0), tmp_path, "log.pkl")
    said = refusal([str(positive)], capsys)  # no table: its made-up row of zeros is refused
    assert "the estimator refuses a made-up row" in said and "(--data)" in said
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob("*.onnx"))


class PredictsButNeverFits:
    """Has predict() but no fit(): no scikit-learn estimator."""

    def predict(self, X: object) -> object:
        return X


class Unreadable:
    """Every attribute but the dunders raises, as an unpickled object's own code may."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        raise RuntimeError("an attribute that raises")


class Inconsistent(BaseEstimator):
    """An estimator that says it is fitted, then raises as it is described."""

    def fit(self, X: object, y: object) -> Inconsistent:
        return self

    def predict(self, X: object) -> object:
        return X

    def __sklearn_is_fitted__(self) -> bool:
        return True

    @property
    def n_features_in_(self) -> int:
        raise ValueError("raised while described\nover two lines")


@pytest.mark.parametrize(
    ("weird", "said"),
    [
        (types.SimpleNamespace(predict=print), "SimpleNamespace is not a scikit-learn estimator: "
         "it has no fit() method"),
        (PredictsButNeverFits(), "PredictsButNeverFits is not a scikit-learn estimator: it has no "
         "fit() method"),
        (Unreadable(), "Unreadable's attributes cannot be read (RuntimeError: an attribute that "
         "raises)"),
        (types.SimpleNamespace(predict=print, fit=print), "SimpleNamespace is not a scikit-learn "
         "estimator (AttributeError: "),
        (LogisticRegression, "LogisticRegression is a class, not a fitted estimator"),
        (json.dumps, "function has no predict() method"),
        (Inconsistent(), "describing it failed: ValueError: raised while described"),
    ],
    ids=["predict-attribute", "no-fit", "raising-attributes", "no-tags", "class", "function",
         "raising-later"],
)  # fmt: skip
def test_weird_pickles_are_refused_in_one_line(
    weird: object, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unpickling runs the pickle's code, and so does describing what comes out: whatever it
    is and whatever it raises, one line on stderr, exit 1, nothing written."""
    line = refusal([str(saved(weird, tmp_path))], capsys)
    assert said in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pkl"]


def test_a_manifest_is_replaced_only_with_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    X = np.random.default_rng(0).normal(size=(40, 2))
    model = saved(LogisticRegression().fit(X, X[:, 0] > 0), tmp_path)
    assert command.main([str(model)]) == 0
    manifest = model.with_suffix(".json")
    first = manifest.read_bytes()
    assert "pass --force to replace it" in refusal([str(model), "--version", "2.0.0"], capsys)
    assert manifest.read_bytes() == first
    assert command.main([str(model), "--version", "2.0.0", "--force"]) == 0
    assert json.loads(manifest.read_text())["version"] == "2.0.0"


def test_a_boolean_column_takes_true_false_1_and_0_only(tmp_path: Path) -> None:
    """pandas reads True/False from the table as booleans: the feature is a boolean integer in
    [0, 1], taking JSON true and false too, so 2 is refused, not handed to the estimator as
    something it never saw."""
    table = frame()
    tree = DecisionTreeClassifier(random_state=0).fit(table, table["flag"] ^ (table["x"] > 0))
    model = saved(tree, tmp_path)
    data = tmp_path / "table.csv"
    table.to_csv(data, index=False)
    assert command.main([str(model), "--data", str(data)]) == 0
    flag = json.loads(model.with_suffix(".json").read_text())["features"][1]
    assert (flag["type"], flag["boolean"]) == ("integer", True)
    assert (flag["min"], flag["max"], flag["train_min"], flag["train_max"]) == (0, 1, 0, 1)

    client = create_app({"MODEL_PATH": str(model)}).test_client()
    for x, value in [(x, v) for x in (-1.0, 1.0) for v in (0, 1, False, True)]:
        answer = client.post("/predict", json={"x": x, "flag": value})
        expected = tree.predict(pd.DataFrame({"x": [x], "flag": [bool(value)]}))[0]
        assert answer.get_json() == {"prediction": bool(expected)}
    for wrong in (2, -1, 0.5, "yes", "true"):
        answer = client.post("/predict", json={"x": 0.0, "flag": wrong})
        assert answer.status_code == 422 and set(answer.get_json()["errors"]) == {"flag"}


def test_a_logarithm_bounds_its_features_above_zero(tmp_path: Path) -> None:
    """Zero and the negatives are refused by np.log: a number's range starts just above zero,
    an integer's at 1; the other side stays as wide as the estimator answers for."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"size": rng.lognormal(size=80), "count": rng.integers(1, 50, 80)})
    pipeline = make_pipeline(FunctionTransformer(np.log), LogisticRegression())
    model = saved(pipeline.fit(table, table["size"] > 1), tmp_path)
    data = tmp_path / "table.csv"
    table.to_csv(data, index=False)
    assert command.main([str(model), "--data", str(data)]) == 0
    size, count = json.loads(model.with_suffix(".json").read_text())["features"]
    assert (size["min"], size["min_inclusive"], size["max"]) == (0.0, False, None)
    assert (count["min"], count["min_inclusive"], count["max"]) == (1, True, 2**53)

    client = create_app({"MODEL_PATH": str(model)}).test_client()
    for name, wrong in [("size", 0.0), ("size", -1e-300), ("count", 0), ("count", -3)]:
        answer = client.post("/predict", json={"size": 1.0, "count": 1, name: wrong})
        assert answer.status_code == 422 and set(answer.get_json()["errors"]) == {name}
    row = {"size": 5e-324, "count": 1}  # the smallest float above zero: log gives -744
    expected = pipeline.predict(pd.DataFrame([row]))[0]
    assert client.post("/predict", json=row).get_json() == {"prediction": bool(expected)}


def test_a_text_column_takes_any_string_without_a_table(tmp_path: Path) -> None:
    """A vectorizer of text in a ColumnTransformer says its column is strings: a category
    open to any value, found from the pipeline alone."""
    rng = np.random.default_rng(0)
    words = np.array(["free", "money", "lunch", "report", "win", "meeting"])
    table = pd.DataFrame({"text": [" ".join(rng.choice(words, 4)) for _ in range(80)]})
    table["length"] = rng.normal(size=80)
    spam = table["text"].str.contains("free|win").map({True: "spam", False: "ham"})
    columns = make_column_transformer((TfidfVectorizer(), "text"), ("passthrough", ["length"]))
    pipeline = make_pipeline(columns, LogisticRegression()).fit(table, spam)
    model = saved(pipeline, tmp_path)
    assert command.main([str(model)]) == 0
    text = json.loads(model.with_suffix(".json").read_text())["features"][0]
    assert (text["name"], text["type"], text["categories"]) == ("text", "category", None)

    client = create_app({"MODEL_PATH": str(model)}).test_client()
    for row in ({"text": "win free money", "length": 0.5}, {"text": "never seen", "length": 0}):
        expected = pipeline.predict(pd.DataFrame([row]))[0]
        assert client.post("/predict", json=row).get_json() == {"prediction": expected}
    answer = client.post("/predict", json={"text": 3, "length": 0.5})
    assert answer.status_code == 422 and set(answer.get_json()["errors"]) == {"text"}


def test_free_text_keeps_the_manifest_small(tmp_path: Path) -> None:
    """3,000 different reviews, some long: the manifest keeps the 1,000 most frequent short
    ones of them, not every text; an open category of a few values keeps them all."""
    rng = np.random.default_rng(1)
    words = np.array(["good", "bad", "plot", "actor", "slow", "fun", "long", "score"])
    reviews = [f"{i} " + " ".join(rng.choice(words, 3 if i % 3 else 40)) for i in range(3000)]
    reviews += ["good fun"] * 5 + ["bad plot"] * 4 + ["x" * 101] * 9  # frequent; too long
    table = pd.DataFrame({"review": reviews, "stars": rng.integers(1, 6, len(reviews))})
    liked = table["review"].str.contains("good|fun")
    pipeline = make_pipeline(
        make_column_transformer((TfidfVectorizer(), "review"), ("passthrough", ["stars"])),
        LogisticRegression(),
    ).fit(table, liked)
    model = saved(pipeline, tmp_path)
    data = tmp_path / "reviews.csv"
    table.to_csv(data, index=False)
    assert command.main([str(model), "--data", str(data)]) == 0
    manifest = json.loads(model.with_suffix(".json").read_text())
    (seen,) = [f["train_categories"] for f in manifest["features"] if f["name"] == "review"]
    short = sorted({r for r in reviews if len(r) <= 100})
    assert len(short) > 2000 and len(seen) == 1000 and seen == sorted(seen)
    assert {"good fun", "bad plot"} <= set(seen) <= set(short)
    assert model.with_suffix(".json").stat().st_size < 200_000

    client = create_app({"MODEL_PATH": str(model)}).test_client()
    for row in table.sample(20, random_state=0).to_dict("records"):
        expected = bool(pipeline.predict(pd.DataFrame([row]))[0])
        assert client.post("/predict", json=row).get_json() == {"prediction": expected}

    few = pd.DataFrame({"plan": ["basic", "pro", "team"] * 20, "x": rng.normal(size=60)})
    encoder = OneHotEncoder(handle_unknown="ignore")
    plans = make_pipeline(
        make_column_transformer((encoder, ["plan"]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(few, few["x"] > 0)
    model = saved(plans, tmp_path, "plans.pkl")
    few.to_csv(data, index=False)
    assert command.main([str(model), "--data", str(data)]) == 0
    (plan,) = json.loads(model.with_suffix(".json").read_text())["features"][:1]
    assert plan["categories"] is None and plan["train_categories"] == ["basic", "pro", "team"]


def test_lightgbm_s_names_for_columns_with_spaces(tmp_path: Path) -> None:
    """LightGBM fitted on "mean radius" knows it as "mean_radius": the user's table is taken,
    and the feature is served under the name the model knows."""
    rng = np.random.default_rng(3)
    table = pd.DataFrame(rng.normal(size=(300, 3)), columns=["mean radius", "mean area", "age"])
    sick = (table["mean radius"] + table["age"] > 0).to_numpy()
    model = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1, n_jobs=1).fit(table, sick)
    artifact = saved(model, tmp_path)
    data = tmp_path / "table.csv"
    table.to_csv(data, index=False)
    assert command.main([str(artifact), "--data", str(data)]) == 0
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    names = [f["name"] for f in manifest["features"]]
    assert names == ["mean_radius", "mean_area", "age"] and "file" in manifest["compiled"]
    client = create_app({"MODEL_PATH": str(artifact)}).test_client()
    rows = table.head(20)
    answers = client.post("/predict", json={"instances": rows.to_numpy().tolist()})
    assert answers.get_json()["predictions"] == model.predict(rows).tolist()
    spaced = client.post("/predict", json=dict(zip(table.columns, rows.iloc[0], strict=True)))
    assert spaced.status_code == 422


@pytest.mark.parametrize("engine", ["onnx", "sklearn"])
def test_a_regressor_fitted_on_a_one_column_target_answers_one_value(
    engine: str, tmp_path: Path
) -> None:
    """`y = df[["price"]]` leaves LinearRegression predicting a table of one column: one
    value a row, answered as a number by either engine (within the compiled form's 1e-9), not
    refused as multi-output."""
    rng = np.random.default_rng(4)
    table = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    target = table[["a"]] * 2 - table[["b"]].to_numpy() + 1
    model = LinearRegression().fit(table, target)
    artifact = saved(model, tmp_path)
    data = tmp_path / "table.csv"
    table.to_csv(data, index=False)
    assert command.main([str(artifact), "--data", str(data)]) == 0
    assert "file" in json.loads(artifact.with_suffix(".json").read_text())["compiled"]
    client = create_app({"MODEL_PATH": str(artifact), "ENGINE": engine}).test_client()
    rows = table.head(20)
    answers = client.post("/predict", json={"instances": rows.to_numpy().tolist()})
    np.testing.assert_allclose(answers.get_json()["predictions"], model.predict(rows)[:, 0], 1e-9)
    one = client.post("/predict", json=dict(zip(table.columns, rows.iloc[0], strict=True)))
    assert type(one.get_json()["prediction"]) is float


def test_a_catboost_model_is_served_by_its_own_predict(tmp_path: Path) -> None:
    """CatBoost has no converter, and once unpickled its n_features_in_ is 0: the table's
    columns are its features, scikit-learn's engine serves it through its own predict (a
    table of one column of labels for three classes), and the manifest pins catboost."""
    from importlib import metadata

    from catboost import CatBoostClassifier

    rng = np.random.default_rng(6)
    table = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    levels = pd.Series(np.array(["low", "mid", "high"])[np.digitize(table.a + table.b, [-1, 1])])
    catboost = CatBoostClassifier(
        iterations=20, thread_count=1, verbose=0, allow_writing_files=False
    )
    model = catboost.fit(table, levels)
    artifact = saved(model, tmp_path)
    data = tmp_path / "table.csv"
    table.to_csv(data, index=False)
    assert command.main([str(artifact), "--data", str(data)]) == 0
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    assert manifest["versions"]["catboost"] == metadata.version("catboost")
    client = create_app({"MODEL_PATH": str(artifact)}).test_client()
    rows = table.tail(30)
    answers = client.post("/predict", json={"instances": rows.to_numpy().tolist()})
    assert answers.get_json()["predictions"] == model.predict(rows)[:, 0].tolist()
    assert set(answers.get_json()["predictions"]) == {"low", "mid", "high"}


def test_the_libraries_a_pickle_imports_are_found_past_its_arrays() -> None:
    """A large array is pickled as a PickleBuffer (protocol 5): the search for the modules a
    pickle imports must get past it to XGBoost's regressor after it."""
    from importlib import metadata

    from sklearn.ensemble import VotingRegressor
    from sklearn.neighbors import KNeighborsRegressor
    from xgboost import XGBRegressor

    X = np.random.default_rng(5).normal(size=(20_000, 4))  # the neighbours keep 640 kB of it
    voters = [("knn", KNeighborsRegressor()), ("xgb", XGBRegressor(n_estimators=2))]
    model = VotingRegressor(voters).fit(X, X[:, 0])
    found = describe.pickled_distributions(model)
    assert set(metadata.packages_distributions()["xgboost"]) | {"numpy", "scikit-learn"} == set(
        found
    )


def test_a_feature_named_instances_still_takes_a_single_row(tmp_path: Path) -> None:
    """{"instances": ...} is Vertex's batch envelope, unless a feature has that name and the
    value is a number: no feature takes a list, so both forms stay unambiguous."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"instances": rng.normal(size=60), "parameters": rng.normal(size=60)})
    tree = DecisionTreeClassifier(random_state=0).fit(table, table["instances"] > 0)
    model = saved(tree, tmp_path)
    assert command.main([str(model)]) == 0
    client = create_app({"MODEL_PATH": str(model)}).test_client()
    rows = [{"instances": 1.5, "parameters": -2.0}, {"instances": -1.5, "parameters": 2.0}]
    expected = tree.predict(pd.DataFrame(rows)).tolist()
    for row, answer in zip(rows, expected, strict=True):
        assert client.post("/predict", json=row).get_json() == {"prediction": answer}
    batch = client.post("/predict", json={"instances": rows})
    assert batch.get_json() == {"predictions": expected}
    wrong = client.post("/predict", json={"instances": "1.5", "parameters": 0.0})
    assert wrong.status_code == 422 and set(wrong.get_json()["errors"]) == {"instances"}


class Vanishing:
    """An attribute whose class is gone by the time the pickle is read again (a module that
    moved between scikit-learn versions)."""


def test_a_pickle_from_another_scikit_learn_is_refused_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In one line, not a page of InconsistentVersionWarnings and then whatever unpickling
    meets: at its first estimator, or, where a module it names is gone before any estimator
    is rebuilt, by the version its bytes record, also in a file joblib compressed."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    fitted = LogisticRegression().fit(X, X[:, 0] > 0)
    monkeypatch.setattr(sklearn.base, "__version__", "1.0.0")
    older = saved(fitted, tmp_path, "older.pkl")
    fitted.vanishing = Vanishing()
    moved = saved(fitted, tmp_path, "moved.pkl")
    compressed = []
    for compress in (3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)):
        name = f"moved-{compress if isinstance(compress, int) else compress[0]}.pkl"
        joblib.dump(fitted, tmp_path / name, compress=compress)
        compressed.append(tmp_path / name)
    monkeypatch.undo()
    monkeypatch.delattr(sys.modules[__name__], "Vanishing")
    for pickle in (older, moved, *compressed):
        said = refusal([str(pickle)], capsys)
        assert said == (
            f"cannot package {pickle}: {pickle} was pickled by scikit-learn 1.0.0, this "
            f"environment has {sklearn.__version__}: scikit-learn 1.0.0 is older than "
            "packaging supports (1.4 or later): fit and save it again with a newer one"
        )


@pytest.mark.parametrize("version", ["1.4.2", "1.10.0", "2.0.1"])
def test_a_pickle_from_a_supported_scikit_learn_is_to_be_packaged_where_it_was_trained(
    version: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With that scikit-learn pinned: pip would otherwise replace it with the newest there."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    fitted = LogisticRegression().fit(X, X[:, 0] > 0)
    monkeypatch.setattr(sklearn.base, "__version__", version)
    pickle = saved(fitted, tmp_path)
    monkeypatch.undo()
    assert refusal([str(pickle)], capsys) == (
        f"cannot package {pickle}: {pickle} was pickled by scikit-learn {version}, this "
        f"environment has {sklearn.__version__}: package it where it was trained, keeping its "
        f"scikit-learn: {install_command('package')} scikit-learn=={version} there "
        "(docs/models.md)"
    )


def test_a_number_is_bounded_where_the_probabilities_stop(tmp_path: Path) -> None:
    """A nearest centroid predicts at the largest floats, but its predict_proba raises there
    (its distances overflow): such a value is refused with the feature named, never a 500,
    and packaging does not stop on it."""
    X = np.random.default_rng(5).normal(size=(200, 3))
    model = NearestCentroid().fit(X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0))
    pickle = saved(model, tmp_path)
    assert command.main([str(pickle)]) == 0
    client = create_app({"MODEL_PATH": str(pickle)}).test_client()
    far = client.post("/predict?probabilities=true", json={"instances": [[1e300, 0.0, 0.0]]})
    assert far.status_code == 422 and "instances" in far.get_json()["errors"], far.get_json()
    near = client.post("/predict?probabilities=true", json={"instances": [[1e3, 0.0, 0.0]]})
    assert near.status_code == 200, near.get_json()


def test_a_range_given_is_the_feature_s(tmp_path: Path) -> None:
    """--range: the manifest's bounds, so that a request outside is refused by name; an
    integer's ends rounded inwards."""
    table = frame()
    table["count"] = np.arange(len(table))
    model = LogisticRegression().fit(table[["x", "count"]], table["flag"])
    pickle = saved(model, tmp_path)
    table.to_csv(tmp_path / "table.csv", index=False)
    argv = [str(pickle), "--data", str(tmp_path / "table.csv"), "--target", "flag"]
    assert command.main([*argv, "--range", "x=-5:5", "--range", "count=-0.5:99.5"]) == 0
    features = json.loads(pickle.with_suffix(".json").read_text())["features"]
    assert [(f["min"], f["max"]) for f in features] == [(-5.0, 5.0), (0, 99)]
    client = create_app({"MODEL_PATH": str(pickle)}).test_client()
    assert client.post("/predict", json={"x": 5.0, "count": 99}).status_code == 200
    refused = client.post("/predict", json={"x": 5.5, "count": 100})
    assert refused.status_code == 422 and set(refused.get_json()["errors"]) == {"x", "count"}


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (["--range", "y=0:1"], "--range names no feature of the estimator's: ['y']"),
        (["--range", "x0=2:1"], "--range x0: empty, 2.0 to 1.0"),
        (["--range", "x0=-1:1"], "--range x0: the estimator refuses -1.0"),
    ],
)
def test_a_range_that_cannot_be_is_refused(
    given: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a feature of the estimator's, empty, or an end the estimator refuses (the square
    root of a negative number)."""
    model = make_pipeline(FunctionTransformer(np.sqrt), LinearRegression())
    pickle = saved(model.fit([[1.0], [2.0], [3.0]], [1.0, 2.0, 3.0]), tmp_path)
    assert refusal([str(pickle), *given], capsys) == f"cannot package {pickle}: {said}"


@pytest.mark.parametrize("given", ["x", "x=1", "x=a:b", "=0:1", "x=0:inf", "x=nan:1"])
def test_a_range_is_two_finite_numbers(given: str, tmp_path: Path) -> None:
    pickle = saved(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), tmp_path)
    with pytest.raises(SystemExit) as exited:
        command.main([str(pickle), "--range", given])
    assert exited.value.code == 2


@pytest.mark.parametrize("name", ["a/b", "/a", "", ".", "..", " a"])
def test_a_name_no_route_can_match_is_refused(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """/v2/models/a/b/infer is no route: such a model would answer 404 on each of its own."""
    pickle = saved(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), tmp_path)
    with pytest.raises(SystemExit) as exited:
        command.main([str(pickle), "--name", name])
    assert exited.value.code == 2
    assert "a model's name is one part of its routes' paths" in capsys.readouterr().err
    assert not pickle.with_suffix(".json").exists()


@pytest.mark.parametrize("mixture", [GaussianMixture, BayesianGaussianMixture])
def test_a_mixture_s_components_are_its_clusters(mixture: type, tmp_path: Path) -> None:
    """A Gaussian mixture predicts its components' indices, as a clusterer its clusters': the
    task is clustering (integer labels), not a regression's numbers, also in a pipeline."""
    X = np.random.default_rng(23).normal(size=(300, 3)) + np.repeat([[0], [4], [8]], 100, axis=0)
    model = make_pipeline(StandardScaler(), mixture(n_components=3, random_state=0)).fit(X)
    artifact = saved(model, tmp_path)
    assert command.main([str(artifact)]) == 0
    assert json.loads(artifact.with_suffix(".json").read_text())["task"] == "clustering"
    client = create_app({"MODEL_PATH": str(artifact)}).test_client()
    rows = [dict(zip(["x0", "x1", "x2"], row, strict=True)) for row in X[::30].tolist()]
    answers = [client.post("/predict", json=row).get_json()["prediction"] for row in rows]
    assert answers == model.predict(X[::30]).tolist() and all(type(a) is int for a in answers)
