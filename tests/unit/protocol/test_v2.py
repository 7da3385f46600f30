"""An infer request's structure read past marshmallow (InferRequests.as_loaded) against the
schema alone, for any document: the same request, of the same JSON types, or the same refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from testkit.processes import ROOT
from webapp.core.model import load_model
from webapp.core.vocabulary import LARGEST_INTEGER
from webapp.protocol import v2
from webapp.protocol.schemas import DATATYPES

pytestmark = pytest.mark.unit

REQUESTS = v2.InferRequests(load_model(ROOT / "model.pkl"))

# Anything a JSON document may hold where a field is, the edges of the fields' ranges among it.
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.sampled_from(
        [LARGEST_INTEGER + 1, 5.0, 5.5, -0.0, "5", "FP64", "fp64", "proba", "", [], [{}]]
    ),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
    st.lists(st.integers(0, 3), max_size=2),
    st.just({}),
)
counts = st.one_of(st.integers(0, 10_000), st.sampled_from([LARGEST_INTEGER, LARGEST_INTEGER + 1]))


def mostly(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Fifteen times in sixteen `strategy`, else anything."""
    return st.integers(0, 15).flatmap(lambda draw: anything if draw == 15 else strategy)


def fields(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[Any]:
    """Objects with these fields, mostly each of its own type; one time in 32 with one missing,
    or one more, or something else altogether."""
    objects = st.fixed_dictionaries(
        {k: mostly(v) for k, v in required.items()},
        optional={k: mostly(v) for k, v in optional.items()},
    )
    with_more = st.builds(lambda o, v: {**o, "extra": v}, objects, anything)
    without = objects.flatmap(
        lambda o: st.sampled_from(sorted(o) or [None]).map(
            lambda k: {f: v for f, v in o.items() if f != k}
        )
    )
    return st.integers(0, 31).flatmap(
        lambda draw: [anything, with_more, without][draw - 29] if draw > 28 else objects
    )


tensors = fields(
    {
        "name": st.sampled_from(["input", "sepal_length"]),
        "shape": st.lists(mostly(counts), max_size=3),
        "datatype": st.sampled_from(DATATYPES),
    },
    {
        "parameters": fields({}, {"binary_data_size": counts}),
        "data": st.lists(st.floats(0.1, 9), max_size=8),
    },
)
outputs = fields(
    {"name": st.sampled_from(["predict", "predict_proba"])},
    {"parameters": fields({}, {"binary_data": st.booleans()})},
)
documents = fields(
    {"inputs": st.lists(tensors, min_size=1, max_size=3)},
    {
        "id": st.text(max_size=6),
        "parameters": fields({}, {"binary_data_output": st.booleans()}),
        "outputs": st.lists(outputs, min_size=1, max_size=3),
    },
)


def read(parse: Any, document: Any) -> Any:
    """The request read, as JSON text (5 and 5.0, 1 and true differ there), or the refusal."""
    try:
        return json.dumps(parse(document), sort_keys=True)
    except v2.TensorError as exc:
        return ("refused", str(exc))


def schema_alone(document: Any) -> Any:
    """What parse() gave before as_loaded: the schema's load, its refusal in one sentence."""
    try:
        return REQUESTS.schema.load(document)
    except v2.ValidationError as exc:
        raise v2.TensorError(v2._sentence(v2._flatten(exc.messages))) from None


TENSOR_HEADER = {
    "inputs": [
        {
            "name": "input",
            "shape": [10000, 4],
            "datatype": "FP64",
            "parameters": {"binary_data_size": 320000},
        }
    ],
    "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
}
SINGLE_ROW = {
    "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]
}


@settings(max_examples=1500, deadline=None)
@given(documents)
@example(TENSOR_HEADER)
@example(SINGLE_ROW)
@example({"inputs": [{"name": "input", "shape": [5.0], "datatype": "FP64"}]})
@example({"inputs": [{"name": "input", "shape": [2**53 + 1], "datatype": "FP64"}]})
@example({"inputs": [{"name": "input", "shape": [1], "datatype": "FP64"}], "outputs": []})
def test_read_as_the_schema_reads_it(document: Any) -> None:
    assert read(REQUESTS.parse, document) == read(schema_alone, document)


@pytest.mark.parametrize(
    "document", [TENSOR_HEADER, SINGLE_ROW], ids=["tensor-header", "single-row"]
)
def test_the_usual_requests_skip_the_schema(document: dict[str, Any]) -> None:
    assert REQUESTS.as_loaded(document)
