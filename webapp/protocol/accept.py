"""The fast path for accepting requests: what schemas.py accepts, at once, as the model's rows.

marshmallow calls a field per value: a tenth of a single prediction's time in the app, and
most of a 10,000-instance batch's (docs/performance.md). ValidRows accepts exactly what the
schemas accept and gives the same values: a float matrix when every feature is a number that
may not be null (one instance checked value by value, a batch over its whole array at once),
and one column per feature otherwise (each column checked at once). For anything else it says
None, and the caller loads the document with marshmallow, which names every offending field.
tests/unit/protocol/test_schemas.py proves the two agree on generated valid and invalid documents.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from itertools import chain, repeat
from operator import eq, itemgetter
from typing import Any

import numpy as np

from ..core.vocabulary import Feature, Rows
from .schemas import LARGEST_INTEGER, is_unicode

_NUMBERS = {float, int}  # exact types: bool is a subclass of int, and is refused
_NONE = type(None)


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
        self.low = np.array([-math.inf if f.min is None else f.min for f in features])
        self.high = np.array([math.inf if f.max is None else f.max for f in features])
        self.low_inclusive = np.array([f.min_inclusive for f in features])
        self.high_inclusive = np.array([f.max_inclusive for f in features])
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
            return self._columns([[value] for value in row])
        if not set(map(type, row)) <= _NUMBERS:
            return None  # a string, boolean, null or container
        try:
            numbers = list(map(float, row))
        except OverflowError:  # an integer beyond any float
            return None
        if not (
            all(map(math.isfinite, numbers)) and all(map(Feature.contains, self.features, numbers))
        ):
            return None
        return np.array([numbers])

    def of_batch(self, document: Any) -> Rows | None:
        """A valid batch request's rows, or None."""
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
        if not set(map(type, values())) <= _NUMBERS:
            return None  # a string, boolean, null or container somewhere
        try:
            matrix = np.fromiter(values(), np.float64, len(instances) * self.width)
        except OverflowError:  # an integer beyond any float
            return None
        matrix = matrix.reshape(len(instances), self.width)
        if not (np.isfinite(matrix).all() and self._inside(matrix, slice(None)).all()):
            return None
        return matrix

    def _inside(self, numbers: np.ndarray, which: Any) -> np.ndarray:
        """Whether each number lies in its feature's range (features `which`, broadcast)."""
        low, high = self.low[which], self.high[which]
        above = np.where(self.low_inclusive[which], numbers >= low, numbers > low)
        below = np.where(self.high_inclusive[which], numbers <= high, numbers < high)
        return above & below

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
            if not kinds <= _NUMBERS:
                return None
            if feature.type == "integer" and float in kinds:
                if not all(v.is_integer() for v in column if type(v) is float):
                    return None
                columns[index] = column = [v if v is None else int(v) for v in column]
            try:  # null becomes NaN here, and only null: the JSON parser refuses NaN itself
                numbers = np.array(column, dtype=np.float64)
            except OverflowError:  # an integer beyond any float
                return None
            if feature.nullable and None in column:
                numbers = numbers[~np.isnan(numbers)]
            if not np.isfinite(numbers).all() or not self._inside(numbers, index).all():
                return None
            if feature.type == "integer":
                present = column if not feature.nullable else [v for v in column if v is not None]
                if max(map(abs, present), default=0) > LARGEST_INTEGER:
                    return None
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
