"""Strings as codes in one matrix (webapp/package/codes.py): the rewritten graph, called by the
engine, answers as the graph it was written from, given the strings themselves, for any
string; a graph that may tell unlisted strings apart keeps its string inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from webapp.core.onnx_engine import OnnxEngine
from webapp.core.vocabulary import NULL_STRING, ArtifactError, Feature
from webapp.package import codes, compile

pytestmark = pytest.mark.unit

OPEN = [Feature("colour", type="category", nullable=True), Feature("size")]
WORDS = ["", "red", "green", "blue", "grey", "teal", "RED", "red ", codes.STAND_IN]


def strings(value: Any, shape: list[int], name: str) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=object).reshape(shape), name)


def doubles(value: Any, name: str) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=np.float64), name)


def imputed_and_tested() -> list[onnx.NodeProto]:
    """A most-frequent imputer's Where (a null's "" becomes "grey"), then a one-hot Equal of
    its choice with the palette, each hit weighed apart."""
    return [
        helper.make_node("Equal", ["colour", "empty"], ["missing"]),
        helper.make_node("Where", ["missing", "grey", "colour"], ["filled"]),
        helper.make_node("Equal", ["filled", "palette"], ["hits"]),
        helper.make_node("Cast", ["hits"], ["hit_values"], to=TensorProto.DOUBLE),
        helper.make_node("MatMul", ["hit_values", "hit_weights"], ["by_hits"]),
    ]


def membership_graph(extra: list[onnx.NodeProto] = (), output: str = "value") -> onnx.ModelProto:
    """An imputer's Where, then the three membership tests, each weighing its answer apart:
    a value per feature per string, as a ColumnTransformer's graph computes them."""
    nodes = [
        *imputed_and_tested(),
        helper.make_node(
            "LabelEncoder",
            ["filled"],
            ["labelled"],
            domain="ai.onnx.ml",
            keys_strings=["red", "blue", "teal"],
            values_floats=[1.0, 2.0, 3.0],
            default_float=-1.0,
        ),
        helper.make_node("Cast", ["labelled"], ["by_label"], to=TensorProto.DOUBLE),
        helper.make_node(
            "OneHotEncoder",
            ["filled"],
            ["encoded"],
            domain="ai.onnx.ml",
            cats_strings=["green", "grey"],
            zeros=1,
        ),
        helper.make_node("Reshape", ["encoded", "two"], ["flat"]),
        helper.make_node("Cast", ["flat"], ["hot_values"], to=TensorProto.DOUBLE),
        helper.make_node("MatMul", ["hot_values", "hot_weights"], ["by_hot"]),
        helper.make_node("Mul", ["by_label", "thousand"], ["label_part"]),
        helper.make_node("Add", ["by_hits", "label_part"], ["some"]),
        helper.make_node("Add", ["some", "by_hot"], ["more"]),
        helper.make_node("Add", ["more", "size"], ["value"]),
        *extra,
    ]
    constants = [
        strings([""], [1, 1], "empty"),
        strings(["grey"], [1, 1], "grey"),
        strings(["red", "green", "blue"], [1, 3], "palette"),
        doubles([[1.0], [10.0], [100.0]], "hit_weights"),
        numpy_helper.from_array(np.array([-1, 2], dtype=np.int64), "two"),
        doubles([[1e4], [1e5]], "hot_weights"),
        doubles(1000.0, "thousand"),
    ]
    return colour_and_size(nodes, constants, output)


def colour_and_size(
    nodes: list[onnx.NodeProto], constants: list[onnx.TensorProto], output: str = "value"
) -> onnx.ModelProto:
    """A graph of OPEN's two inputs, one per feature, giving one number a row."""
    outputs = [helper.make_tensor_value_info(output, TensorProto.DOUBLE, None)]
    inputs = [
        helper.make_tensor_value_info("colour", TensorProto.STRING, [None, 1]),
        helper.make_tensor_value_info("size", TensorProto.DOUBLE, [None, 1]),
    ]
    graph = helper.make_graph(nodes, "model", inputs, outputs, constants)
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 3)]
    )


def engine(graph: onnx.ModelProto, entry: dict[str, Any], features: list[Feature]) -> Any:
    return OnnxEngine(graph.SerializeToString(), entry, features, None, False)


