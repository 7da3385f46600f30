"""Strings given to a graph as numeric codes, so that every feature fits one matrix input, and
string labels taken from it as their classes' indices.

onnxruntime cannot bind a string tensor (IOBinding), and building one tensor per column costs
each request its share; a graph given one float matrix is bound once and called without
either (onnx_engine.OneRow). So a graph taking one [N, 1] input per feature gets a front: one
[N, features] input, split into its columns, and each string feature's column, a code, looked
up in that feature's table of strings (Gather), which gives the graph the very string again.

The engine turns a string into its index in the table, and a null into the index of "" (what
the graph took for a null before). A string outside the table gets the last index, a string
kept for that: exact only where the graph treats every such string alike. That holds

- for a feature whose strings the schemas close (its categories): no other string arrives;
- for a feature whose every string only passes through shape operations (Reshape, Concat,
  Where, ...) to membership tests (Equal with a constant, LabelEncoder, OneHotEncoder,
  CategoryMapper): each answers the same for any string that none of the graph's strings is.
  The table holds all of them, so a string outside it is none of them, and neither is the
  stand-in.

Any other use (a StringNormalizer, two inputs compared, a subgraph) leaves the graph as it is.

Labels go the other way: a classifier of string classes gives its labels as strings, which
onnxruntime cannot bind either. labels_as_indices() ends such a graph in a LabelEncoder that
gives each label's index among the classes, which the engine looks up again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..core.onnx_engine import MAX_CODES
from ..core.vocabulary import Feature

# Operations that only move, pick or join a string tensor's values.
PASSING = frozenset(
    {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand"}
    | {"Gather", "GatherElements", "Slice", "Split", "Concat", "Where"}
)
# ai.onnx.ml operations that only ask whether a string is one of their own.
MEMBERSHIP = frozenset({"LabelEncoder", "OneHotEncoder", "CategoryMapper"})
STAND_IN = "\x00another string"
SPLIT_AS_INPUT = 13  # the opset from which Split takes its sizes as an input


def strings_as_codes(
    graph: onnx.ModelProto, features: Sequence[Feature], number: int
) -> dict[str, list[str]]:
    """Give `graph` (one input per feature, numbers of the element type `number`) one matrix
    input "input" of that type, in place; each string feature's table, its last entry the
    stand-in for any string not listed. ValueError where a string feature cannot be coded
    exactly (the graph is then left unchanged)."""
    main = graph.graph
    if [i.name for i in main.input] != [f.name for f in features]:
        raise ValueError("the graph's inputs are not the features")
    types = [i.type.tensor_type.elem_type for i in main.input]
    wanted = [number if f.numeric else TensorProto.STRING for f in features]
    if types != wanted or not all(f.numeric or f.type == "category" for f in features):
        raise ValueError("inputs other than numbers of the matrix's type and categories")
    strings = _graph_strings(main)
    tables = {}
    for f in features:
        if f.numeric:
            continue
        if f.categories is None:
            _only_membership(main, f.name)
            listed = strings
        else:
            listed = set(f.categories)
        known = sorted(listed | {""})
        stand_in = STAND_IN
        while stand_in in listed:
            stand_in += "\x00"
        tables[f.name] = [*known, stand_in]
        if len(tables[f.name]) > MAX_CODES:
            raise ValueError(f"{f.name}: more strings than float32 holds codes for")
    names = _names(main)
    if "input" in names:
        raise ValueError('the graph already has a tensor named "input"')
    nodes = [*_front(graph, features, tables, names), *main.node]
    del main.node[:]
    main.node.extend(nodes)
    del main.input[:]
    main.input.append(helper.make_tensor_value_info("input", number, [None, len(features)]))
    return tables


def labels_as_indices(graph: onnx.ModelProto, classes: Sequence[Any]) -> bool:
    """Where the graph's first output is string labels and the classes are distinct strings,
    make it each label's index in `classes` (int64), in place, and say so: a LabelEncoder
    after it, which gives -1 for a string that is no class. Every class is one string, so the
    engine's lookup (onnx_engine.OnnxEngine) gives the very label again."""
    main = graph.graph
    label = main.output[0]
    if (
        label.type.tensor_type.elem_type != TensorProto.STRING
        or not all(type(c) is str for c in classes)
        or len(set(classes)) != len(classes)
    ):
        return False
    names = _names(main)
    index = "label_index"
    while index in names:
        index += "_"
    ml = next((o for o in graph.opset_import if o.domain == "ai.onnx.ml"), None)
    if ml is None:
        ml = graph.opset_import.add(domain="ai.onnx.ml", version=1)
    mapping: dict[str, Any] = (
        {"keys_strings": classes, "values_int64s": list(range(len(classes)))}
        if ml.version >= 2  # keys and values; version 1 gives a string's place in a list
        else {"classes_strings": classes}
    )
    encoder = helper.make_node(
        "LabelEncoder", [label.name], [index], domain="ai.onnx.ml", default_int64=-1, **mapping
    )
    main.node.append(encoder)
    label.name = index  # the output, its shape as it was
    label.type.tensor_type.elem_type = TensorProto.INT64
    return True


