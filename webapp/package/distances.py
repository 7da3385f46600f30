"""Nearest neighbours' distances computed at once, not by a Scan over the training rows.

skl2onnx computes nearest neighbours' squared euclidean distances with a Scan whose body
subtracts one training row from every input row and sums the squares: a loop of one step per
training row, about 600 µs for one row against 400 training rows.
The same Sub and ReduceSumSquare over an [N, M, F] broadcast give each distance from the same
operations on the same values, in one call. scikit-learn's trees compute them that way too
(each difference squared and summed), unlike onnxruntime's CDist (|a|² + |b|² - 2a·b), which
answered otherwise for large values.

The broadcast holds N x M x F numbers, so the engine calls the graph on at most
`rows_per_call` rows at a time (the manifest's entry).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

CALL_BYTES = 16 * 2**20  # the broadcast's temporaries per call, at most (but one row always)
AXES_AS_INPUTS = 18  # the opset from which Unsqueeze and ReduceSumSquare take axes as inputs


def rows_per_call(row_bytes: int) -> int:
    """How many rows one call may take when each needs `row_bytes` of temporaries."""
    return max(1, CALL_BYTES // row_bytes)


def without_scans(graph: onnx.ModelProto) -> int:
    """Replace, in place, each Scan that computes squared euclidean distances (and the
    Transpose after it) by the broadcast; the bytes of temporaries a row then needs, or 0 if
    there was none. Any other Scan is left as it is."""
    main = graph.graph
    opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    if opset < AXES_AS_INPUTS:  # skl2onnx writes newer ones
        return 0
    constants = {t.name: t for t in main.initializer}
    row_bytes = 0
    for scan in [n for n in main.node if n.op_type == "Scan" and n.domain == ""]:
        found = _distances(main, scan, constants)
        if found is None:
            continue
        transpose, training = found
        rows, width = training.shape
        distances = transpose.output[0]
        position = list(main.node).index(scan)
        main.node.remove(scan)
        main.node.remove(transpose)
        prefix = f"{scan.name}_broadcast"
        nodes = [
            _along("Unsqueeze", [scan.input[0]], f"{prefix}_rows", 1, main),
            helper.make_node(
                "Sub", [f"{prefix}_rows", scan.input[1]], [f"{prefix}_diff"], f"{prefix}_sub"
            ),
            _along("ReduceSumSquare", [f"{prefix}_diff"], distances, 2, main, keepdims=0),
        ]
        for offset, node in enumerate(nodes):
            main.node.insert(position + offset, node)
        row_bytes += rows * width * training.dtype.itemsize
    return row_bytes


def broadcast_bytes(graph: onnx.ModelProto) -> int:
    """The bytes of temporaries a row needs in the graph's [N, M, F] broadcasts: each Sub of
    rows unsqueezed at axis 1 and M training rows, [M, F] or [1, M, F] (those without_scans
    writes, converters.knn_by_distance's, and the rbf kernel's of an SVC or SVR)."""
    main = graph.graph
    constants = {t.name: t for t in main.initializer}
    unsqueezed = {
        n.output[0]
        for n in main.node
        if n.op_type == "Unsqueeze"
        and len(n.input) == 2
        and n.input[1] in constants
        and [int(a) for a in np.ravel(numpy_helper.to_array(constants[n.input[1]]))] == [1]
    }
    total = 0
    for node in main.node:
        if node.op_type != "Sub" or node.input[0] not in unsqueezed:
            continue
        if node.input[1] in constants:
            training = numpy_helper.to_array(constants[node.input[1]])
            rows = training.ndim == 2 or (training.ndim == 3 and training.shape[0] == 1)
            if rows and training.dtype.kind == "f":
                total += training.size * training.dtype.itemsize
    return total


def _distances(
    main: onnx.GraphProto, scan: onnx.NodeProto, constants: dict[str, onnx.TensorProto]
) -> tuple[onnx.NodeProto, np.ndarray] | None:
    """The Transpose after `scan` and the training rows it scans, if `scan` is skl2onnx's
    squared euclidean distances, exactly: else None."""
    attributes = {a.name: a for a in scan.attribute}
    if set(attributes) != {"body", "num_scan_inputs"} or attributes["num_scan_inputs"].i != 1:
        return None
    if len(scan.input) != 2 or len(scan.output) != 2 or scan.input[1] not in constants:
        return None
    body = attributes["body"].g
    if [i.name for i in body.input] != ["next_in", "next"] or len(body.output) != 2:
        return None
    state_out, scan_out = (o.name for o in body.output)
    body_constants = {t.name: numpy_helper.to_array(t) for t in body.initializer}
    ops = {n.op_type: n for n in body.node}
    if len(body.node) != 4 or sorted(ops) != ["Identity", "ReduceSumSquare", "Sub"]:
        return None
    identities = [n for n in body.node if n.op_type == "Identity"]
    sub, reduce = ops["Sub"], ops["ReduceSumSquare"]
    passes = [n for n in identities if list(n.input) == ["next_in"]]
    ends = [n for n in identities if list(n.input) == list(reduce.output)]
    if len(passes) != 1 or len(ends) != 1 or list(passes[0].output) != [state_out]:
        return None
    if list(ends[0].output) != [scan_out] or list(sub.input) != ["next_in", "next"]:
        return None
    if not _reduces_axis_one(reduce, body_constants, sub.output[0]):
        return None
    users = [n for n in main.node if set(n.input) & set(scan.output)]
    outputs = {o.name for o in main.output}
    if len(users) != 1 or outputs & set(scan.output):
        return None
    (transpose,) = users
    perm = [list(a.ints) for a in transpose.attribute if a.name == "perm"]
    if transpose.op_type != "Transpose" or list(transpose.input) != [scan.output[1]]:
        return None
    if perm != [[1, 0]]:
        return None
    training = numpy_helper.to_array(constants[scan.input[1]])
    if training.ndim != 2 or training.dtype.kind != "f":
        return None
    return transpose, training


def _reduces_axis_one(reduce: onnx.NodeProto, constants: dict[str, Any], given: str) -> bool:
    """Whether the node sums the squares of `given` along axis 1 (an input, as from opset 18)
    into a vector."""
    attributes = {a.name: a.i for a in reduce.attribute}
    if attributes != {"keepdims": 0} or list(reduce.input[:1]) != [given]:
        return False
    if len(reduce.input) != 2 or reduce.input[1] not in constants:
        return False
    return [int(a) for a in np.ravel(constants[reduce.input[1]])] == [1]


def _along(
    op: str, inputs: list[str], output: str, axis: int, main: onnx.GraphProto, **attributes: Any
) -> onnx.NodeProto:
    """`op` along `axis`, given as an input (as from opset 18 on)."""
    name = f"{output}_{op}"
    main.initializer.append(numpy_helper.from_array(np.array([axis], np.int64), f"{name}_axes"))
    return helper.make_node(op, [*inputs, f"{name}_axes"], [output], name, **attributes)
