"""The byte scan that lets a batch of number arrays skip asking each value its type."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.protocol.jsonio import only_number_arrays

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
