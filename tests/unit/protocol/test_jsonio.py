"""The byte scan that lets a batch of number arrays skip asking each value its type, and the
strict parse that finds a duplicate key wherever it hides."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.protocol.jsonio import JSONDecodeError, _key_count, loads, only_number_arrays

pytestmark = pytest.mark.unit

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.sampled_from(["", "e", "E", "1", "instances", "-1e5", "[]"]),
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["instances", "x", "e", ""]), inner, max_size=3)
    ),
    max_leaves=12,
)
layouts = st.sampled_from([{}, {"indent": 2}, {"separators": (",", ":")}, {"indent": "\t"}])


def numbers_and_arrays(value: Any) -> bool:
    if type(value) is list:
        return all(map(numbers_and_arrays, value))
    return type(value) in (int, float)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(documents, st.fixed_dictionaries({"instances": documents})), layouts)
def test_it_says_yes_only_for_numbers_and_arrays_under_instances(
    document: Any, layout: dict[str, Any]
) -> None:
    """Exactly {"instances": ...} of numbers and arrays, however the JSON is laid out."""
    body = json.dumps(document, **layout).encode()
    expected = (
        type(document) is dict
        and document.keys() == {"instances"}
        and numbers_and_arrays(document["instances"])
    )
    assert only_number_arrays(body) is expected


def test_an_escaped_key_or_a_second_key_takes_the_long_way() -> None:
    assert only_number_arrays(b'{"instances": [[1.5, -2e3, 0], [4, 5, 6]]}')
    assert not only_number_arrays(b'{"\\u0069nstances": [[1]]}')
    assert not only_number_arrays(b'{"instances": [[1]], "parameters": {}}')
    assert not only_number_arrays(b'{"instances": [[true]]}')


# Objects as lists of (key, value) pairs, so that a key may repeat; containers short and long
# (a long one is checked in bulk: a batch of objects, a batch of arrays).
keys = st.sampled_from(["a", "b", "c", "a:b", "\\u0061"])


def objects(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.tuples(st.just("object"), st.lists(st.tuples(keys, inner), max_size=5))


leaves = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.sampled_from([":", 0.5])
pair_trees = st.recursive(
    leaves,
    lambda inner: (
        objects(inner)
        | st.lists(inner, max_size=4)
        | st.lists(inner, min_size=17, max_size=24)
        | st.lists(objects(inner), min_size=17, max_size=24)
        | st.lists(st.lists(inner, max_size=3), min_size=17, max_size=24)
    ),
    max_leaves=80,
)


def written(tree: Any) -> str:
    """The tree as JSON text, each object's pairs in order, repeated keys and all."""
    if type(tree) is tuple:
        return "{" + ",".join(f'"{key}":{written(value)}' for key, value in tree[1]) + "}"
    if type(tree) is list:
        return "[" + ",".join(map(written, tree)) + "]"
    return json.dumps(tree)


def keys_in(document: Any) -> int:
    if type(document) is dict:
        return len(document) + sum(map(keys_in, document.values()))
    if type(document) is list:
        return sum(map(keys_in, document))
    return 0


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError("a duplicate key")
    return dict(pairs)


@settings(max_examples=400, deadline=None)
@given(pair_trees)
def test_a_duplicate_key_anywhere_is_refused_and_nothing_else(tree: Any) -> None:
    """The standard library with a hook that sees every object's pairs is the oracle. A
    document whose keys are all counted takes orjson's fast parse, the others the strict one."""
    body = written(tree).encode()
    try:
        expected = json.loads(body, object_pairs_hook=_unique)
    except ValueError:
        with pytest.raises(JSONDecodeError):
            loads(body)
    else:
        assert loads(body) == expected
        assert _key_count(expected) == keys_in(expected)


def test_a_duplicate_key_deep_in_a_long_batch_is_refused() -> None:
    batch = [{"x": i, "y": [i, {"z": i}]} for i in range(40)]
    body = json.dumps({"instances": batch}).encode()
    assert loads(body) == {"instances": batch}
    assert body.count(b'{"z": 39}') == 1
    with pytest.raises(JSONDecodeError, match="Duplicate key"):
        loads(body.replace(b'{"z": 39}', b'{"z": 39, "z": 40}'))
    arrays = json.dumps({"inputs": [[[i, i + 1]] for i in range(40)] + [[{"k": 2}]]})
    assert loads(arrays.encode())["inputs"][-1] == [{"k": 2}]
    with pytest.raises(JSONDecodeError, match="Duplicate key"):
        loads(arrays.replace('{"k": 2}', '{"k": 1, "k": 2}').encode())
