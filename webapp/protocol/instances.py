"""A request's instances as the model's rows, for every protocol that sends instances.

The vectorised acceptor (accept.py) takes what is valid at once; marshmallow (schemas.py) loads
anything else, and names every offending field when it refuses (ValidationError). /predict,
Vertex AI, KServe V1 and the Open Inference Protocol's tensors all come through here. No Flask.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from marshmallow import ValidationError

from ..core.model import Model
from ..core.vocabulary import Rows
from .accept import ValidRows
from .schemas import batch_schema, instance_schema

_ABSENT = object()
# marshmallow says "Invalid input type." of a document that is no object; what to send instead:
NOT_AN_INSTANCE = 'Must be an object of features, or {"instances": [...]} for a batch of rows.'
NOT_A_BATCH = 'Must be an object: {"instances": [...]}, the rows in a list.'


class Instances:
    """The model's instance and batch schemas, and the fast path beside them."""

    def __init__(self, model: Model, max_batch_size: int) -> None:
        self.model = model
        self.instance_schema = instance_schema(model.features)
        self.batch_schema = batch_schema(model.features, max_batch_size)
        self.valid_rows = ValidRows(model.features, max_batch_size)
        self.parameters_field = self.batch_schema.fields["parameters"]

    def one(self, document: Any) -> Rows:
        """A single instance's row; ValidationError naming every offending field."""
        rows = self.valid_rows.of_instance(document)
        if rows is None:
            if not isinstance(document, dict):
                raise ValidationError({"_schema": [NOT_AN_INSTANCE]})
            rows = self.model.columns([self.instance_schema.load(document)])
        return rows

    def batch(self, document: Any, number_arrays: bool = False) -> tuple[Rows, dict[str, Any]]:
        """{"instances": [...], "parameters": {...}}'s rows and parameters (Vertex AI's options
        for the request); ValidationError naming every offending field. `number_arrays`: as
        ValidRows.of_batch takes it.

        The parameters are checked on their own, so that the instances keep the fast path.
        """
        given = document.pop("parameters", _ABSENT) if type(document) is dict else _ABSENT
        rows = self.valid_rows.of_batch(document, number_arrays)
        parameters: Any = {}
        if given is not _ABSENT:
            try:
                parameters = self.parameters_field.deserialize(given)
            except ValidationError:
                rows = None  # marshmallow names every offending field, below
            document["parameters"] = given
        if rows is None:  # invalid, most likely
            if not isinstance(document, dict):
                raise ValidationError({"_schema": [NOT_A_BATCH]})
            loaded = self.batch_schema.load(document)
            rows = self.model.columns(loaded["instances"])
            parameters = loaded.get("parameters", {})
        return rows, parameters

    def tensor(self, tensor: np.ndarray) -> Rows:
        """A numeric [N, n_features] tensor's rows (V2's binary matrix), checked as one array;
        if it is refused, its values are loaded as a batch of arrays, so that marshmallow
        names every offending field (ValidationError), exactly as for the same JSON numbers."""
        rows = self.valid_rows.of_tensor(tensor)
        if rows is None:
            rows, _ = self.batch({"instances": tensor.tolist()})
        return rows

    def is_batch(self, document: Any) -> bool:
        """{"instances": ...} is a batch, unless the model has a feature of that name and the
        value is not a list (no feature takes one): then it is that feature's single row."""
        if not isinstance(document, dict) or "instances" not in document:
            return False
        return "instances" not in self.model.feature_names or isinstance(
            document["instances"], list
        )
