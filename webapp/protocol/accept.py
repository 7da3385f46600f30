"""The fast path for accepting requests: what schemas.py accepts, at once, as the model's rows.

marshmallow calls a field per value: a tenth of a single prediction's time in the app, and
most of a 10,000-instance batch's (docs/performance.md). ValidRows accepts exactly what the
schemas accept and gives the same values: a float matrix when every feature is a number that
may not be null (one instance or a small batch checked value by value, a larger batch over its
whole array at once), and one column per feature otherwise (each column checked at once). A
numeric tensor that came as bytes (V2's binary tensor extension) is checked as the array it is,
never as Python values. For anything else it says None, and the caller loads the document with
marshmallow, which names every offending field. tests/unit/protocol/test_schemas.py and
tests/service/test_tensors.py prove the two agree on generated valid and invalid documents and
tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from itertools import chain, repeat
from operator import eq, itemgetter, le
from typing import Any

import numpy as np

from ..core.vocabulary import LARGEST_INTEGER, Feature, Rows
from .schemas import is_unicode

_NUMBERS = {float, int}  # exact types: bool is a subclass of int, and is refused
_NONE = type(None)
# A batch of at most this many values (rows x features) is checked value by value (_numbers):
# below it, numpy's fixed cost per call is more (measured: 4 features, 1 row 4 µs against 14,
# 24 rows 19 µs against 22).
SMALL_BATCH_VALUES = 100


class ValidRows:
    """The rows of a valid request, or None: the schemas' policy without their per-field calls."""

    def __init__(self, features: Sequence[Feature], max_batch_size: int) -> None:
        self.features = tuple(features)
        names = [f.name for f in features]
        self.width = len(names)
        self.names = frozenset(names)
        self.max_batch_size = max_batch_size
        self.arrays = all(f.numeric for f in features)  # instances may be arrays
        # plain: floats that may not be null, the shipped model's case: one float matrix
        self.plain = all(f.type == "number" and not f.nullable for f in features)
        self.values_of: Callable[[dict[str, Any]], Any] = (
            (lambda instance: (instance[names[0]],)) if len(names) == 1 else itemgetter(*names)
        )
        # Each range as closed bounds on floats: x > low is x >= the next float above low. A
        # bound no float holds (an integer beyond 2**53) would be compared rounded: none here.
        self.exact_bounds = all(_is_float(f.min) and _is_float(f.max) for f in features)
        self.low = np.array([_closed(f.min, f.min_inclusive, -math.inf) for f in features])
        self.high = np.array([_closed(f.max, f.max_inclusive, math.inf) for f in features])
        self.integers = np.array([f.type == "integer" for f in features])
        # the same bounds as Python floats, for one instance's values (_row)
        self.lows, self.highs = self.low.tolist(), self.high.tolist()
        self.bounds = list(zip(self.lows, self.highs, strict=True))
        # every feature a float of the same range, or of none (_within)
        self.one_range = len(set(self.bounds)) == 1 and not self.integers.any()
        numeric = any(f.type in ("number", "integer") for f in features)
        self.rows_checkable = self.exact_bounds or not numeric
        # a category's allowed values, null among them where it may be null
        self.allowed = [
            None if f.categories is None else frozenset([*f.categories, *[None] * f.nullable])
            for f in features
        ]

    def of_instance(self, document: Any) -> Rows | None:
        """A valid single-instance request's row, or None."""
        if type(document) is not dict or document.keys() != self.names:
            return None
        row = self.values_of(document)
        if not self.plain:
            return self._row(row)
        return self._numbers(row, 1)

    def of_batch(self, document: Any, number_arrays: bool = False) -> Rows | None:
        """A valid batch request's rows, or None. `number_arrays`: its body held only numbers
        and arrays (jsonio.only_number_arrays), so no value need be asked its type."""
        if type(document) is not dict or document.keys() != {"instances"}:
            return None
        instances = document["instances"]
        if type(instances) is not list or not 1 <= len(instances) <= self.max_batch_size:
            return None
        values = self._values(instances)
        if values is None:
            return None
        if not self.plain:
            flat = list(values())
            return self._columns([flat[i :: self.width] for i in range(self.width)])
        if len(instances) * self.width <= SMALL_BATCH_VALUES:
            return self._numbers(list(values()), len(instances))
        if not number_arrays and not set(map(type, values())) <= _NUMBERS:
            return None  # a string, boolean, null or container somewhere
        try:
            matrix = np.fromiter(values(), np.float64, len(instances) * self.width)
        except (OverflowError, ValueError):  # an integer beyond any float; an array in a row
            return None
        matrix = matrix.reshape(len(instances), self.width)
        return matrix if self._within(matrix) else None

    def of_tensor(self, tensor: np.ndarray) -> np.ndarray | None:
        """A valid numeric tensor's rows, as a float matrix, or None: an [N, n_features] array
        of any integer or float dtype, such as np.frombuffer gives for a binary tensor.

        What the schemas take, value by value: finite numbers inside each feature's range, and
        for an integer feature whole numbers of at most LARGEST_INTEGER in magnitude. NaN is a
        number here, not a missing value (only JSON's null is), so it is refused like infinity.
        """
        if not self.arrays or tensor.ndim != 2 or tensor.shape[1] != self.width:
            return None
        if not 1 <= len(tensor) <= self.max_batch_size or tensor.dtype.kind not in "fiu":
            return None
        if tensor.dtype.kind in "iu" and self.integers.any():  # the integers, before rounding
            whole = tensor[:, self.integers]
            if whole.max() > LARGEST_INTEGER or (
                tensor.dtype.kind == "i" and whole.min() < -LARGEST_INTEGER
            ):
                return None
        matrix = tensor.astype(np.float64)  # exact from float32; an integer rounded as by float()
        return matrix if self._within(matrix) else None

    def _numbers(self, values: Sequence[Any], rows: int) -> np.ndarray | None:
        """`rows` rows of plain features' values, flat in row order, as a float matrix if each
        is a finite number inside its feature's range, else None. Value by value in Python:
        for a few rows, cheaper than numpy's calls (SMALL_BATCH_VALUES)."""
        if not set(map(type, values)) <= _NUMBERS:
            return None  # a string, boolean, null or container
        try:
            numbers = list(map(float, values))
        except OverflowError:  # an integer beyond any float
            return None
        if not all(map(math.isfinite, numbers)):
            return None
        if self.exact_bounds:  # compared in C, not by a method call per value
            lows, highs = self.lows * rows, self.highs * rows
            inside = all(map(le, lows, numbers)) and all(map(le, numbers, highs))
        else:
            inside = all(map(Feature.contains, self.features * rows, numbers))
        return np.array(numbers).reshape(rows, self.width) if inside else None

    def _within(self, matrix: np.ndarray) -> bool:
        """Whether every row of a float matrix is valid: each value finite and inside its
        feature's range, and whole (at most LARGEST_INTEGER in magnitude) for an integer one.

        Checked on each feature's least and greatest value (NaN, if any, is both), over a
        transposed copy: numpy's loops then run along a feature's values, not across a row.
        Where every feature has the same range (or none) and none is an integer, the whole
        matrix's least and greatest value say the same, without the copy.
        """
        if not self.exact_bounds:
            return False
        if self.one_range:
            least, most = matrix.min(), matrix.max()
            return bool(
                math.isfinite(least)
                and math.isfinite(most)
                and self.lows[0] <= least
                and most <= self.highs[0]
            )
        columns = np.ascontiguousarray(matrix.T)
        least, most = columns.min(axis=1), columns.max(axis=1)
        if not (np.isfinite(least).all() and np.isfinite(most).all()):
            return False
        if not ((least >= self.low).all() and (most <= self.high).all()):
            return False
        if not self.integers.any():
            return True
        whole = columns[self.integers]
        return bool(
            (np.trunc(whole) == whole).all()
            and least[self.integers].min() >= -LARGEST_INTEGER
            and most[self.integers].max() <= LARGEST_INTEGER
        )

    def _inside(self, numbers: np.ndarray, feature: int) -> bool:
        """Whether every one of a feature's numbers lies inside its range."""
        if not self.exact_bounds:
            return False
        return bool((numbers >= self.low[feature]).all() and (numbers <= self.high[feature]).all())

    def _columns(self, columns: list[list[Any]]) -> list[list[Any]] | None:
        """The columns, each valid for its feature at once (integers as ints), or None."""
        for index, (feature, column) in enumerate(zip(self.features, columns, strict=True)):
            kinds = set(map(type, column))
            if feature.nullable:
                kinds.discard(_NONE)
            if feature.type == "category":
                allowed = self.allowed[index]
                if not kinds <= {str} or (allowed is not None and not allowed.issuperset(column)):
                    return None
                present = [v for v in column if v is not None] if None in column else column
                if not is_unicode("".join(present)):  # a lone surrogate: marshmallow says where
                    return None
                continue
            if feature.type == "datetime":  # parsed value by value: marshmallow's field does
                return None
            if feature.boolean and bool in kinds:  # true and false, as 1 and 0
                columns[index] = column = [int(v) if type(v) is bool else v for v in column]
                kinds = (kinds - {bool}) | {int}
            if not kinds <= _NUMBERS:
                return None
            if feature.type == "integer" and float in kinds:
                if not all(v.is_integer() for v in column if type(v) is float):
                    return None
                columns[index] = column = [v if v is None else int(v) for v in column]
            try:  # null becomes NaN here
                numbers = np.array(column, dtype=np.float64)
            except OverflowError:  # an integer beyond any float
                return None
            if feature.nullable and None in column:
                missing = np.isnan(numbers)
                # a float NaN is a number, not a null: refused, as the schemas refuse it
                if int(missing.sum()) != column.count(None):
                    return None
                numbers = numbers[~missing]
            if not np.isfinite(numbers).all() or not self._inside(numbers, index):
                return None
            if feature.type == "integer":
                present = column if not feature.nullable else [v for v in column if v is not None]
                if max(map(abs, present), default=0) > LARGEST_INTEGER:
                    return None
        return columns

    def _row(self, row: Sequence[Any]) -> list[list[Any]] | None:
        """One instance's values as _columns gives them (a column of one value per feature),
        checked value by value as _columns checks a column: numpy's calls on one value cost
        more than the checks themselves, a third of a tree model's single prediction."""
        if not self.rows_checkable:
            return None
        columns = []
        for feature, allowed, (low, high), value in zip(
            self.features, self.allowed, self.bounds, row, strict=True
        ):
            kind = type(value)
            if value is None:
                if not feature.nullable or feature.type == "datetime":
                    return None
            elif feature.type == "category":
                if kind is not str or (allowed is not None and value not in allowed):
                    return None
                if not is_unicode(value):  # a lone surrogate: marshmallow says where
                    return None
            elif feature.type == "datetime":  # parsed value by value: marshmallow's field does
                return None
            else:
                if feature.boolean and kind is bool:  # true and false, as 1 and 0
                    value, kind = int(value), int
                if kind is not float and kind is not int:
                    return None
                if feature.type == "integer" and kind is float:
                    if not value.is_integer():
                        return None
                    value = int(value)
                try:
                    number = float(value)
                except OverflowError:  # an integer beyond any float
                    return None
                if not (math.isfinite(number) and low <= number <= high):
                    return None
                if feature.type == "integer" and abs(value) > LARGEST_INTEGER:
                    return None
            columns.append([value])
        return columns

    def _values(self, instances: list[Any]) -> Callable[[], Iterator[Any]] | None:
        """If every instance has the right shape, a way to iterate over all their values in
        row order, as often as needed: nothing per instance is kept (C-speed maps)."""
        kinds = set(map(type, instances))
        if kinds == {list} and self.arrays:
            if set(map(len, instances)) != {self.width}:
                return None
            return lambda: chain.from_iterable(instances)
        if kinds == {dict}:
            if not all(map(eq, repeat(self.names), map(dict.keys, instances))):
                return None
            return lambda: chain.from_iterable(map(self.values_of, instances))
        if not self.arrays:
            return None
        rows = []
        for instance in instances:  # a mix of arrays and objects
            if type(instance) is list and len(instance) == self.width:
                rows.append(instance)
            elif type(instance) is dict and instance.keys() == self.names:
                rows.append(self.values_of(instance))
            else:
                return None
        return lambda: chain.from_iterable(rows)


def _is_float(bound: float | None) -> bool:
    """Whether a bound is None or a number that a float holds exactly."""
    try:
        return bound is None or float(bound) == bound
    except OverflowError:  # an integer beyond any float
        return False


def _closed(bound: float | None, inclusive: bool, unbounded: float) -> float:
    """A range's bound as an inclusive one on floats: an exclusive bound's next float inward."""
    if bound is None or not _is_float(bound):
        return unbounded  # none; or, for an inexact one, never compared (exact_bounds)
    return float(bound) if inclusive else float(np.nextafter(bound, -unbounded))
