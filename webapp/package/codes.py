"""Strings given to a graph as numeric codes, so that every feature fits one matrix input, and
string labels taken from it as their classes' indices.

onnxruntime cannot bind a string tensor (IOBinding), and building one tensor per column costs
each request its share; a graph given one float matrix is bound once and called without
either (onnx_engine.OneRow). So a graph taking one [N, 1] input per feature gets a front: one
[N, features] input, split into its columns, and each string feature's column, a code, looked
up in that feature's table of strings (Gather), which gives the graph the very string again.

The engine turns a string into its index in the table, and a null into the index of
NULL_STRING where the table holds it (the graph was written to be given a null as that, told
apart from a client's ""), else of "". A string outside the table gets the last index, a
string kept for that: exact only where the graph treats every such string alike. That holds

- for a feature whose strings the schemas close (its categories): no other string arrives;
- for a feature whose every string only passes through shape operations (Reshape, Concat,
  Where, ...) to membership tests (Equal with a constant, LabelEncoder, OneHotEncoder,
  CategoryMapper): each answers the same for any string that none of the graph's strings is.
  The table holds all of them, so a string outside it is none of them, and neither is the
  stand-in.

Any other use (a StringNormalizer, two inputs compared, a subgraph) leaves the graph as it is.
A membership test that reads the feature itself is then made on the code, with no string looked
up for it: onnxruntime's cost per call grows with the nodes it runs.

Labels go the other way: a classifier of string classes gives its labels as strings, which
onnxruntime cannot bind either. labels_as_indices() makes such a graph give each label's index
among the classes instead (the index it picked the label by, or a LabelEncoder's), which the
engine looks up again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
# Operations that only reshape labels, and those that pick them from the classes by an index.
RESHAPING = frozenset({"Identity", "Reshape", "Flatten", "Squeeze"})
PICKING = frozenset(
    {("", "Gather"), ("ai.onnx", "Gather"), ("ai.onnx.ml", "ArrayFeatureExtractor")}
)
STAND_IN = "\x00another string"
SPLIT_AS_INPUT = 13  # the opset from which Split takes its sizes as an input


def strings_as_codes(
    graph: onnx.ModelProto,
    features: Sequence[Feature],
    number: int,
    nulls: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """Give `graph` (one input per feature, numbers of the element type `number`) one matrix
    input "input" of that type, in place; each string feature's table, its last entry the
    stand-in for any string not listed. `nulls`: the string each feature's null was to be
    given to the graph as, where it is not "" (core.vocabulary.NULL_STRING). ValueError
    where a string feature cannot be coded exactly (the graph is then left unchanged)."""
    nulls = nulls or {}
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
        known = sorted(listed | {"", nulls.get(f.name, "")})
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
    _tests_on_codes(graph, tables, number)
    return tables


def _tests_on_codes(graph: onnx.ModelProto, tables: dict[str, list[str]], number: int) -> None:
    """A coded feature's membership tests made on its codes, the strings no longer looked up
    for them (compile._outputs_read drops a lookup nothing reads): an Equal with constant
    strings compares the code with theirs (-1 for a string not in the table: no code is);
    a LabelEncoder of strings into numbers becomes a Gather from its values for each string
    of the table, which onnxruntime's own LabelEncoder gives here. An imputer's Where between
    the feature and a constant string of the table, read only by such Equals, chooses between
    their codes instead, and its Equals compare codes too. The same answer for every code, as
    each code stands for one string of the table."""
    main = graph.graph
    made_by = {output: node for node in main.node for output in node.output}
    constants = {t.name: t for t in main.initializer}
    names = _names(main)
    dtype = helper.tensor_dtype_to_np_dtype(number)

    def as_codes(strings_name: str, places: dict[str, float]) -> str | None:
        """A constant tensor of strings as their codes' constant (a new one), or None."""
        tensor = constants.get(strings_name)
        if tensor is None or tensor.data_type != TensorProto.STRING:
            return None
        strings = numpy_helper.to_array(tensor)
        compared = np.array([places.get(s, -1.0) for s in strings.ravel().tolist()])
        codes = _fresh(names, f"{strings_name}_codes")
        main.initializer.append(
            numpy_helper.from_array(compared.astype(dtype).reshape(strings.shape), codes)
        )
        return codes

    for name, table in tables.items():
        index = made_by[name].input[1]  # the front's Gather of the string, by the code
        places = {string: float(place) for place, string in enumerate(table)}
        # strings, the codes they are read as, their int64 index where there is one
        pending: list[tuple[str, str, str | None]] = [(name, made_by[index].input[0], index)]
        while pending:
            strings, code, by = pending.pop()
            for node in main.node:
                if list(node.input).count(strings) != 1:
                    continue
                if node.domain in ("", "ai.onnx") and node.op_type == "Equal":
                    (other,) = (i for i in node.input if i != strings)
                    codes = as_codes(other, places)
                    if codes is not None:
                        node.input[:] = [code if i == strings else codes for i in node.input]
                elif node.domain == "ai.onnx.ml" and node.op_type == "LabelEncoder" and by:
                    values = _encoded_strings(graph, node, table)
                    if values is None:
                        continue
                    looked_up = _fresh(names, f"{node.output[0]}_values")
                    main.initializer.append(numpy_helper.from_array(values, looked_up))
                    node.op_type, node.domain = "Gather", ""
                    del node.attribute[:]
                    node.attribute.append(helper.make_attribute("axis", 0))
                    node.input[:] = [looked_up, by]
                elif _chooses_a_constant_of(main, node, strings, places, constants):
                    constant = node.input[1] if node.input[2] == strings else node.input[2]
                    codes = as_codes(constant, places)
                    node.input[:] = [
                        code if i == strings else codes if i == constant else i for i in node.input
                    ]
                    pending.append((node.output[0], node.output[0], None))


