"""marshmallow schemas for prediction requests, built from the model's features, and FastAcceptor.

The policy: JSON numbers only (no numeric strings, booleans or null), finite, inside each
feature's range, every feature required, unknown fields rejected. Nothing about HTTP here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from itertools import chain, repeat
from operator import eq, itemgetter
from typing import Any

import numpy as np
from marshmallow import Schema, ValidationError, fields, validate

from .model import Feature


class JSONNumber(fields.Float):
    """A finite JSON number. Float alone would accept "5.1", "1_0", true and 1e400."""

    default_error_messages = {
        "invalid": "Not a valid number.",
        "special": "Not a finite number.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if type(value) is not float and type(value) is not int:
            raise self.make_error("invalid")
        try:
            number = float(value)
        except OverflowError:
            raise self.make_error("special") from None
        if not math.isfinite(number):
            raise self.make_error("special")
        return number


def feature_field(feature: Feature) -> JSONNumber:
    """A required number inside the feature's range."""
    return JSONNumber(
        required=True,
        validate=validate.Range(
            min=feature.min,
            max=feature.max,
            min_inclusive=feature.min_inclusive,
            max_inclusive=feature.max_inclusive,
        ),
        metadata={"description": f"{feature.name}, a finite number"},
    )


class Instance(fields.Field):
    """One instance of a batch: an object like the single request, or an array in feature order."""

    default_error_messages = {
        "invalid": "Must be an object of features or an array of numbers.",
        "length": "Must hold exactly {count} numbers, in the order of the features.",
    }

    def __init__(self, instance_schema: Schema, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instance_schema = instance_schema

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[float]:
        schema = self.instance_schema
        if isinstance(value, dict):
            loaded = schema.load(value)
            return [loaded[name] for name in schema.fields]
        if not isinstance(value, list):
            raise self.make_error("invalid")
        if len(value) != len(schema.fields):
            raise self.make_error("length", count=len(schema.fields))
        row: list[float] = []
        errors: dict[str, Any] = {}
        for (name, field), item in zip(schema.fields.items(), value, strict=True):
            try:
                row.append(field.deserialize(item))
            except ValidationError as exc:
                errors[name] = exc.messages
        if errors:
            raise ValidationError(errors)
        return row


class Instances(fields.List):
    """A non-empty list with a maximum length, checked before any item is read."""

    def __init__(self, item: fields.Field, max_items: int, **kwargs: Any) -> None:
        super().__init__(item, **kwargs)
        self.max_items = max_items

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, list) and not 1 <= len(value) <= self.max_items:
            raise ValidationError(f"Must hold between 1 and {self.max_items} instances.")
        return super()._deserialize(value, attr, data, **kwargs)


def instance_schema(features: Sequence[Feature]) -> Schema:
    """The single-instance request: one required number field per feature, in order."""
    cls = Schema.from_dict({f.name: feature_field(f) for f in features}, name="Instance")
    return cls()


def batch_schema(features: Sequence[Feature], max_batch_size: int) -> Schema:
    """The batch request: {"instances": [...]}, each an object or an array."""
    cls = Schema.from_dict(
        {
            "instances": Instances(
                Instance(instance_schema(features)), max_batch_size, required=True
            )
        },
        name="Batch",
    )
    return cls()


class PredictQuery(Schema):
    """Query parameters of POST /predict."""

    probabilities = fields.Boolean(
        load_default=False,
        metadata={"description": "Add the class label and per-class probabilities."},
    )


_NUMBERS = {float, int}  # exact types: bool is a subclass of int, and is refused


class FastAcceptor:
    """The same policy without marshmallow's per-field calls: a valid request's matrix, or None.

    One marshmallow load costs ~10 µs: a tenth of a single prediction's whole time in the
    app, and 0.1 s of a 10,000-instance batch. This accepts only what the schemas accept,
    per value for one instance and over the whole array at once for a batch; on None the
    caller loads the document with marshmallow, which names every offending field.
    tests/test_schemas.py proves the two agree.
    """

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

    def instance(self, document: Any) -> np.ndarray | None:
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

    def batch(self, document: Any) -> np.ndarray | None:
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
