"""The validation policy's two implementations agree: marshmallow, and the vectorised batch path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from testkit.processes import ROOT
from webapp.accept import ValidRows
from webapp.model import load_model
from webapp.schemas import batch_schema, instance_schema

pytestmark = pytest.mark.unit

MODEL = load_model(ROOT / "model.pkl")
NAMES = list(MODEL.feature_names)
SCHEMA = batch_schema(MODEL.features, 50)
INSTANCE = instance_schema(MODEL.features)
FAST = ValidRows(MODEL.features, 50)

numbers = st.one_of(
    st.floats(min_value=0, max_value=100),
    st.sampled_from([0, 0.0, -0.0, 100, 100.0, 5e-324, 100.00000000000001, -1, 101]),
    st.integers(min_value=-5, max_value=150),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=10**300, max_value=10**400),
)
values = st.one_of(
    numbers, numbers, numbers, st.booleans(), st.none(), st.text(max_size=3), st.just([1.0])
)
as_array = st.lists(values, min_size=3, max_size=5)
as_object = st.dictionaries(st.sampled_from([*NAMES, "colour"]), values, min_size=3, max_size=5)
instances = st.one_of(as_array, as_object, as_array, as_object, st.none(), st.just("x"))
documents = st.one_of(
    st.fixed_dictionaries({"instances": st.lists(instances, max_size=60)}),
    st.fixed_dictionaries({"instances": st.lists(instances, max_size=3)}, optional={"x": values}),
    st.fixed_dictionaries({"instances": values}),
)


def marshmallow_matrix(document: Any) -> np.ndarray | None:
    try:
        rows = SCHEMA.load(document)["instances"]
    except ValidationError:
        return None
    return np.asarray(rows, dtype=np.float64)


@settings(max_examples=1500, deadline=None)
@given(documents)
def test_vectorised_batch_policy_matches_marshmallow(document: Any) -> None:
    fast = FAST.of_batch(document)
    slow = marshmallow_matrix(document)
    if slow is None:
        assert fast is None
    else:
        # fast may decline a valid batch (its caller then uses marshmallow), but never differs
        assert fast is None or np.array_equal(fast, slow)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.floats(min_value=0.001, max_value=100), min_size=4, max_size=4),
                min_size=1, max_size=50))  # fmt: skip
def test_valid_array_batches_take_the_fast_path(rows: list[list[float]]) -> None:
    objects = [dict(zip(NAMES, row, strict=True)) for row in rows]
    for document in ({"instances": rows}, {"instances": objects}):
        fast = FAST.of_batch(document)
        assert fast is not None
        assert np.array_equal(fast, np.array(rows))


single_documents = st.one_of(
    as_object,
    st.fixed_dictionaries({name: numbers for name in NAMES}),
    st.fixed_dictionaries({name: numbers for name in NAMES}, optional={"colour": values}),
    instances,
    st.fixed_dictionaries({"instances": st.lists(as_object, max_size=2)}),
)


@settings(max_examples=1500, deadline=None)
@given(single_documents)
def test_single_instance_policy_matches_marshmallow(document: Any) -> None:
    fast = FAST.of_instance(document)
    try:
        loaded = INSTANCE.load(document)
    except ValidationError:
        assert fast is None
    else:
        expected = np.array([[loaded[name] for name in NAMES]])
        assert fast is not None and np.array_equal(fast, expected)
        assert fast.dtype == expected.dtype == np.float64


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=0.001, max_value=100), min_size=4, max_size=4))
def test_valid_single_instances_take_the_fast_path(row: list[float]) -> None:
    fast = FAST.of_instance(dict(zip(NAMES, row, strict=True)))
    assert fast is not None and np.array_equal(fast, np.array([row]))


@pytest.mark.parametrize("model_path", ["model.pkl", "wine"])
def test_fast_predictions_are_exactly_scikit_learns(model_path: str, wine_model: Path) -> None:
    model = load_model(wine_model if model_path == "wine" else ROOT / model_path)
    assert model._predict != model.estimator.predict  # the fast path is in use
    rows = model.verification_rows(count=50_000, seed=12345)
    assert model.predict(rows) == model.estimator.predict(rows).tolist()