_SUBGRAPHS = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


def _chooses_a_constant_of(
    main: onnx.GraphProto,
    node: onnx.NodeProto,
    strings: str,
    places: dict[str, float],
    constants: dict[str, onnx.TensorProto],
) -> bool:
    """Whether `node` is a Where between `strings` and constant strings of the table, whose
    choice only Equals with constant strings read (nothing that needs the text itself)."""
    if node.domain not in ("", "ai.onnx") or node.op_type != "Where" or node.input[0] == strings:
        return False
    constant = constants.get(node.input[1] if node.input[2] == strings else node.input[2])
    if constant is None or constant.data_type != TensorProto.STRING:
        return False
    if not all(s in places for s in numpy_helper.to_array(constant).ravel().tolist()):
        return False
    chosen = node.output[0]
    if chosen in {o.name for o in main.output} or chosen in {v.name for v in main.value_info}:
        return False
    if any(a.type in _SUBGRAPHS for n in main.node for a in n.attribute):
        return False  # a subgraph may read it unseen
    readers = [n for n in main.node if chosen in n.input]
    return all(
        reader.domain in ("", "ai.onnx")
        and reader.op_type == "Equal"
        and list(reader.input).count(chosen) == 1
        and all(
            i == chosen or (i in constants and constants[i].data_type == TensorProto.STRING)
            for i in reader.input
        )
        for reader in readers
    )


