"""The fast path for accepting requests: what schemas.py accepts, as a float matrix, at once.

marshmallow calls a field per value: a tenth of a single prediction's time in the app, and
most of a 10,000-instance batch's (docs/performance.md). ValidRows accepts exactly what the
schemas accept, per value for one instance and over the whole array at once for a batch, and
gives the same float64 values; for anything else it says None, and the caller loads the
document with marshmallow, which names every offending field. tests/test_schemas.py proves
the two agree on generated valid and invalid documents.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from itertools import chain, repeat
from operator import eq, itemgetter
from typing import Any

import numpy as np

from .model import Feature

_NUMBERS = {float, int}  # exact types: bool is a subclass of int, and is refused


class ValidRows:
    """The rows of a valid request, or None: the schemas' policy without their per-field calls."""

    def __init__(self, features: Sequence[Feature], max_batch_size: int) -> None:
        self.features = tuple(features)
        names = [f.name for f in features]
        self.width = len(names)
        self.names = frozenset(names)
        self.max_batch_size = max_batch_size
        self.values_of: Callable[[dict[str, Any]], Any] = (
            (lambda instance: (instance[names[0]],)) if len(names) == 1 else itemgetter(*names)
        )
        self.low = np.array([f.min for f in features])
        self.high = np.array([f.max for f in features])
        self.low_inclusive = np.array([f.min_inclusive for f in features])
        self.high_inclusive = np.array([f.max_inclusive for f in features])

    def of_instance(self, document: Any) -> np.ndarray | None:
        """A valid single-instance request as a one-row matrix, or None."""
        if type(document) is not dict or document.keys() != self.names:
            return None
        row = self.values_of(document)
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

    def of_batch(self, document: Any) -> np.ndarray | None:
        """A valid batch request's instances as a matrix, or None."""
        if type(document) is not dict or document.keys() != {"instances"}:
            return None
        instances = document["instances"]
        if type(instances) is not list or not 1 <= len(instances) <= self.max_batch_size:
            return None
        values = self._values(instances)
        if values is None:
            return None
        if not set(map(type, values())) <= _NUMBERS:
            return None  # a string, boolean, null or container somewhere
        try:
            matrix = np.fromiter(values(), np.float64, len(instances) * self.width)
        except OverflowError:  # an integer beyond any float
            return None
        matrix = matrix.reshape(len(instances), self.width)
        above = np.where(self.low_inclusive, matrix >= self.low, matrix > self.low)
        below = np.where(self.high_inclusive, matrix <= self.high, matrix < self.high)
        if not (np.isfinite(matrix).all() and above.all() and below.all()):
            return None
        return matrix

    def _values(self, instances: list[Any]) -> Callable[[], Iterator[Any]] | None:
        """If every instance has the right shape, a way to iterate over all their values in
        row order, as often as needed: nothing per instance is kept (C-speed maps)."""
        kinds = set(map(type, instances))
        if kinds == {list}:
            if set(map(len, instances)) != {self.width}:
                return None
            return lambda: chain.from_iterable(instances)
        if kinds == {dict}:
            if not all(map(eq, repeat(self.names), map(dict.keys, instances))):
                return None
            return lambda: chain.from_iterable(map(self.values_of, instances))
        rows = []
        for instance in instances:  # a mix of arrays and objects
            if type(instance) is list and len(instance) == self.width:
                rows.append(instance)
            elif type(instance) is dict and instance.keys() == self.names:
                rows.append(self.values_of(instance))
            else:
                return None
        return lambda: chain.from_iterable(rows)