def _front(
    graph: onnx.ModelProto,
    features: Sequence[Feature],
    tables: dict[str, list[str]],
    names: set[str],
) -> list[onnx.NodeProto]:
    """The nodes that give each feature's former input name its column: split, and for a
    string feature its code cast to int64 and looked up in its table."""

    def fresh(hint: str) -> str:
        name, count = hint, 0
        while name in names:
            count += 1
            name = f"{hint}_{count}"
        names.add(name)
        return name

    main = graph.graph
    opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    parts = [f.name if f.name not in tables else fresh(f"{f.name}_code") for f in features]
    sizes = [1] * len(features)
    if opset >= SPLIT_AS_INPUT:
        size_name = fresh("column_sizes")
        main.initializer.append(
            helper.make_tensor(size_name, TensorProto.INT64, [len(sizes)], sizes)
        )
        nodes = [helper.make_node("Split", ["input", size_name], parts, fresh("columns"), axis=1)]
    else:
        nodes = [helper.make_node("Split", ["input"], parts, fresh("columns"), axis=1, split=sizes)]
    for f, code in zip(features, parts, strict=True):
        if f.name not in tables:
            continue
        table = fresh(f"{f.name}_strings")
        main.initializer.append(numpy_helper.from_array(np.array(tables[f.name], object), table))
        index = fresh(f"{f.name}_index")
        nodes.append(helper.make_node("Cast", [code], [index], fresh("Cast"), to=TensorProto.INT64))
        nodes.append(helper.make_node("Gather", [table, index], [f.name], fresh("Gather"), axis=0))
    return nodes


def _names(main: onnx.GraphProto) -> set[str]:
    """Every tensor and node name the graph uses (subgraphs' included)."""
    names = {i.name for i in main.input} | {o.name for o in main.output}
    names |= {t.name for t in main.initializer}
    for node in main.node:
        names |= {*node.input, *node.output, node.name}
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                names |= _names(attribute.g)
            for sub in attribute.graphs:
                names |= _names(sub)
    return names


def _graph_strings(main: onnx.GraphProto) -> set[str]:
    """Every string the graph holds: in its constants and its nodes' attributes."""
    found: set[str] = set()
    tensors = list(main.initializer)
    for node in main.node:
        for attribute in node.attribute:
            found |= {s.decode("utf-8", "replace") for s in attribute.strings}
            if attribute.type == onnx.AttributeProto.TENSOR:
                tensors.append(attribute.t)
    for tensor in tensors:
        if tensor.data_type == TensorProto.STRING:
            found |= {s.decode("utf-8", "replace") for s in tensor.string_data}
    return found


def _only_membership(main: onnx.GraphProto, name: str) -> None:
    """ValueError unless the string input `name` only reaches membership tests, through
    operations that pass strings on (see the module's docstring)."""
    if any(
        a.type == onnx.AttributeProto.GRAPH or len(a.graphs)
        for node in main.node
        for a in node.attribute
    ):
        raise ValueError("a subgraph, which may read any tensor")
    constants = {t.name for t in main.initializer}
    constants |= {n.output[0] for n in main.node if n.op_type == "Constant"}
    outputs = {o.name for o in main.output}
    carrying = {name}  # tensors that may hold the input's strings
    changed = True
    while changed:
        changed = False
        for node in main.node:
            held = [i for i in node.input if i in carrying]
            if not held:
                continue
            if node.domain == "ai.onnx.ml" and node.op_type in MEMBERSHIP:
                continue
            if node.domain in ("", "ai.onnx") and node.op_type == "Equal":
                other = [i for i in node.input if i not in carrying]
                if len(other) != 1 or other[0] not in constants:
                    raise ValueError(f"{name}: compared with something else than a constant")
                continue
            if node.domain not in ("", "ai.onnx") or node.op_type not in PASSING:
                raise ValueError(f"{name}: its strings reach {node.op_type}")
            new = set(node.output) - carrying
            if new:
                carrying |= new
                changed = True
    if carrying & outputs:
        raise ValueError(f"{name}: its strings are an output")