def _encoded_strings(
    graph: onnx.ModelProto, encoder: onnx.NodeProto, table: list[str]
) -> np.ndarray | None:
    """What the LabelEncoder `encoder` gives for each string of `table`, from onnxruntime
    itself; None where it gives strings."""
    import onnxruntime

    node = helper.make_node("LabelEncoder", ["strings"], ["values"], domain="ai.onnx.ml")
    node.attribute.extend(encoder.attribute)
    probe = helper.make_model(
        helper.make_graph(
            [node],
            "table",
            [helper.make_tensor_value_info("strings", TensorProto.STRING, [len(table)])],
            [helper.make_value_info("values", onnx.TypeProto())],
        ),
        opset_imports=list(graph.opset_import),
        ir_version=graph.ir_version,
    )
    inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=True)
    if inferred.graph.output[0].type.tensor_type.elem_type == TensorProto.STRING:
        return None
    session = onnxruntime.InferenceSession(
        inferred.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (values,) = session.run(None, {"strings": np.array(table, dtype=object)})
    return np.asarray(values)


def _fresh(names: set[str], hint: str) -> str:
    """A tensor name the graph does not use yet, now taken."""
    name, count = hint, 0
    while name in names:
        count += 1
        name = f"{hint}_{count}"
    names.add(name)
    return name


def labels_as_indices(graph: onnx.ModelProto, classes: Sequence[Any]) -> bool:
    """Where the graph's first output is string labels and the classes are distinct strings,
    make it each label's index in `classes` (int64), in place, and say so. Every class is one
    string, so the engine's lookup (onnx_engine.OnnxEngine) gives the very label again.

    Where the labels are picked from a constant of the classes by an index (a Gather or an
    ArrayFeatureExtractor, then only reshaped), that index is the output, and the picking
    is left for compile._outputs_read to drop; else a LabelEncoder after the labels gives
    each one's place among the classes (-1 for a string that is no class)."""
    main = graph.graph
    label = main.output[0]
    if (
        label.type.tensor_type.elem_type != TensorProto.STRING
        or not all(type(c) is str for c in classes)
        or len(set(classes)) != len(classes)
    ):
        return False
    index = _index_into(main, list(classes))
    if index is None:
        index = _encoded(graph, label.name, list(classes))
    label.name = index
    label.type.tensor_type.elem_type = TensorProto.INT64
    label.type.tensor_type.ClearField("shape")  # the engine takes labels flat, [N] or [N, 1]
    return True


def _index_into(main: onnx.GraphProto, classes: list[str]) -> str | None:
    """The tensor of indices the first output's labels are picked from `classes` by, if they
    are: the output reshaped at most, from a Gather (axis 0) or an ArrayFeatureExtractor of
    a constant holding exactly the classes, in their order."""
    made_by = {output: node for node in main.node for output in node.output}
    node = made_by.get(main.output[0].name)
    while node is not None and node.domain in ("", "ai.onnx") and node.op_type in RESHAPING:
        node = made_by.get(node.input[0])
    if node is None or (node.domain, node.op_type) not in PICKING:
        return None
    if any(a.name == "axis" and a.i != 0 for a in node.attribute):
        return None
    table = next((t for t in main.initializer if t.name == node.input[0]), None)
    if table is None or len(table.dims) != 1:
        return None
    if numpy_helper.to_array(table).tolist() != classes or node.input[1] not in made_by:
        return None
    return str(node.input[1])


def _encoded(graph: onnx.ModelProto, labels: str, classes: list[str]) -> str:
    """A LabelEncoder after the string tensor `labels`: each one's index in `classes`."""
    index = _fresh(_names(graph.graph), "label_index")
    ml = next((o for o in graph.opset_import if o.domain == "ai.onnx.ml"), None)
    if ml is None:
        ml = graph.opset_import.add(domain="ai.onnx.ml", version=1)
    mapping: dict[str, Any] = (
        {"keys_strings": classes, "values_int64s": list(range(len(classes)))}
        if ml.version >= 2  # keys and values; version 1 gives a string's place in a list
        else {"classes_strings": classes}
    )
    graph.graph.node.append(
        helper.make_node(
            "LabelEncoder", [labels], [index], domain="ai.onnx.ml", default_int64=-1, **mapping
        )
    )
    return index


def _front(
    graph: onnx.ModelProto,
    features: Sequence[Feature],
    tables: dict[str, list[str]],
    names: set[str],
) -> list[onnx.NodeProto]:
    """The nodes that give each feature's former input name its column: split, and for a
    string feature its code cast to int64 and looked up in its table."""

    def fresh(hint: str) -> str:
        return _fresh(names, hint)

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
