"""The validation policy's two implementations agree: marshmallow, and the vectorised batch path."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from testkit.processes import ROOT
from webapp.core.model import load_model
from webapp.core.vocabulary import Feature
from webapp.protocol.accept import SMALL_BATCH_VALUES, ValidRows
from webapp.protocol.jsonio import loads, only_number_arrays
from webapp.protocol.schemas import batch_schema, instance_schema

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
# Strings JSON can hold but Unicode cannot: a lone surrogate ("\ud800", a valid JSON escape).
surrogates = st.text(st.characters(categories=["Cs", "Ll"]), min_size=1, max_size=3)
values = st.one_of(
    numbers,
    numbers,
    numbers,
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    surrogates,
    st.just([1.0]),
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
    """With and without the hint its body's bytes give (only numbers and arrays in it)."""
    hinted = only_number_arrays(json.dumps(document).encode())
    slow = marshmallow_matrix(document)
    for fast in (FAST.of_batch(document), FAST.of_batch(document, hinted)):
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
    body = json.dumps({"instances": rows}).encode()
    assert only_number_arrays(body)
    assert np.array_equal(FAST.of_batch(loads(body), number_arrays=True), np.array(rows))


# Mostly valid numbers, so that a row out of range often sits among valid ones.
mostly_valid = st.one_of(*[st.floats(min_value=0.001, max_value=100)] * 3, numbers)


@settings(max_examples=600, deadline=None)
@given(
    rows=st.lists(
        st.lists(mostly_valid, min_size=4, max_size=4),
        min_size=1,
        max_size=SMALL_BATCH_VALUES // len(NAMES) + 2,
    ),
    as_objects=st.booleans(),
)
def test_small_batches_checked_value_by_value_match_marshmallow(
    rows: list[list[Any]], as_objects: bool
) -> None:
    """Batches of a few rows, every row of the right shape (any value may be out of range, not
    finite or too large for a float, in any row): checked in Python up to SMALL_BATCH_VALUES,
    through numpy above it, and either way as marshmallow decides."""
    instances = [dict(zip(NAMES, row, strict=True)) for row in rows] if as_objects else rows
    document = {"instances": instances}
    slow = marshmallow_matrix(document)
    fast = FAST.of_batch(document)
    if slow is None:
        assert fast is None
    else:  # every value within its range (at most 100): none an integer numpy could not take
        assert fast is not None and np.array_equal(fast, slow)


@pytest.mark.parametrize("row", [[1.0, [2.0], 3.0, 4.0], [[1.0, 2.0, 3.0, 4.0]] * 4, [1, 2, 3, []]])
def test_an_array_among_a_row_s_numbers_is_refused_with_the_hint(row: list[Any]) -> None:
    """Only numbers and arrays in the body, yet an array where a number belongs."""
    body = json.dumps({"instances": [[5.0, 3.0, 1.5, 0.2], row]}).encode()
    assert only_number_arrays(body)
    assert FAST.of_batch(loads(body), number_arrays=True) is None
    assert marshmallow_matrix(loads(body)) is None


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
def test_compiled_predictions_are_scikit_learns(model_path: str, wine_model: Path) -> None:
    """On rows it was not verified on (another seed), the compiled form answers as the
    estimator: the same classes, probabilities within 1e-6."""
    path = wine_model if model_path == "wine" else ROOT / model_path
    compiled, plain = load_model(path, engine="onnx"), load_model(path, engine="sklearn")
    rng = np.random.default_rng(12345)
    low = np.array([f["train_min"] for f in compiled.manifest["features"]])
    high = np.array([f["train_max"] for f in compiled.manifest["features"]])
    rows = rng.uniform(low / 2, high * 2, size=(50_000, len(low)))
    assert compiled.engine.linear is not None  # its labels in numpy, from the recorded parameters
    assert compiled.predict(rows) == plain.predict(rows)
    compiled.engine.linear = None  # and the graph's own
    assert compiled.predict(rows) == plain.predict(rows)
    np.testing.assert_allclose(
        compiled.engine.predict_proba(rows), plain.engine.predict_proba(rows), rtol=0, atol=1e-6
    )