def coded(features: list[Feature], graph: onnx.ModelProto) -> Any:
    tables = codes.strings_as_codes(graph, features, TensorProto.DOUBLE)
    return engine(graph, {"inputs": "matrix", "dtype": "float64", "codes": tables}, features)


PLAIN = engine(membership_graph(), {"inputs": "columns", "dtype": "float64"}, OPEN)
CODED = coded(OPEN, membership_graph())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.sampled_from(WORDS), st.text(max_size=8)), min_size=1, max_size=6
    )
)
def test_any_string_is_answered_as_the_graph_given_it_answers(words: list[str | None]) -> None:
    """The strings the graph holds, others (the stand-in's own text too), nulls, one row at a
    time (the bound call) and as a batch."""
    sizes = [float(i) / 8 for i in range(len(words))]
    assert CODED.predict([words, sizes]) == PLAIN.predict([words, sizes])
    for word, size in zip(words, sizes, strict=True):
        assert CODED.predict([[word], [size]]) == PLAIN.predict([[word], [size]])


def test_the_answers_tell_the_strings_apart() -> None:
    """The graph's answers differ between its strings: the comparison above could fail."""
    answers = PLAIN.predict([WORDS, [0.0] * len(WORDS)])
    assert len(set(answers)) >= 6 and CODED.one_row is not None


def null_as_its_own_string() -> onnx.ModelProto:
    """membership_graph as written to be given a null as NULL_STRING (compile.py's codes):
    its imputer fills that, and "" is a string like any other."""
    graph = membership_graph()
    (empty,) = (c for c in graph.graph.initializer if c.name == "empty")
    empty.CopyFrom(strings([NULL_STRING], [1, 1], "empty"))
    return graph


NULL_GIVEN = null_as_its_own_string()
CODED_NULL = engine(
    NULL_GIVEN,
    {
        "inputs": "matrix",
        "dtype": "float64",
        "codes": codes.strings_as_codes(
            NULL_GIVEN, OPEN, TensorProto.DOUBLE, {"colour": NULL_STRING}
        ),
    },
    OPEN,
)
PLAIN_NULL = engine(null_as_its_own_string(), {"inputs": "columns", "dtype": "float64"}, OPEN)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.sampled_from([*WORDS, NULL_STRING]), st.text(max_size=8)),
        min_size=1,
        max_size=6,
    )
)
def test_a_null_is_coded_apart_from_every_string_a_client_sends(words: list[str | None]) -> None:
    """Where the graph was written to be given a null as NULL_STRING: a null answers as that
    string given to the graph, and a client's NULL_STRING, or "", as a string the graph does
    not hold, or as "" itself: never as a null."""
    sizes = [float(i) / 8 for i in range(len(words))]
    given = ["\x01 unheld" if w == NULL_STRING else NULL_STRING if w is None else w for w in words]
    assert CODED_NULL.predict([words, sizes]) == PLAIN_NULL.predict([given, sizes])
    assert PLAIN_NULL.predict([[NULL_STRING], [0.0]]) != PLAIN_NULL.predict([[""], [0.0]])


def test_a_closed_feature_s_null_is_coded_apart_too() -> None:
    """Its table lists its categories alone, and the string a null is given as."""
    closed = [
        Feature("colour", type="category", nullable=True, categories=("red", "grey")),
        OPEN[1],
    ]
    graph = null_as_its_own_string()
    tables = codes.strings_as_codes(graph, closed, TensorProto.DOUBLE, {"colour": NULL_STRING})
    coded = engine(graph, {"inputs": "matrix", "dtype": "float64", "codes": tables}, closed)
    plain = engine(null_as_its_own_string(), {"inputs": "columns", "dtype": "float64"}, closed)
    words, sizes = ["red", "grey", None], [0.5] * 3
    assert coded.predict([words, sizes]) == plain.predict([["red", "grey", NULL_STRING], sizes])


def test_a_closed_feature_is_coded_whatever_reads_its_strings() -> None:
    """Only its categories arrive (the schemas refuse the rest), so the graph may compare its
    strings with one another: each category, and a null, answered as before."""
    graph = membership_graph([helper.make_node("Equal", ["colour", "filled"], ["same"])])
    closed = [
        Feature("colour", type="category", nullable=True, categories=("red", "teal")),
        OPEN[1],
    ]
    plain = engine(graph, {"inputs": "columns", "dtype": "float64"}, closed)
    words = ["red", "teal", None]
    assert coded(closed, graph).predict([words, [1.0] * 3]) == plain.predict([words, [1.0] * 3])


