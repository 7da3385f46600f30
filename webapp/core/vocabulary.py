"""The words every layer shares: a feature, the rows the engines take, the artifact's refusal.

No Flask, no numpy, no scikit-learn: serving and packaging both import it, and it imports
nothing of theirs. A Feature is one input as the manifest records it (docs/manifest.md):
packaging fills it in, serving only reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MANIFEST_FORMAT = 2  # docs/manifest.md
TYPES = ("number", "integer", "category", "datetime")
# What a model predicts: a class, a number, or (clusterers, outlier detectors) an integer label
# that is no class it was taught: a cluster's index, or -1 for an outlier and 1 for an inlier.
TASKS = ("classification", "regression", "clustering", "outlier_detection")
INTEGER_LABELS = ("clustering", "outlier_detection")
# How the estimator takes its rows: a 2-D array, a pandas DataFrame (fitted on one), or, for an
# estimator of one feature fitted on 1-D input (a text pipeline on a list of strings,
# IsotonicRegression), a 1-D array of that feature's values.
INPUTS = ("array", "dataframe", "vector")
# What a category's null reaches the estimator as: NaN, as pandas reads a missing string (and
# scikit-learn's imputers look for), or None, where the estimator was fitted with None there:
# pandas 2 keeps None in an object column, and an encoder after an imputer of NaN learns it.
NULL_AS = ("NaN", "None")
# The largest integer a float64 holds exactly, and an int64 with room: an integer feature's
# values stay within it whatever its range says, in a request and in packaging's probes.
LARGEST_INTEGER = 2**53
# What a compiled graph whose strings come as codes (compiled "codes") is given for a null
# category, where its table holds it: a string of its own, told apart from "" (a client's
# value, or a None the estimator learnt apart from it). Its code is a null's alone
# (onnx_engine): a client that sends this very string gets the code of any string the graph
# does not know. Graphs packaged before it was, and those taking strings, are given "".
NULL_STRING = "\x00null"

Rows = Any  # a float matrix (numbers only) or one sequence of values per feature (columns)


def row_count(rows: Rows) -> int:
    """How many rows: a matrix's (numpy's, by its shape), or its first column's length."""
    shape = getattr(rows, "shape", None)
    return int(shape[0]) if shape is not None else len(rows[0])