# A model of every feature kind: the typed path (one column per feature) against marshmallow.
TYPED = (
    Feature("n", "number", nullable=True, min=-10.0, max=10.0, min_inclusive=False),
    Feature("i", "integer", min=0, max=1000),
    Feature("big", "integer", nullable=True),
    Feature("c", "category", nullable=True, categories=("a", "b")),
    Feature("s", "category"),
    Feature("b", "integer", nullable=True, min=0, max=1, boolean=True),  # true/false as 1/0
)
TYPED_NAMES = [f.name for f in TYPED]
TYPED_SCHEMA = batch_schema(TYPED, 50)
TYPED_INSTANCE = instance_schema(TYPED)
TYPED_FAST = ValidRows(TYPED, 50)
typed_values = st.one_of(
    st.integers(-20, 1200),
    st.integers(2**53 - 2, 2**53 + 2),
    st.sampled_from([-10, -10.0, 10, 10.0, 0.5, 3.0, -0.0, 2.0**53, 2.0**53 + 2, 1e400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["a", "b", "z", "", "\ud800", "a\udfff", "\ud83d\ude00"]),
    st.text(max_size=2),
    surrogates,
    st.none(),
    st.booleans(),
    st.just([1]),
)
typed_objects = st.fixed_dictionaries(
    {name: typed_values for name in TYPED_NAMES}, optional={"colour": typed_values}
)


def same_columns(fast: Any, loaded_rows: list[list[Any]]) -> bool:
    """The fast columns hold what marshmallow loaded, of the same kind (an int stays an int)."""
    expected = [list(column) for column in zip(*loaded_rows, strict=True)]
    return all(
        [(type(v) is int, v) for v in got] == [(type(v) is int, v) for v in want]
        if feature.type == "integer"
        else got == want
        for feature, got, want in zip(TYPED, fast, expected, strict=True)
    )


@settings(max_examples=1500, deadline=None)
@given(st.lists(typed_objects, max_size=8) | st.lists(st.lists(typed_values, max_size=6)))
def test_typed_batch_policy_matches_marshmallow(instances: list[Any]) -> None:
    document = {"instances": instances}
    fast = TYPED_FAST.of_batch(document)
    try:
        rows = TYPED_SCHEMA.load(document)["instances"]
    except ValidationError:
        assert fast is None
    else:
        assert fast is None or same_columns(fast, rows)


@settings(max_examples=1500, deadline=None)
@given(typed_objects)
def test_typed_single_instance_policy_matches_marshmallow(document: Any) -> None:
    fast = TYPED_FAST.of_instance(document)
    try:
        loaded = TYPED_INSTANCE.load(document)
    except ValidationError:
        assert fast is None
    else:
        assert fast is not None and same_columns(fast, [[loaded[n] for n in TYPED_NAMES]])


valid_typed = st.fixed_dictionaries(
    {
        "n": st.none() | st.floats(-10, 10, exclude_min=True),
        "i": st.integers(0, 1000) | st.integers(0, 1000).map(float),
        "big": st.none() | st.integers(-(2**53), 2**53),
        "c": st.sampled_from([None, "a", "b"]),
        "s": st.text(max_size=4),
        "b": st.sampled_from([None, True, False, 0, 1, 0.0, 1.0]),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.lists(valid_typed, min_size=1, max_size=20))
def test_valid_typed_documents_take_the_fast_path(rows: list[dict[str, Any]]) -> None:
    assert TYPED_FAST.of_batch({"instances": rows}) is not None
    assert TYPED_FAST.of_instance(rows[0]) is not None


@settings(max_examples=1500, deadline=None)
@given(valid_typed, st.sampled_from(TYPED_NAMES), typed_values, st.integers(0, 2))
def test_one_value_changed_in_a_valid_document(
    row: dict[str, Any], name: str, value: Any, place: int
) -> None:
    """Every other value valid, so the one changed decides: both fast paths (one instance, and
    it among valid ones in a batch) accept it exactly when marshmallow does."""
    changed = {**row, name: value}
    batch = {"instances": [row] * place + [changed] + [row] * (2 - place)}
    try:
        loaded = TYPED_INSTANCE.load(changed)
    except ValidationError:
        assert TYPED_FAST.of_instance(changed) is None
        assert TYPED_FAST.of_batch(batch) is None
    else:
        expected = [[loaded[n] for n in TYPED_NAMES]]
        assert same_columns(TYPED_FAST.of_instance(changed), expected)
        assert same_columns(TYPED_FAST.of_batch(batch), TYPED_SCHEMA.load(batch)["instances"])


def test_nan_beside_nulls_is_refused() -> None:
    """NaN is a number, not a missing value, even in a column that takes null: a batch with
    both (values from a binary tensor come as floats) is refused, as marshmallow refuses it.
    Hypothesis found it, only when its search ran long enough."""
    row = {"n": None, "i": 0, "big": None, "c": None, "s": "", "b": None}
    batch = {"instances": [{**row, "n": math.nan}, row]}
    with pytest.raises(ValidationError):
        TYPED_SCHEMA.load(batch)
    assert TYPED_FAST.of_batch(batch) is None
    assert TYPED_FAST.of_instance({**row, "n": math.nan}) is None


def test_a_boolean_feature_takes_true_and_false_as_1_and_0() -> None:
    """Only a boolean feature: an integer one refuses true, as a number does."""
    row = {"n": 1.0, "i": 1, "big": None, "c": "a", "s": "text"}
    for sent, taken in ((True, 1), (False, 0), (1, 1), (0.0, 0), (None, None)):
        loaded = TYPED_INSTANCE.load({**row, "b": sent})
        assert loaded["b"] == taken and type(loaded["b"]) is type(taken)
        fast = TYPED_FAST.of_instance({**row, "b": sent})
        assert fast is not None and fast[-1] == [taken] and type(fast[-1][0]) is type(taken)
    for name in ("i", "n"):
        with pytest.raises(ValidationError) as refused:
            TYPED_INSTANCE.load({**row, "b": 1, name: True})
        assert set(refused.value.messages) == {name}
        assert TYPED_FAST.of_instance({**row, "b": 1, name: True}) is None
    for wrong in (2, -1, 0.5, "true", "1"):
        with pytest.raises(ValidationError):
            TYPED_INSTANCE.load({**row, "b": wrong})
        assert TYPED_FAST.of_instance({**row, "b": wrong}) is None


def test_a_boolean_feature_s_manifest_entry() -> None:
    """Recorded as an integer from 0 to 1 with "boolean": true, read back as it was written."""
    entry = TYPED[-1].to_manifest()
    assert (entry["type"], entry["min"], entry["max"], entry["boolean"]) == ("integer", 0, 1, True)
    assert Feature.from_manifest(entry) == TYPED[-1]
    assert "boolean" not in TYPED[1].to_manifest()
    with pytest.raises(ValueError, match="a boolean is an integer from 0 to 1"):
        Feature.from_manifest({**entry, "max": 2})


LONE = "Not valid Unicode text (a lone surrogate)."


@pytest.mark.parametrize("value", ["\ud800", "ok\udc00", "\ud83d\ude00", "é\udfff"])
@pytest.mark.parametrize("name", ["s", "c"])  # open to any string, and among categories
def test_a_lone_surrogate_is_not_text(value: str, name: str) -> None:
    """JSON's escapes can write a lone surrogate, which no UTF-8 encoder takes (the compiled
    engine's): a category holding one is refused by name, by the schemas and the fast path."""
    row = {"n": 1.0, "i": 1, "big": None, "c": "a", "s": "text", "b": True, name: value}
    with pytest.raises(ValidationError) as refused:
        TYPED_INSTANCE.load(row)
    assert refused.value.messages == {name: [LONE]}
    assert TYPED_FAST.of_instance(row) is None
    batch = {"instances": [{**row, name: "b"}, row, {**row, "n": None}]}
    with pytest.raises(ValidationError) as refused:
        TYPED_SCHEMA.load(batch)
    assert refused.value.messages == {"instances": {1: {name: [LONE]}, 2: {name: [LONE]}}}
    assert TYPED_FAST.of_batch(batch) is None
    assert TYPED_FAST.of_batch({"instances": [{**row, name: "b"}]}) is not None