def reader_of_the_strings(graph: onnx.ModelProto) -> None:
    lower = helper.make_node(
        "StringNormalizer", ["colour"], ["lowered"], case_change_action="LOWER"
    )
    graph.graph.node.append(lower)
    graph.graph.node.append(helper.make_node("Equal", ["lowered", "empty"], ["unused"]))


def two_inputs_compared(graph: onnx.ModelProto) -> None:
    graph.graph.node.append(helper.make_node("Equal", ["colour", "filled"], ["same"]))


def strings_as_an_output(graph: onnx.ModelProto) -> None:
    graph.graph.output.append(helper.make_tensor_value_info("filled", TensorProto.STRING, None))


def a_subgraph(graph: onnx.ModelProto) -> None:
    body = helper.make_graph(
        [helper.make_node("Identity", ["size"], ["inside"])],
        "body",
        [],
        [helper.make_tensor_value_info("inside", TensorProto.DOUBLE, None)],
    )
    graph.graph.node.append(
        helper.make_node("If", ["missing"], ["chosen"], then_branch=body, else_branch=body)
    )


@pytest.mark.parametrize(
    "change", [reader_of_the_strings, two_inputs_compared, strings_as_an_output, a_subgraph]
)
def test_an_open_feature_read_otherwise_keeps_its_strings(change: Any) -> None:
    """Two strings the graph does not hold may answer differently there: no codes, and the
    graph untouched (compile.py then gives it one input per feature)."""
    graph = membership_graph()
    change(graph)
    before = graph.SerializeToString()
    with pytest.raises(ValueError):
        codes.strings_as_codes(graph, OPEN, TensorProto.DOUBLE)
    assert graph.SerializeToString() == before


def read_by_tests_only() -> onnx.ModelProto:
    """A feature read only by membership tests: an Equal with constant strings, and a
    LabelEncoder of strings into numbers."""
    nodes = [
        helper.make_node("Equal", ["colour", "palette"], ["hits"]),
        helper.make_node("Cast", ["hits"], ["hit_values"], to=TensorProto.DOUBLE),
        helper.make_node("MatMul", ["hit_values", "hit_weights"], ["by_hits"]),
        helper.make_node(
            "LabelEncoder",
            ["colour"],
            ["labelled"],
            domain="ai.onnx.ml",
            keys_strings=["", "red", "teal"],
            values_floats=[0.5, 2.0, 3.0],
            default_float=-1.0,
        ),
        helper.make_node("Cast", ["labelled"], ["by_label"], to=TensorProto.DOUBLE),
        helper.make_node("Mul", ["by_label", "thousand"], ["label_part"]),
        helper.make_node("Add", ["by_hits", "label_part"], ["some"]),
        helper.make_node("Add", ["some", "size"], ["value"]),
    ]
    constants = [
        strings(["red", "green", "nowhere"], [1, 3], "palette"),
        doubles([[1.0], [10.0], [100.0]], "hit_weights"),
        doubles(1000.0, "thousand"),
    ]
    return colour_and_size(nodes, constants)


def answering_as_before(build: Any, colour: Feature, distinct: int) -> onnx.ModelProto:
    """build()'s graph coded for [colour, size] answers every string (a closed feature's
    categories), the stand-in's text and a null as the graph itself, `distinct` answers or
    more among them; the coded graph, with what nothing reads dropped."""
    features = [colour, OPEN[1]]
    plain = engine(build(), {"inputs": "columns", "dtype": "float64"}, features)
    graph = build()
    answering = coded(features, graph)
    words = [*(colour.categories or WORDS), None]
    sizes = [0.0] * len(words)
    assert answering.predict([words, sizes]) == plain.predict([words, sizes])
    assert len(set(plain.predict([words, sizes]))) >= distinct
    compile._outputs_read(graph, 1)
    return graph


@pytest.mark.parametrize(
    "colour",
    [OPEN[0], Feature("colour", type="category", nullable=True, categories=("red", "teal"))],
    ids=["open", "closed"],
)
def test_membership_tests_read_the_codes(colour: Feature) -> None:
    """The Equal compares codes and the LabelEncoder became a lookup of numbers by code: no
    string is looked up any more, and every string (a closed feature's categories), the
    stand-in's text and a null are answered as before."""
    graph = answering_as_before(read_by_tests_only, colour, distinct=3)
    assert not [t for t in graph.graph.initializer if t.data_type == TensorProto.STRING]
    assert "LabelEncoder" not in {node.op_type for node in graph.graph.node}


