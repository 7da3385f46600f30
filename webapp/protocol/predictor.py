"""The data plane every protocol shares: validated rows in, predictions out, each one counted.

The service's own routes, Vertex AI's, KServe V1 and the Open Inference Protocol all hand it
rows their protocol has already validated; it knows no request, response or error shape.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from typing import Any

import numpy as np

from ..core.model import Model
from ..core.vocabulary import INTEGER_LABELS, ArtifactError, Rows, row_count
from ..runtime import metrics

log = logging.getLogger(__name__)


class Predictor:
    """A loaded model's answers, its readiness and its identity; one per process."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.name = model.manifest["name"]
        self.version = model.manifest["version"]
        # predictions counted by class label; a regressor's all under ""
        self._predicted = {
            value: metrics.PREDICTIONS.labels(label) for value, label in model.labels.items()
        }
        self._predicted_value = metrics.PREDICTIONS.labels("")
        self.dtype = prediction_dtype(model)
        # numeric classes sorted: an array of them is counted by where each falls among them,
        # or for the classes 0 to n - 1 (most integer classes) by its values themselves
        self._classes = sorted(model.classes) if self.dtype != object else []
        self._sorted = np.array(self._classes, self.dtype)
        self._indices = self.dtype == np.int64 and self._classes == list(range(len(self._classes)))
        # A batch's predictions as the array's values, where they are the very values the list
        # gives: numbers of one type (not classes mixing integers with floats, given as both)
        self._batch_as_array = self.dtype != object and len({type(c) for c in model.classes}) <= 1
        self._checked_pid: int | None = None
        metrics.MODEL_INFO.labels(self.name, self.version, model.sha256).set(1)

    def ready(self) -> bool:
        """Whether the model's self-check has passed in this very process (checked once)."""
        if self._checked_pid != os.getpid():
            try:
                self.model.self_check()
            except ArtifactError as exc:
                log.error("self-check failed: %s", exc)
                return False
            self._checked_pid = os.getpid()
        return True

    def unknown(self, name: str, version: str | None = None) -> str | None:
        """Why a request for model `name` (at `version`) is not this one's, else None."""
        if name != self.name:
            return f'No such model: this server serves "{self.name}".'
        if version is not None and version != self.version:
            return f'No such version of the model: this server serves "{self.version}".'
        return None

    def predict(self, rows: Rows) -> list[Any]:
        """What the estimator predicts for each row, as JSON values; counted.

        A batch of numbers is predicted as one array and counted over it (predict_array):
        a Counter of 10,000 values took 0.4 ms, the array's count 0.02 ms.
        """
        if self._batch_as_array and row_count(rows) > 1:
            values: list[Any] = self.predict_array(rows).tolist()
            return values
        predictions = self.model.predict(rows)
        metrics.BATCH_SIZE.observe(len(predictions))
        self._count(predictions)
        return predictions

    def predict_array(self, rows: Rows) -> np.ndarray:
        """What the estimator predicts for each row, as one array (`dtype`); counted.

        For an output tensor: a batch of numeric predictions is counted over the array, not
        value by value.
        """
        predictions = self.model.predict_array(rows)
        metrics.BATCH_SIZE.observe(len(predictions))
        if self.dtype == object:
            self._count(predictions.tolist())
            return predictions.astype(object, copy=False)
        array = predictions.astype(self.dtype, copy=False)
        if not self.model.classification:
            self._predicted_value.inc(len(array))
            return array
        if len(array) == 1:
            self._count(array.tolist())
            return array
        if self._indices:  # each value is its class's place: counted if all are places
            index = array if array.min() >= 0 and array.max() < len(self._classes) else None
        else:
            index = np.searchsorted(self._sorted, array)
            if not (index < len(self._classes)).all() or not (self._sorted[index] == array).all():
                index = None
        if index is None:
            self._count(array.tolist())  # not all classes: refused there, as by predict()
            return array
        for value, count in zip(self._classes, np.bincount(index).tolist(), strict=False):
            if count:
                self._predicted[value].inc(count)
        return array

    def _count(self, predictions: list[Any]) -> None:
        if not self.model.classification:
            self._predicted_value.inc(len(predictions))
        elif len(predictions) == 1:  # most requests: skip the Counter
            self._predicted[predictions[0]].inc()
        else:
            for value, count in Counter(predictions).items():
                self._predicted[value].inc(count)

    def predict_proba(self, rows: Rows) -> list[dict[str, float]]:
        """Per-class probabilities keyed by label, one mapping per row."""
        return self.model.predict_proba(rows)


def prediction_dtype(model: Model) -> np.dtype[Any]:
    """The array type of the model's predictions: the classes' own where they share a numeric
    one (bool, int64), float64 for numbers (a regressor's values), int64 for a clusterer's or
    an outlier detector's labels, else objects (strings)."""
    if model.manifest["task"] in INTEGER_LABELS:
        return np.dtype(np.int64)
    kinds = {type(c) for c in model.classes} if model.classification else {float}
    if kinds == {bool} or kinds == {int}:
        return np.dtype(kinds.pop())
    return np.dtype(float if kinds <= {int, float} else object)
