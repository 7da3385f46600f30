"""Describe a fitted scikit-learn model for serving: `sklearn-serve package MODEL.pkl`
(`python -m webapp.package`; its arguments are in command.py).

Reads the pickle (your own: unpickling runs its code), asks the estimator and, with --data, a
table with its training columns what it takes and what it answers, checks the answer by
predicting, and writes the manifest beside the pickle (docs/manifest.md). train.py describes
the shipped model with the same code. Packaging needs pandas; serving a model that was not
fitted on a DataFrame does not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
import sklearn.base
import sklearn.utils
from sklearn.base import is_classifier, is_outlier_detector
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, TargetEncoder
from sklearn.utils.validation import check_is_fitted

from ..core.sklearn_engine import (
    estimator_input,
    fitted_count,
    one_per_row,
    unpickle,
    unpickling_failure,
)
from ..core.vocabulary import (
    LARGEST_INTEGER,
    MANIFEST_FORMAT,
    ArtifactError,
    Feature,
    one_line,
    parse_datetime,
)
from ..extras import install_command
from .compile import UNSEEN

# Magnitudes tried, largest first, for a number the pipeline must turn into finite values: the
# largest float, then smaller ones, down to those of a narrow domain. Integers start at 2**53,
# beyond which floats skip some.
_HUGE = (sys.float_info.max, 1e300, 1e200, 1e100, 1e50, 1e30, 1e20, 1e15, 1e10, 1e6)
_MAGNITUDES = (*_HUGE, 1e5, 1e4, 1e3, 1e2, 1e1, 1.0, 1e-1, 1e-2, 1e-3)


# An open category's values kept in the manifest (commonest): at most so many, so long.
SEEN_VALUES = 1_000
SEEN_VALUE_LENGTH = 100
OLDEST_SCIKIT_LEARN = "1.4"  # pyproject.toml's range: what packaging is tested with


class PackageError(Exception):
    """The model cannot be described; the message says why in one line."""


def describe(
    estimator: Any,
    table: Any = None,
    name: str = "model",
    version: str = "1.0.0",
    ranges: dict[str, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """The manifest of a fitted estimator (its artifact's sha256 still unset).

    `table` is a pandas DataFrame of rows like the training data (the target column left
    out), or None: then only what the estimator itself tells is used. `ranges`: the valid
    range (inclusive) of some number features, as the user knows it (--range).
    """
    _check_estimator(estimator)
    table = with_fitted_names(estimator, table)
    names, form = _feature_names(estimator, table)
    ranges = ranges or {}
    unknown = sorted(set(ranges) - set(names))
    if unknown:
        raise PackageError(f"--range names no feature of the estimator's: {unknown}")
    categorical = _pandas_categories(estimator, names) if form == "dataframe" else {}
    encoders = dict(_encoders(estimator, names))
    booleans = set()
    if table is not None:
        import pandas

        table = table[names]
        types = {name: pandas.CategoricalDtype(list(c)) for name, c in categorical.items()}
        table = table.astype(types)  # as the estimator was fitted: a CSV has only strings
        booleans = {name for name in names if table[name].dtype.kind == "b"}
        table = table.astype({name: "int64" for name in booleans})  # given as 1 and 0
        dates = [n for n in names if n not in encoders and n not in types and _dates(table[n])]
        table = table.astype({name: "datetime64[ns]" for name in dates})
        if dates and form != "dataframe":
            raise PackageError("date/time features need an estimator fitted on a DataFrame")
    imputed = _imputed_columns(estimator, names)
    features = [
        _feature(column, encoders.get(column), table, column in booleans)
        if column not in categorical
        else _categorical(column, categorical[column], table)
        for column in names
    ]
    with_none = _fitted_with_none(estimator, names)
    for feature in features:
        if feature.type == "category" and feature.name in with_none:
            feature.null_as = "None"
    model = _Probe(estimator, features, form)
    rows = _sample_rows(features, table)
    try:
        first = model.predict(rows[:1])
    except Exception as exc:  # the estimator's own refusal, whatever its type
        where = "the table's first complete row" if table is not None else "a made-up row"
        raise PackageError(
            f"the estimator refuses {where} {rows[0]} ({one_line(exc)}): "
            "give a table of rows like the training data (--data)"
        ) from None
    if np.ndim(first) != 1:
        raise PackageError("multi-output models are not supported: predict() gives a table")
    for feature in features:
        if feature.name in ranges:
            _set_range(model, rows[0], feature, ranges[feature.name])
    for feature in features:
        seen_missing = table is None or bool(table[feature.name].isna().any())
        _check_nulls(model, rows[0], feature, feature.name in imputed or seen_missing)
        _check_categories(model, rows[0], feature)
        if feature.type == "category" and feature.categories is None and table is not None:
            feature.train_categories = commonest(table[feature.name])
        _check_bounds(model, rows[0], feature)
    _check_corners(model, rows[0], features)
    task = _task(estimator)
    classifier = task == "classification"
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "version": version,
        "task": task,
        "estimator": _summary(estimator),
        "artifact": {"file": "", "sha256": ""},
        "input": form,
        "features": [feature.to_manifest() for feature in features],
    }
    if classifier:
        values = np.asarray(estimator.classes_).tolist()
        if np.ndim(values) != 1:
            raise PackageError("multi-output classifiers are not supported")
        manifest["classes"] = [{"value": v, "label": str(v)} for v in values]
        if len({str(v) for v in values}) != len(values):
            raise PackageError("two classes have the same name as a string")
        manifest["probabilities"] = callable(getattr(estimator, "predict_proba", None))
    checks = _self_check_rows(model, rows, classifier)
    manifest["self_check"] = {"instances": checks, "predictions": model.predict(checks)}
    manifest["versions"] = versions(estimator)
    return manifest


def _check_estimator(estimator: Any) -> None:
    """Refuse, in one line, what is no fitted scikit-learn estimator: a class, a function, an
    object with predict() but no fit(), one whose attributes raise, one scikit-learn rejects."""
    kind = type(estimator).__name__
    if isinstance(estimator, type):
        raise PackageError(f"{estimator.__name__} is a class, not a fitted estimator")
    try:
        predict, fit = getattr(estimator, "predict", None), getattr(estimator, "fit", None)
    except Exception as exc:  # its own __getattr__, a property: unpickled code runs here
        raise PackageError(f"{kind}'s attributes cannot be read ({one_line(exc)})") from None
    if not callable(predict):
        raise PackageError(f"{kind} has no predict() method")
    if not callable(fit):
        raise PackageError(f"{kind} is not a scikit-learn estimator: it has no fit() method")
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise PackageError(f"{kind} is not fitted") from None
    except Exception as exc:  # scikit-learn's own checks: tags, vars(), __sklearn_is_fitted__
        raise PackageError(f"{kind} is not a scikit-learn estimator ({one_line(exc)})") from None


def _task(estimator: Any) -> str:
    """What it predicts (vocabulary.TASKS): a classifier's classes, an outlier detector's -1
    and 1, a clusterer's cluster indices, else numbers."""
    if is_classifier(estimator) and hasattr(estimator, "classes_"):
        return "classification"
    if is_outlier_detector(estimator):
        return "outlier_detection"
    is_clusterer = getattr(sklearn.base, "is_clusterer", None)  # scikit-learn 1.6 or later
    if is_clusterer is not None and is_clusterer(estimator):
        return "clustering"
    if getattr(estimator, "_estimator_type", None) == "clusterer":
        return "clustering"
    final = estimator
    while hasattr(final, "steps"):  # a pipeline predicts with its last step
        final = final.steps[-1][1]
    if isinstance(final, (GaussianMixture, BayesianGaussianMixture)):  # components' indices
        return "clustering"
    return "regression"


def versions(estimator: Any = None) -> dict[str, str]:
    """The library versions a model is packaged with: where only scikit-learn can serve it,
    what it is served with elsewhere (core/sklearn_engine.py's model_requirements). pandas too,
    for an array model as well: the versions installed together resolve together. Then any
    other distribution the estimator's pickle imports (XGBoost's, LightGBM's, ...)."""
    import pandas
    import scipy

    found = {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pandas.__version__,
        "joblib": joblib.__version__,
    }
    if estimator is not None:
        found |= {k: v for k, v in pickled_distributions(estimator).items() if k not in found}
    return found


def pickled_distributions(estimator: Any) -> dict[str, str]:
    """The installed distributions whose modules unpickling the estimator imports, with their
    versions: where scikit-learn serves it, they must be installed too (an XGBoost model whose
    booster has no compiled form needs xgboost). A module no distribution installed (the
    user's own, the standard library's) is not one."""
    import importlib.metadata
    import pickle

    modules: set[str] = set()

    class Recorder(pickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            module = getattr(obj, "__module__", None) or type(obj).__module__
            if isinstance(module, str):
                modules.add(module.partition(".")[0])
            return NotImplemented  # pickled as it is: only its modules are wanted

    class Discard:
        def write(self, data: Any) -> None:
            """Bytes, or an array's PickleBuffer (protocol 5): kept by neither."""

    try:
        Recorder(Discard(), protocol=pickle.HIGHEST_PROTOCOL).dump(estimator)
    except Exception:  # unpicklable here (it was loaded from a pickle): nothing to add
        return {}
    owners = importlib.metadata.packages_distributions()
    names = {name for module in modules for name in owners.get(module, [])}
    return {name: importlib.metadata.version(name) for name in sorted(names)}


class _Probe:
    """The estimator, given rows (dicts by feature name) exactly as the service will give them."""

    def __init__(self, estimator: Any, features: list[Feature], form: str) -> None:
        self.estimator, self.features, self.form = estimator, features, form

    def predict(self, rows: Sequence[dict[str, Any]], method: str = "predict") -> Any:
        """The estimator's `method` (predict, predict_proba) for these rows; predictions as a
        list."""
        columns = [[row[f.name] for row in rows] for f in self.features]
        given = estimator_input(self.features, self.form, columns)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            answered = getattr(self.estimator, method)(given)
        return one_per_row(answered).tolist() if method == "predict" else answered

    def works(self, rows: Sequence[dict[str, Any]]) -> bool:
        """Whether the estimator predicts these rows, and finite values if it regresses; and
        finite probabilities where it gives them, which a request may ask for (a nearest
        centroid's distances overflow at the largest floats, and predict_proba raises)."""
        try:
            answers = self.predict(rows)
            if callable(getattr(self.estimator, "predict_proba", None)):
                proba = np.asarray(self.predict(rows, "predict_proba"), dtype=np.float64)
                if not np.isfinite(proba).all():
                    return False
        except Exception:  # any refusal: a value the service must not let through
            return False
        return all(not isinstance(a, float) or math.isfinite(a) for a in answers)


def _feature_names(estimator: Any, table: Any) -> tuple[list[str], str]:
    """The features' names in the estimator's order, and how it takes them (vocabulary.INPUTS):
    a DataFrame if it was fitted on one, a 1-D array if it takes one feature that way, else a
    2-D array."""
    fitted_names = getattr(estimator, "feature_names_in_", None)
    if fitted_names is not None:
        names = [str(n) for n in fitted_names]
        if table is not None and set(names) - set(table.columns):
            missing = sorted(set(names) - set(table.columns))
            raise PackageError(f"the table lacks the estimator's columns {missing}")
        return names, "dataframe"
    count, form = fitted_count(estimator), "array"
    if count is None and _one_dimensional(estimator):
        count, form = 1, "vector"
    if count is None and table is not None:  # CatBoost's is 0: the table's columns, in order
        count = len(table.columns)
    if count is None:
        raise PackageError("the estimator does not say how many features it takes")
    if table is None:
        return [f"x{i}" for i in range(count)], form
    if len(table.columns) != count:
        raise PackageError(
            f"the table has {len(table.columns)} columns, the estimator takes {count} features "
            "(leave the target out of the table, or name it with --target)"
        )
    return [str(c) for c in table.columns], form


def with_fitted_names(estimator: Any, table: Any) -> Any:
    """The table with its columns named as the estimator knows them. LightGBM makes every space
    in a DataFrame's column names "_" when it is fitted (its feature_names_in_), and predicts
    on the names either way: the table's "mean radius" is its "mean_radius"."""
    fitted = getattr(estimator, "feature_names_in_", None)
    if table is None or fitted is None:
        return table
    known = {str(n) for n in fitted}
    renamed = {
        c: c.replace(" ", "_")
        for c in table.columns
        if isinstance(c, str) and c not in known and c.replace(" ", "_") in known
    }
    if set(renamed.values()) & set(table.columns):
        return table  # both names in the table: which is meant is not for us to guess
    return table.rename(columns=renamed)


def _one_dimensional(estimator: Any) -> bool:
    """Whether it was fitted on one feature as a 1-D input: a text vectorizer first (a list of
    strings), or an estimator that takes only 1-D arrays of numbers (IsotonicRegression)."""
    first = estimator.steps[0][1] if isinstance(estimator, Pipeline) else estimator
    if isinstance(first, TEXT):
        return True
    get_tags = getattr(sklearn.utils, "get_tags", None)  # scikit-learn 1.6 or later
    if get_tags is None:
        return False
    tags = get_tags(first).input_tags
    return bool(tags.one_d_array and not tags.two_d_array)


def _encoders(estimator: Any, names: list[str]) -> Iterator[tuple[str, Any]]:
    """(column, the encoder that turns it into numbers) for every column an encoder takes."""
    first = estimator.steps[0][1] if isinstance(estimator, Pipeline) else estimator
    if isinstance(first, ColumnTransformer):
        for _, transformer, columns in first.transformers_:
            selected = _column_names(columns, names)
            encoder = _last_encoder(transformer)
            if encoder is not None:
                yield from ((column, (encoder, i)) for i, column in enumerate(selected))
        return
    encoder = _last_encoder(first)
    if encoder is not None:
        yield from ((column, (encoder, i)) for i, column in enumerate(names))


def _imputed_columns(estimator: Any, names: list[str]) -> set[str]:
    """The columns an imputer fills in: all of them if a pipeline step before the estimator
    is one, else those a ColumnTransformer hands to one."""
    from sklearn.impute import KNNImputer, SimpleImputer

    def imputes(step: Any) -> bool:
        steps = step.steps if isinstance(step, Pipeline) else [("", step)]
        return any(isinstance(s, (SimpleImputer, KNNImputer)) for _, s in steps)

    steps = estimator.steps[:-1] if isinstance(estimator, Pipeline) else []
    if any(imputes(step) for _, step in steps):
        return set(names)
    first = steps[0][1] if steps else None
    if not isinstance(first, ColumnTransformer):
        return set()
    return {
        column
        for _, transformer, columns in first.transformers_
        if imputes(transformer)
        for column in _column_names(columns, names)
    }


def _fitted_with_none(estimator: Any, names: list[str]) -> set[str]:
    """The columns whose missing values the estimator was fitted with as None, not NaN: an
    encoder holds None among their categories (pandas 2 keeps None in an object column, and
    an imputer of NaN passes it on), or an imputer looks for None. Given NaN for a null there,
    it would answer otherwise: unimputed, another category or an unknown one."""
    from sklearn.impute import SimpleImputer

    def found(transformer: Any, columns: list[str]) -> set[str]:
        steps = transformer.steps if isinstance(transformer, Pipeline) else [("", transformer)]
        hits = set()
        for _, step in steps:
            if isinstance(step, SimpleImputer) and step.missing_values is None:
                hits.update(columns)
            fitted = getattr(step, "categories_", None) if isinstance(step, ENCODERS) else None
            if fitted is not None and len(fitted) == len(columns):
                hits.update(
                    c for c, cs in zip(columns, fitted, strict=True) if any(v is None for v in cs)
                )
        return hits

    first = estimator.steps[0][1] if isinstance(estimator, Pipeline) else estimator
    if not isinstance(first, ColumnTransformer):
        return found(estimator, names)
    return set().union(
        *(found(t, _column_names(columns, names)) for _, t, columns in first.transformers_)
    )


def _column_names(columns: Any, names: list[str]) -> list[str]:
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, slice) or callable(columns):
        return []  # not how a fitted ColumnTransformer keeps them
    picked = np.arange(len(names))[columns] if np.asarray(columns).dtype == bool else columns
    return [names[c] if isinstance(c, (int, np.integer)) else str(c) for c in picked]


ENCODERS = (OneHotEncoder, OrdinalEncoder, TargetEncoder)  # they have categories_
TEXT = (CountVectorizer, HashingVectorizer)  # TfidfVectorizer too: they take any string


def _last_encoder(transformer: Any) -> Any:
    """The step that takes a column's strings: an encoder of categories, or of text."""
    steps = transformer.steps if isinstance(transformer, Pipeline) else [("", transformer)]
    found = [s for _, s in steps if isinstance(s, (*ENCODERS, *TEXT))]
    return found[0] if found else None


def _feature(name: str, encoding: Any, table: Any, boolean: bool = False) -> Feature:
    """A feature's description from its encoder (if any) and its table column (if any)."""
    column = None if table is None else table[name]
    if column is not None and column.dtype.kind == "M":
        return Feature(name, "datetime")  # ISO strings in JSON: no range, no categories
    if column is not None and column.dtype.kind in "iu":
        kind = "integer"
    elif column is not None and column.dtype.kind == "f":
        kind = "number"
    elif column is not None or encoding is not None:
        kind = "category"
    else:
        kind = "number"
    feature = Feature(name, kind)
    if kind == "category":
        encoder, index = encoding if encoding is not None else (None, 0)
        fitted = getattr(encoder, "categories_", None)  # none for text
        known = [] if fitted is None else np.asarray(fitted[index]).tolist()
        feature.categories = tuple(sorted(str(c) for c in known if isinstance(c, str))) or None
        if column is not None:
            feature.train_categories = tuple(sorted(set(column.dropna().astype(str))))
        return feature
    if boolean:
        feature.min, feature.max, feature.boolean = 0, 1, True
    if column is not None and column.notna().any():
        feature.train_min, feature.train_max = (
            _json_number(column.min()),
            _json_number(column.max()),
        )
    return feature


def commonest(column: Any) -> tuple[str, ...]:
    """An open category's values seen in the table, for the manifest: the most frequent
    SEEN_VALUES of those at most SEEN_VALUE_LENGTH long, sorted. Free text, or ids, can number
    hundreds of thousands, and the manifest is read at every boot; verification sends the
    table's own rows anyway (compile.py)."""
    counts = column.dropna().astype(str).value_counts()
    short = [(-n, v) for v, n in counts.items() if len(v) <= SEEN_VALUE_LENGTH]
    return tuple(sorted(v for _, v in sorted(short)[:SEEN_VALUES]))


def _categorical(name: str, categories: tuple[str, ...], table: Any) -> Feature:
    """A pandas category column's feature: its categories, closed, in the estimator's order."""
    feature = Feature(name, "category", categories=categories, pandas_categories=categories)
    if table is not None:
        feature.train_categories = tuple(sorted(set(table[name].dropna().astype(str))))
    return feature


def _pandas_categories(estimator: Any, names: list[str]) -> dict[str, tuple[str, ...]]:
    """trees.pandas_categories, its refusal a packaging error."""
    from .trees import NotSupported, pandas_categories  # onnx: imported only to package

    try:
        return pandas_categories(estimator, names)
    except NotSupported as exc:
        raise PackageError(str(exc)) from None


def _dates(column: Any) -> bool:
    """Whether a table's column holds dates: datetime64 already, or (read from a CSV) strings
    that all parse as ISO 8601 dates or date-times without an offset."""
    if column.dtype.kind == "M":
        return True
    values = column.dropna()
    if not len(values) or not all(isinstance(v, str) for v in values):
        return False
    return all(parse_datetime(v) is not None for v in values)


def _json_number(value: Any) -> int | float:
    number = value.item() if hasattr(value, "item") else value
    return number if isinstance(number, int) else float(number)


def _sample_rows(features: list[Feature], table: Any) -> list[dict[str, Any]]:
    """Rows to probe and to self-check with: the table's complete rows, else made up."""
    if table is not None:
        complete = table.dropna()
        if len(complete):
            return [
                {k: _json_value(v) for k, v in record.items()}
                for record in complete.to_dict(orient="records")
            ]
    made_up: dict[str, Any] = {}
    for feature in features:
        if feature.type == "category":
            made_up[feature.name] = (feature.categories or ["a"])[0]
        else:
            made_up[feature.name] = 0 if feature.type == "integer" else 0.0
    return [made_up]


def _json_value(value: Any) -> Any:
    """A table's value as JSON gives it: a date as its ISO 8601 string."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def _check_nulls(model: _Probe, row: dict[str, Any], feature: Feature, expected: bool) -> None:
    """Nullable only if the estimator takes a missing value there, and a missing value is to
    be expected: the pipeline imputes it, or the table has some. An estimator that takes NaN
    itself (trees, HistGradientBoosting*) but never saw one there guesses where it goes."""
    feature.nullable = expected and model.works([{**row, feature.name: None}])


def _check_categories(model: _Probe, row: dict[str, Any], feature: Feature) -> None:
    """A category's values are open (any string) only if an unseen one predicts."""
    if feature.type != "category" or feature.pandas_categories is not None:
        return  # a pandas category's are those it was fitted on: another would be missing
    if model.works([{**row, feature.name: UNSEEN}]):
        feature.categories = None
    elif not feature.categories:
        if not feature.train_categories:
            raise PackageError(
                f"cannot tell which values {feature.name!r} takes: give the table (--data)"
            )
        feature.categories = feature.train_categories


def _set_range(
    model: _Probe, row: dict[str, Any], feature: Feature, bounds: tuple[float, float]
) -> None:
    """The range the user gave a number feature (--range), if the estimator answers at both
    ends: requests outside it are refused, and the compiled form is verified inside it."""
    low, high = bounds
    if not feature.numeric:
        raise PackageError(f"--range {feature.name}: a range is for numbers, not {feature.type}")
    if feature.type == "integer":
        low, high = math.ceil(low), math.floor(high)
    if not low <= high:
        raise PackageError(f"--range {feature.name}: empty, {low} to {high}")
    for end in (low, high):
        if not model.works([{**row, feature.name: end}]):
            raise PackageError(f"--range {feature.name}: the estimator refuses {end}")
    feature.min, feature.max = low, high


def _check_bounds(model: _Probe, row: dict[str, Any], feature: Feature) -> None:
    """For a number without bounds, on each side of zero the largest magnitude the estimator
    still turns into an answer: values beyond it are refused. A side it refuses at every
    magnitude tried (a logarithm's negatives) ends at zero, itself allowed only if it predicts.
    No bound on a side where the estimator takes the largest float."""
    if not feature.numeric or (feature.min, feature.max) != (None, None):
        return
    name, integer = feature.name, feature.type == "integer"
    magnitudes = (
        [LARGEST_INTEGER, *(int(m) for m in _MAGNITUDES if 1 <= m < LARGEST_INTEGER)]
        if integer
        else list(_MAGNITUDES)
    )

    def reach(sign: int) -> int | float | None:
        for magnitude in magnitudes:
            if model.works([{**row, name: sign * magnitude}]):
                return sign * magnitude
        return None

    zero = model.works([{**row, name: 0 if integer else 0.0}])
    high, low = reach(1), reach(-1)
    if high is None and low is None and not zero:
        raise PackageError(
            f"{name!r}: the estimator refuses every value tried, of magnitude "
            f"{magnitudes[-1]:g} to {magnitudes[0]:g} and zero"
        )
    for side, reached, sign in (("max", high, 1), ("min", low, -1)):
        if reached is None:  # that side of zero is refused: zero is the bound
            if integer:
                setattr(feature, side, 0 if zero else -sign)  # or the first whole number past
            else:
                setattr(feature, side, 0.0)
                setattr(feature, f"{side}_inclusive", zero)
        elif integer or abs(reached) != _MAGNITUDES[0]:
            setattr(feature, side, reached)


def _check_corners(model: _Probe, row: dict[str, Any], features: list[Feature]) -> None:
    """Every bounded number at its bound at once, on each side: shrink all bounds tenfold until
    it predicts. An exclusive bound is tried just inside it."""
    bounded = [f for f in features if f.numeric and (f.min, f.max) != (None, None)]
    for _ in range(8):
        corners = [
            {**row, **{f.name: _inside(f, side) for f in bounded if getattr(f, side) is not None}}
            for side in ("max", "min")
        ]
        if not bounded or model.works(corners):
            return
        for f in bounded:
            f.min = None if f.min is None else f.min / 10
            f.max = None if f.max is None else f.max / 10
    raise PackageError("the estimator refuses its features' values taken together")


def _inside(feature: Feature, side: str) -> int | float:
    """The value at a bound, or the nearest one inside it where the bound is exclusive."""
    bound: int | float = getattr(feature, side)
    if getattr(feature, f"{side}_inclusive"):
        return bound
    return math.nextafter(bound, -math.inf if side == "max" else math.inf)


def _self_check_rows(
    model: _Probe, rows: list[dict[str, Any]], classifier: bool, most: int = 5
) -> list[dict[str, Any]]:
    """A few rows for /ready to replay: one per class where the rows give them."""
    if not classifier:
        return rows[:most]
    chosen: dict[Any, dict[str, Any]] = {}
    for row, predicted in zip(rows[:1000], model.predict(rows[:1000]), strict=True):
        chosen.setdefault(predicted, row)
    return list(chosen.values())[:most]


def _summary(estimator: Any) -> str:
    if isinstance(estimator, Pipeline):
        return " -> ".join(type(step).__name__ for _, step in estimator.steps)
    return type(estimator).__name__


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file in the same folder, so a reader never sees half a file."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def compile_into(estimator: Any, manifest: dict[str, Any], table: Any, artifact: Path) -> None:
    """Compile the estimator to MODEL.onnx beside the artifact, verified (compile.py), and
    record the outcome in the manifest: the file's entry, or why there is none. With it,
    MODEL.verification.json: rows and the estimator's answers to verify it again with where
    another onnxruntime serves it (the manifest's "verification" entry)."""
    from .compile import compile_model  # skl2onnx: imported only to compile

    target, rows = artifact.with_suffix(".onnx"), rows_file(artifact)
    if any(f["type"] == "datetime" for f in manifest["features"]):
        entry, graph, kept = {"error": "date/time features are served by scikit-learn"}, None, None
    else:
        entry, graph, kept = compile_model(estimator, manifest, table, target.name)
    manifest["compiled"] = entry
    manifest.pop("verification", None)
    if graph is None or kept is None:
        # an earlier compiled form no longer describes the model
        target.unlink(missing_ok=True)
        rows.unlink(missing_ok=True)
        return
    write_atomically(target, lambda tmp: tmp.write_bytes(graph))
    write_atomically(rows, lambda tmp: tmp.write_bytes(kept))
    count = len(json.loads(kept)["predictions"])
    manifest["verification"] = {"file": rows.name, "rows": count}
    if "tolerance" in entry:  # else the float32 forms' (core/verification.py)
        manifest["verification"]["tolerance"] = entry["tolerance"]


def rows_file(artifact: Path) -> Path:
    """Where the verification rows of the compiled form go: MODEL.verification.json."""
    return artifact.with_suffix(".verification.json")


def write_manifest(manifest: dict[str, Any], artifact: Path, replace: bool = False) -> Path:
    """Record the sha256 and size of the artifact and of its compiled form in the manifest,
    and write it beside the artifact. (The size bounds what is fetched from Cloud Storage.)"""
    path = artifact.with_suffix(".json")
    if path.exists() and not replace:
        raise PackageError(f"{path} exists: pass --force to replace it")
    manifest["artifact"] = {
        "file": artifact.name,
        "sha256": sha256_of(artifact),
        "size": artifact.stat().st_size,
    }
    for key in ("compiled", "verification"):
        entry = manifest.get(key, {})
        if "file" in entry:
            written = artifact.parent / entry["file"]
            entry.update(sha256=sha256_of(written), size=written.stat().st_size)
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def package(args: argparse.Namespace) -> int:
    """Describe, compile and write the manifest the parsed arguments (command.py) ask for;
    print what was written and the pin, or one line on stderr and return 1."""
    model: Path = args.model
    try:
        for written in (model.with_suffix(".json"), model.with_suffix(".onnx"), rows_file(model)):
            if written.exists() and not args.force:
                raise PackageError(f"{written} exists: pass --force to replace it")
        estimator = _load(model)
        table = _read_table(args.data, args.target) if args.data else None
        try:
            name = args.name or default_name(model)
            manifest = describe(estimator, table, name, args.version, dict(args.range or []))
        except PackageError:
            raise
        except Exception as exc:  # the unpickled object's own code, raising as it is asked
            raise PackageError(f"describing it failed: {one_line(exc)}") from None
        compile_into(estimator, manifest, with_fitted_names(estimator, table), model)
        path = write_manifest(manifest, model, replace=args.force)
    except PackageError as exc:
        print(f"cannot package {model}: {exc}", file=sys.stderr)
        return 1
    kinds = ", ".join(f"{f['name']} ({f['type']})" for f in manifest["features"])
    print(f"wrote {path}: {manifest['task']}, {manifest['input']} input: {kinds}")
    compiled = manifest["compiled"]
    if "file" in compiled:
        rows = compiled["verification"]["rows"]
        print(f"wrote {model.with_suffix('.onnx')}: the compiled form, verified on {rows} rows")
    else:
        print(f"not compiled, scikit-learn will serve it: {compiled['error']}")
    print(f"served as {manifest['name']!r} {manifest['version']}; pin it where it is deployed:")
    print(f"MODEL_SHA256={sha256_of(path)}")
    return 0


def default_name(model: Path) -> str:
    """The file's stem, or for the usual model.pkl its folder's name (build/churn/model.pkl:
    churn), so that two models are not both "model" in their V1 and V2 routes."""
    folder = model.resolve().parent.name
    return folder if model.stem == "model" and folder else model.stem


def _load(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PackageError(f"cannot read it: {exc.strerror}") from None
    try:
        return unpickle(data, path, _where_to_package)
    except ArtifactError as exc:
        raise PackageError(str(exc)) from None
    except Exception as exc:  # a corrupt or foreign file can raise almost anything
        raise PackageError(f"cannot unpickle it: {unpickling_failure(exc, data[:8])}") from None


def _where_to_package(version: str) -> str:
    """What to do with a pickle from another scikit-learn: package it where it was trained,
    pinning that scikit-learn so that pip keeps it (it would install the newest), unless it
    is older than packaging supports."""
    if _older_than_supported(version):
        return (
            f"scikit-learn {version} is older than packaging supports ({OLDEST_SCIKIT_LEARN} "
            "or later): fit and save it again with a newer one"
        )
    return (
        f"package it where it was trained, keeping its scikit-learn: {install_command('package')} "
        f"scikit-learn=={version} there (docs/models.md)"
    )


def _older_than_supported(version: str) -> bool:
    parts = re.match(r"(\d+)\.(\d+)", version)
    oldest = tuple(int(p) for p in OLDEST_SCIKIT_LEARN.split("."))
    return parts is not None and (int(parts[1]), int(parts[2])) < oldest


def _read_table(path: Path, target: str | None) -> Any:
    import pandas

    try:
        table = pandas.read_csv(path)
    except (OSError, ValueError) as exc:
        raise PackageError(f"cannot read {path}: {exc}") from None
    if target is not None:
        if target not in table.columns:
            raise PackageError(f"the table has no column {target!r}")
        table = table.drop(columns=[target])
    return table