def imputed_then_tested() -> onnx.ModelProto:
    """A most-frequent imputer's Where (a null's "" becomes "grey"), read only by a one-hot
    Equal with constant strings: skl2onnx's SimpleImputer then OneHotEncoder."""
    nodes = [*imputed_and_tested(), helper.make_node("Add", ["by_hits", "size"], ["value"])]
    constants = [
        strings([""], [1, 1], "empty"),
        strings(["grey"], [1, 1], "grey"),
        strings(["red", "grey", "nowhere"], [1, 3], "palette"),
        doubles([[1.0], [10.0], [100.0]], "hit_weights"),
    ]
    return colour_and_size(nodes, constants)


@pytest.mark.parametrize(
    ("colour", "made_on_codes"),
    [
        (OPEN[0], True),
        (Feature("colour", type="category", nullable=True, categories=("red", "grey")), True),
        (Feature("colour", type="category", nullable=True, categories=("red", "teal")), False),
    ],
    ids=["open", "closed", "closed-without-the-imputed"],
)
def test_an_imputers_choice_read_by_tests_is_made_on_the_codes(
    colour: Feature, made_on_codes: bool
) -> None:
    """The Where chooses between codes, its tests compare codes: no string is looked up any
    more, and every string, the stand-in's text and a null are answered as before. Where the
    imputed string has no code (not among the categories: as "nowhere", it would be the -1
    of no code), the choice stays one of strings."""
    graph = answering_as_before(imputed_then_tested, colour, distinct=2)
    left = [t for t in graph.graph.initializer if t.data_type == TensorProto.STRING]
    assert not left if made_on_codes else left


def imputed_then_passed_on() -> onnx.ModelProto:
    """imputed_then_tested, its choice also passed on (an Identity) to another test."""
    graph = imputed_then_tested()
    graph.graph.node.extend(
        [
            helper.make_node("Identity", ["filled"], ["passed"]),
            helper.make_node("Equal", ["passed", "empty"], ["still_empty"]),
            helper.make_node("Cast", ["still_empty"], ["empty_value"], to=TensorProto.DOUBLE),
            helper.make_node("Add", ["value", "empty_value"], ["total"]),
        ]
    )
    graph.graph.output[0].name = "total"
    return graph


@pytest.mark.parametrize(
    "build", [membership_graph, imputed_then_passed_on], ids=["encoders", "passed-on"]
)
def test_an_imputers_choice_read_otherwise_keeps_its_strings(build: Any) -> None:
    """A Where read by more than Equals with constant strings (membership_graph's by a
    LabelEncoder and a OneHotEncoder; one passed on by an Identity) stays a choice of strings,
    and answers as before."""
    graph = build()
    answering = coded(OPEN, graph)
    (where,) = [node for node in graph.graph.node if node.op_type == "Where"]
    assert list(where.input) == ["missing", "grey", "colour"]
    plain = engine(build(), {"inputs": "columns", "dtype": "float64"}, OPEN)
    words = [*WORDS, None]
    assert answering.predict([words, [0.0] * len(words)]) == plain.predict(
        [words, [0.0] * len(words)]
    )


def test_the_stand_in_is_no_string_the_graph_holds() -> None:
    graph = membership_graph()
    graph.graph.initializer.append(strings([codes.STAND_IN], [1], "held"))
    table = codes.strings_as_codes(graph, OPEN, TensorProto.DOUBLE)["colour"]
    assert table[-1] not in table[:-1] and codes.STAND_IN in table[:-1]


@pytest.mark.parametrize(
    "tables",
    [
        None,
        {},
        {"colour": ["", "red", "x"], "size": ["", "x"]},
        {"colour": "red"},
        {"colour": ["red", "x"]},
        {"colour": ["", "red", "red", "x"]},
        {"colour": ["", 1, "x"]},
        {"colour": [""]},
    ],
    ids=["none", "empty", "a-number-coded", "not-a-list", "no-null", "twice", "a-number", "short"],
)
def test_codes_that_are_no_table_of_strings_are_refused(tables: Any) -> None:
    graph = membership_graph()
    codes.strings_as_codes(graph, OPEN, TensorProto.DOUBLE)
    with pytest.raises(ArtifactError, match="codes"):
        engine(graph, {"inputs": "matrix", "dtype": "float64", "codes": tables}, OPEN)