class ArtifactError(Exception):
    """The model artifact cannot be served; the message says why in one line."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line for a log or a refusal: its type, its message's first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:limit]}" if text else type(exc).__name__


@dataclass
class Feature:
    """One input: its name, JSON type, whether it may be null, and the values it may take.

    Numbers and integers: the (closed, half-open or open) range, None for unbounded.
    Categories: the allowed strings, None for any. The training facts (the range or the
    categories the table showed) guide packaging's verification; `extra` keeps what else the
    manifest says of it (a unit, a description) as it is.
    """

    name: str
    type: str = "number"
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True
    categories: tuple[str, ...] | None = None
    train_min: float | None = None
    train_max: float | None = None
    train_categories: tuple[str, ...] | None = None
    boolean: bool = False  # an integer 0..1 from a bool column: JSON true and false taken too
    # a pandas category column's categories in their order, which the estimator (XGBoost's,
    # LightGBM's) was fitted on: the column is given that dtype
    pandas_categories: tuple[str, ...] | None = None
    # what a category's null reaches the estimator as: NaN, as pandas reads a missing string,
    # or None, where the estimator was fitted with None there (NULL_AS)
    null_as: str = "NaN"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, spec: dict[str, Any]) -> Feature:
        """A feature from its manifest entry; ValueError or KeyError if it is malformed."""
        kind = spec.get("type", "number")
        if kind not in TYPES:
            raise ValueError(f"feature {spec['name']!r} has type {kind!r}, not one of {TYPES}")
        categories, train_categories = spec.get("categories"), spec.get("train_categories")
        for values in (categories, train_categories):
            if values is not None and not all(isinstance(c, str) for c in values):
                raise ValueError(f"feature {spec['name']!r}: categories must be strings")
        boolean = spec.get("boolean", False) is True
        if boolean and (kind, spec.get("min"), spec.get("max")) != ("integer", 0, 1):
            raise ValueError(f"feature {spec['name']!r}: a boolean is an integer from 0 to 1")
        null_as = spec.get("null_as", "NaN")
        if null_as not in NULL_AS or (null_as != "NaN" and kind != "category"):
            raise ValueError(f"feature {spec['name']!r}: null_as is one of {NULL_AS}")
        bounds = [spec.get(key) for key in ("min", "max", "train_min", "train_max")]
        if not all(b is None or isinstance(b, (int, float)) for b in bounds):
            raise ValueError(f"feature {spec['name']!r}: min and max must be numbers or null")
        return cls(
            name=str(spec["name"]),
            type=kind,
            nullable=bool(spec.get("nullable", False)),
            min=bounds[0],
            max=bounds[1],
            min_inclusive=bool(spec.get("min_inclusive", True)),
            max_inclusive=bool(spec.get("max_inclusive", True)),
            categories=None if categories is None else tuple(categories),
            train_min=bounds[2],
            train_max=bounds[3],
            train_categories=None if train_categories is None else tuple(train_categories),
            boolean=boolean,
            pandas_categories=_strings(spec, "pandas_categories"),
            null_as=null_as,
            extra={k: v for k, v in spec.items() if k not in _KEYS},
        )

    def to_manifest(self) -> dict[str, Any]:
        """The feature's manifest entry: the keys its type uses, training facts where known."""
        entry: dict[str, Any] = {"name": self.name, "type": self.type, "nullable": self.nullable}
        if self.type == "category":
            entry["categories"] = None if self.categories is None else list(self.categories)
            if self.train_categories is not None:
                entry["train_categories"] = list(self.train_categories)
            if self.pandas_categories is not None:
                entry["pandas_categories"] = list(self.pandas_categories)
            if self.null_as != "NaN":
                entry["null_as"] = self.null_as
        else:
            entry.update(min=self.min, max=self.max)
            entry.update(min_inclusive=self.min_inclusive, max_inclusive=self.max_inclusive)
            if self.train_min is not None:
                entry.update(train_min=self.train_min, train_max=self.train_max)
            if self.boolean:
                entry["boolean"] = True
        return {**entry, **self.extra}

    @property
    def numeric(self) -> bool:
        """Whether its values are numbers (number or integer), not strings."""
        return self.type in ("number", "integer")

    def contains(self, number: float) -> bool:
        """Whether a finite number lies inside this feature's range."""
        if self.min is not None and not (
            number >= self.min if self.min_inclusive else number > self.min
        ):
            return False
        return self.max is None or (number <= self.max if self.max_inclusive else number < self.max)


_KEYS = {f for f in Feature.__dataclass_fields__ if f != "extra"}


def _strings(spec: dict[str, Any], key: str) -> tuple[str, ...] | None:
    """A category feature's list of strings under `key`, if it has one."""
    values = spec.get(key)
    if values is None:
        return None
    if spec.get("type") != "category" or not all(isinstance(v, str) for v in values):
        raise ValueError(f"feature {spec['name']!r}: {key} are a category's strings")
    return tuple(values)


# The years a datetime64[ns] column holds (pandas' Timestamp range), whole years only.
FIRST_YEAR, LAST_YEAR = 1678, 2261


def parse_datetime(text: str) -> datetime | None:
    """An ISO 8601 date or date and time without a UTC offset (as the estimator's datetime64
    column had none), in the years a datetime64[ns] holds; None if it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is not None or not FIRST_YEAR <= moment.year <= LAST_YEAR:
        return None
    return moment


def features_of(manifest: dict[str, Any]) -> tuple[Feature, ...]:
    """The manifest's features; ValueError or KeyError if one is malformed."""
    return tuple(Feature.from_manifest(f) for f in manifest["features"])