CLASSES = ["setosa", "versicolor", "virginica"]


def string_labels_graph(ml_opset: int, table: list[str] = CLASSES) -> onnx.ModelProto:
    """A classifier's ending as skl2onnx writes it: the greatest score's class, picked from
    a constant `table` of the classes, as a string."""
    nodes = [
        helper.make_node("ArgMax", ["input"], ["best"], axis=1, keepdims=1),
        helper.make_node(
            "ArrayFeatureExtractor", ["classes", "best"], ["picked"], domain="ai.onnx.ml"
        ),
        helper.make_node("Reshape", ["picked", "flat"], ["label"]),
        helper.make_node("Identity", ["input"], ["probabilities"]),
    ]
    constants = [
        strings(table, [3], "classes"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat"),
    ]
    graph = helper.make_graph(
        nodes,
        "model",
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, [None, 3])],
        [
            helper.make_tensor_value_info("label", TensorProto.STRING, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, [None, 3]),
        ],
        constants,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", ml_opset)],
    )


SCORES = [Feature(name) for name in ("a", "b", "c")]


def classifier(graph: onnx.ModelProto, **entry: Any) -> OnnxEngine:
    matrix = {"inputs": "matrix", "dtype": "float64", **entry}
    return OnnxEngine(graph.SerializeToString(), matrix, SCORES, CLASSES, True)


@pytest.mark.parametrize(
    ("ml_opset", "table", "picking"),
    [
        (1, CLASSES, False),  # picked from the classes: the index is the output
        (1, CLASSES[::-1], True),  # from other strings: a LabelEncoder, whose attributes
        (3, CLASSES[::-1], True),  # differ from version 2
    ],
    ids=["picked", "encoded-1", "encoded-3"],
)
def test_string_labels_as_indices_are_the_same_labels(
    ml_opset: int, table: list[str], picking: bool
) -> None:
    """Each class's index, looked up by the engine: the labels the strings were, a batch and
    one row at a time; a single row's labels now come from the bound call; and where the
    labels were picked from the classes, the picking is no longer computed."""
    plain = classifier(string_labels_graph(ml_opset, table))
    graph = string_labels_graph(ml_opset, table)
    assert codes.labels_as_indices(graph, CLASSES)
    compile._outputs_read(graph, 2)
    indexed = classifier(graph, labels="indices")
    rows = np.random.default_rng(0).uniform(-1, 1, (300, 3))
    assert indexed.predict(rows) == plain.predict(rows)
    assert set(plain.predict(rows)) == set(CLASSES)
    for row in rows[:30]:
        assert indexed.predict(row.reshape(1, -1)) == plain.predict(row.reshape(1, -1))
    assert indexed.one_row is not None and indexed.label_output[0] in indexed.one_row.bindings
    assert plain.one_row is not None and "label" not in plain.one_row.bindings
    kinds = {node.op_type for node in graph.graph.node}
    assert ("ArrayFeatureExtractor" in kinds) == picking


def test_labels_that_are_no_strings_stay() -> None:
    graph = string_labels_graph(1)
    before = graph.SerializeToString()
    assert not codes.labels_as_indices(graph, [0, 1, 2])
    graph.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64
    assert not codes.labels_as_indices(graph, CLASSES)
    graph.graph.output[0].type.tensor_type.elem_type = TensorProto.STRING
    assert graph.SerializeToString() == before


@pytest.mark.parametrize(
    ("labels", "classes"),
    [("strings", CLASSES), (None, CLASSES), ("", CLASSES), ("indices", None)],
    ids=["strings", "null", "empty", "no-classes"],
)
def test_labels_given_otherwise_are_refused(labels: Any, classes: Any) -> None:
    graph = string_labels_graph(1)
    codes.labels_as_indices(graph, CLASSES)
    entry = {"inputs": "matrix", "dtype": "float64", "labels": labels}
    with pytest.raises(ArtifactError, match="labels"):
        OnnxEngine(graph.SerializeToString(), entry, SCORES, classes, classes is not None)
