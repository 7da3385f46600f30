"""Open Inference Protocol V2 (KServe, Triton, MLServer): tensors in, predictions as tensors out.

An infer request's input tensors become the instances of a /predict batch, so that every value
then passes the same checks (accept.py, schemas.py); the predictions become output tensors.
The one [N, n_features] matrix, sent in binary, stays the array its bytes are: it is checked as
one (instances.Instances.tensor), and its values become Python objects only to name what is
wrong with them. What the protocol itself refuses raises TensorError, a 400 whose message names
the input or field. No Flask here: webapp/http/open_inference.py does the HTTP.
docs/protocols.md tells all.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
from marshmallow import ValidationError

from ..core.model import Model
from ..core.vocabulary import LARGEST_INTEGER
from .predictor import prediction_dtype
from .schemas import DATATYPES, infer_request_schema

SERVER_NAME = "sklearn-serve"
SERVER_VERSION = "0.1.0"  # pyproject.toml's; tests/service/test_protocols.py holds them equal
EXTENSIONS = ("binary_tensor_data",)
PLATFORM = "scikit-learn"
MATRIX = "input"  # an all-numeric model's one input: [N, n_features], the manifest's order
PREDICT, PROBA = "predict", "predict_proba"  # the outputs, named after the estimator's methods
MAX_MESSAGES = 10  # value errors told in one answer; the count of the rest follows

_INTEGERS = {
    f"{kind}{bits}": (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if kind == "INT"
    else (0, 2**bits - 1)
    for kind in ("INT", "UINT")
    for bits in (8, 16, 32, 64)
}
_NUMBERS = frozenset({"FP32", "FP64", *_INTEGERS})
# Element types of the binary tensor extension, little-endian as it specifies.
_BINARY = {
    "FP32": "<f4",
    "FP64": "<f8",
    "BOOL": "?",
    **{
        name: f"<{'i' if name[0] == 'I' else 'u'}{int(name.lstrip('UINT')) // 8}"
        for name in _INTEGERS
    },
}
_FEATURE_TYPES = {"number": "FP64", "integer": "INT64", "category": "BYTES", "datetime": "BYTES"}
_NONE = type(None)


class TensorError(Exception):
    """An infer request the model cannot take: a 400, with a message naming the input."""


def server_metadata() -> dict[str, Any]:
    """GET /v2: this server's name, version and protocol extensions."""
    return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": list(EXTENSIONS)}


def takes_matrix(model: Model) -> bool:
    """Whether the model takes its features as one [N, n_features] tensor (all numeric)."""
    return model.numeric and MATRIX not in model.feature_names


def predict_datatype(model: Model) -> str:
    """The datatype of the predict output: the classes' own type, FP64 for a regressor."""
    return _datatype(prediction_dtype(model))


def _datatype(dtype: np.dtype[Any]) -> str:
    """The datatype of predictions in an array of `dtype` (predictor.prediction_dtype's)."""
    return {"b": "BOOL", "i": "INT64", "f": "FP64"}.get(dtype.kind, "BYTES")


def model_metadata(model: Model) -> dict[str, Any]:
    """GET /v2/models/<name>: the model's inputs and outputs; -1 where the batch's size goes."""
    if takes_matrix(model):
        inputs = [_tensor(MATRIX, "FP64", [-1, len(model.features)])]
    else:
        inputs = [_tensor(f.name, _FEATURE_TYPES[f.type], [-1]) for f in model.features]
    outputs = [_tensor(PREDICT, predict_datatype(model), [-1])]
    if PROBA in offered_outputs(model):
        outputs.append(_tensor(PROBA, "FP64", [-1, len(model.classes)]))
    return {
        "name": model.manifest["name"],
        "versions": [model.manifest["version"]],
        "platform": PLATFORM,
        "inputs": inputs,
        "outputs": outputs,
    }


def _tensor(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape}


def offered_outputs(model: Model) -> list[str]:
    """The outputs the model gives, by name: predict_proba only with probabilities."""
    return [PREDICT, PROBA] if model.probabilities else [PREDICT]


class InferRequests:
    """The model's infer requests: their schema (which the OpenAPI document is written from),
    and the reading of one's structure (its values are checked later, as instances).

    A request of the usual shape, each field of its exact JSON type, is one the schema would
    load to itself: it is taken as it is. marshmallow took ~50 µs a request, a sixth of a
    single-row V2 request; any other request goes through it, which words every refusal.
    tests/unit/protocol/test_v2.py proves both read any document alike.
    """

    def __init__(self, model: Model) -> None:
        offered = offered_outputs(model)
        self.outputs = frozenset(offered)
        self.schema = infer_request_schema(offered)

    def parse(self, document: Any) -> dict[str, Any]:
        """The request's structure, checked; TensorError naming the field where it is wrong."""
        if self.as_loaded(document):
            return document
        try:
            request: dict[str, Any] = self.schema.load(document)
        except ValidationError as exc:
            raise TensorError(_sentence(_flatten(exc.messages))) from None
        return request

    def as_loaded(self, document: Any) -> bool:
        """Whether the schema would load `document` to an equal one: only the fields it knows,
        each of its exact type (an integer given as 5, not 5.0) and inside its range."""
        if type(document) is not dict or not document.keys() <= _REQUEST_FIELDS:
            return False
        if "id" in document and type(document["id"]) is not str:
            return False
        if "parameters" in document and not _flags(document["parameters"], "binary_data_output"):
            return False
        inputs = document.get("inputs")
        if type(inputs) is not list or not inputs or not all(map(_plain_input, inputs)):
            return False
        if "outputs" not in document:
            return True
        outputs = document["outputs"]
        return (
            type(outputs) is list and bool(outputs) and all(self._plain_output(o) for o in outputs)
        )

    def _plain_output(self, output: Any) -> bool:
        return (
            type(output) is dict
            and output.keys() <= _OUTPUT_FIELDS
            and type(output.get("name")) is str
            and output["name"] in self.outputs
            and ("parameters" not in output or _flags(output["parameters"], "binary_data"))
        )


_REQUEST_FIELDS = frozenset({"id", "parameters", "inputs", "outputs"})
_INPUT_FIELDS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_OUTPUT_FIELDS = frozenset({"name", "parameters"})
_DATATYPES = frozenset(DATATYPES)


def _plain_input(tensor: Any) -> bool:
    """An input tensor the schema would load to itself (InferRequests.as_loaded)."""
    if type(tensor) is not dict or not tensor.keys() <= _INPUT_FIELDS:
        return False
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if type(tensor.get("name")) is not str or type(datatype) is not str:
        return False
    if datatype not in _DATATYPES or type(shape) is not list or not all(map(_is_count, shape)):
        return False
    if "data" in tensor and type(tensor["data"]) is not list:
        return False
    if "parameters" not in tensor:
        return True
    parameters = tensor["parameters"]
    return (
        type(parameters) is dict
        and parameters.keys() <= {"binary_data_size"}
        and ("binary_data_size" not in parameters or _is_count(parameters["binary_data_size"]))
    )


def _is_count(value: Any) -> bool:
    """A JSON integer the schema takes as a count: an int (not 5.0, not true), 0 to 2**53."""
    return type(value) is int and 0 <= value <= LARGEST_INTEGER


def _flags(parameters: Any, name: str) -> bool:
    """Parameters holding at most `name`, a boolean."""
    return (
        type(parameters) is dict
        and parameters.keys() <= {name}
        and (name not in parameters or type(parameters[name]) is bool)
    )


def requested_outputs(request: Mapping[str, Any], model: Model) -> list[tuple[str, bool]]:
    """The outputs to answer, in order, each with whether it goes in binary; all if none asked.

    The request's schema (request_schema) took only the names of outputs the model gives.
    """
    binary = request.get("parameters", {}).get("binary_data_output", False)
    asked = request.get("outputs")
    if asked is None:
        return [(name, binary) for name in offered_outputs(model)]
    chosen: list[tuple[str, bool]] = []
    for index, output in enumerate(asked):
        name = output["name"]
        if any(name == seen for seen, _ in chosen):
            raise TensorError(f'outputs.{index}: output "{name}" is asked for twice')
        chosen.append((name, output.get("parameters", {}).get("binary_data", binary)))
    return chosen


def read_inputs(
    request: Mapping[str, Any], blob: memoryview, model: Model, max_rows: int
) -> tuple[list[Any] | np.ndarray, bool]:
    """The input tensors as a /predict batch's instances (arrays in the manifest's order, or
    objects by feature name), and whether they came as the one matrix: then, if it came in
    binary, the [N, n_features] array of its own dtype, its values not yet checked."""
    inputs = request["inputs"]
    data = _data(inputs, blob)
    if len(inputs) == 1 and inputs[0]["name"] == MATRIX and takes_matrix(model):
        return _matrix(inputs[0], data[0], model, max_rows), True
    return _columns(inputs, data, model, max_rows), False


def _data(inputs: Sequence[Mapping[str, Any]], blob: memoryview) -> list[Any]:
    """Each input's values: its JSON `data`, or a view of the body's bytes after the JSON that
    are its own (binary tensor extension), in the inputs' order."""
    found: list[Any] = []
    offset = 0
    for index, tensor in enumerate(inputs):
        size = tensor.get("parameters", {}).get("binary_data_size")
        if size is None:
            if "data" not in tensor:
                raise TensorError(f"inputs.{index}.data: Missing data for required field.")
            found.append(tensor["data"])
            continue
        if "data" in tensor:
            raise TensorError(f"inputs.{index}: both data and binary_data_size are given")
        if offset + size > len(blob):
            raise TensorError(f"inputs.{index}: the body ends before its binary data does")
        found.append(blob[offset : offset + size])
        offset += size
    if offset != len(blob):
        raise TensorError("the body holds more binary data than its inputs' binary_data_size")
    return found


def _matrix(
    tensor: Mapping[str, Any], data: Any, model: Model, max_rows: int
) -> list[Any] | np.ndarray:
    """The [N, n_features] tensor's rows: arrays in the manifest's order, or from binary data
    the [N, n_features] array of the tensor's dtype."""
    width = len(model.features)
    where = f'input "{MATRIX}"'
    shape = tensor["shape"]
    if len(shape) != 2 or shape[1] != width:
        raise TensorError(f"{where}: shape must be [N, {width}] (rows, then the model's features)")
    rows = _rows(shape, where, max_rows)
    if tensor["datatype"] not in _NUMBERS:
        raise TensorError(f"{where}: datatype must be FP64, FP32 or an integer type")
    if isinstance(data, memoryview):
        elements = _elements(data, tensor["datatype"], where)
        _count(len(elements), shape, where)
        return elements.reshape(rows, width)
    values = _values(data, shape, tensor["datatype"], where)
    return [values[row * width : (row + 1) * width] for row in range(rows)]


def _columns(
    inputs: Sequence[Mapping[str, Any]], data: Sequence[Any], model: Model, max_rows: int
) -> list[Any]:
    """One tensor per feature, each [N] or [N, 1]: the rows, as objects by feature name."""
    features = {f.name: f for f in model.features}
    columns: dict[str, list[Any]] = {}
    rows = None
    for index, (tensor, values) in enumerate(zip(inputs, data, strict=True)):
        name = tensor["name"]
        if name not in features:
            raise TensorError(f"inputs.{index}: no such input; {_takes(model)}")
        where = f'input "{name}"'
        if name in columns:
            raise TensorError(f"{where} is given twice")
        shape = tensor["shape"]
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise TensorError(f"{where}: shape must be [N] or [N, 1]")
        if rows is not None and shape[0] != rows:
            raise TensorError(f"{where}: holds {shape[0]} rows, the inputs before it {rows}")
        rows = _rows(shape, where, max_rows)
        datatype = tensor["datatype"]
        if not features[name].numeric and datatype != "BYTES":
            raise TensorError(f"{where}: datatype must be BYTES (a {features[name].type})")
        if features[name].numeric and datatype not in _NUMBERS:
            raise TensorError(f"{where}: datatype must be FP64, FP32 or an integer type")
        columns[name] = _values(values, shape, datatype, where)
    missing = [name for name in features if name not in columns]
    if missing:
        raise TensorError(f"missing input {_list(missing)}; {_takes(model)}")
    return [dict(zip(features, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _rows(shape: Sequence[int], where: str, max_rows: int) -> int:
    """The batch's size, the tensor's first dimension: 1 to MAX_BATCH_SIZE rows."""
    if not 1 <= shape[0] <= max_rows:
        raise TensorError(f"{where}: must hold between 1 and {max_rows} rows (MAX_BATCH_SIZE)")
    return shape[0]


def _values(data: Any, shape: Sequence[int], datatype: str, where: str) -> list[Any]:
    """A tensor's values, flat, row-major, checked against its shape and datatype: JSON numbers
    for the numeric types (integers, in range, for the integer types), strings for BYTES; null
    passes here, and is then refused unless the feature takes a missing value."""
    values = (
        _decode(data, datatype, where)
        if isinstance(data, memoryview)
        else _flat(data, shape, where)
    )
    _count(len(values), shape, where)
    kinds = set(map(type, values)) - {_NONE}
    if datatype == "BYTES":
        if not kinds <= {str}:
            raise TensorError(f"{where}: data.{_first(values, str)} is not a string (BYTES)")
        return values
    if not kinds <= {int, float} or (datatype in _INTEGERS and float in kinds):
        kind = int if datatype in _INTEGERS else (int, float)
        raise TensorError(f"{where}: data.{_first(values, kind)} is not {datatype}")
    if datatype in _INTEGERS:
        low, high = _INTEGERS[datatype]
        present = [v for v in values if v is not None] if None in values else values
        if present and not low <= min(present) <= max(present) <= high:
            index = next(i for i, v in enumerate(values) if v is not None and not low <= v <= high)
            raise TensorError(f"{where}: data.{index} is out of {datatype}'s range")
    elif datatype == "FP32":  # the numbers an FP32 tensor holds: rounded to single precision
        values = _single(values, where)
    return values


def _count(found: int, shape: Sequence[int], where: str) -> None:
    """A tensor must hold as many values as its shape says."""
    if found != math.prod(shape):
        raise TensorError(
            f"{where}: holds {found} values, its shape {list(shape)} says {math.prod(shape)}"
        )


def _flat(data: list[Any], shape: Sequence[int], where: str) -> list[Any]:
    """JSON data, flat or nested exactly as the shape says (row-major), flattened.

    Nested, every level must match its dimension: [[1, 2, 3], [4, 5, 6, 7, 8]] holds eight
    values, but it is not [2, 4]. A value nested deeper than the shape stays a list, and is
    then refused as not of the datatype.
    """
    if list not in set(map(type, data)):
        return data  # flat: its count is checked against the shape's
    nodes = [data]
    for depth, size in enumerate(shape):
        if depth:
            nodes = list(chain.from_iterable(nodes))
        if set(map(type, nodes)) != {list} or set(map(len, nodes)) != {size}:
            raise TensorError(
                f"{where}: nested data must match its shape {list(shape)} at every level, "
                "or be flat"
            )
    return list(chain.from_iterable(nodes))


def _single(values: list[Any], where: str) -> list[Any]:
    """Numbers rounded to float32 and back: an FP32 tensor's values. Too large for float32:
    infinite, which the feature then refuses as not a finite number."""
    present = [v for v in values if v is not None] if None in values else values
    try:
        with np.errstate(over="ignore"):
            rounded = iter(np.array(present, np.float64).astype(np.float32).astype(float).tolist())
    except OverflowError:  # an integer beyond any float
        raise TensorError(f"{where}: holds a value beyond FP32") from None
    return [None if v is None else next(rounded) for v in values]


def _decode(data: memoryview, datatype: str, where: str) -> list[Any]:
    """An input's binary data (binary tensor extension) as values: little-endian elements, or
    for BYTES each string's 4-byte little-endian length, then its UTF-8 bytes."""
    if datatype == "BYTES":
        strings: list[Any] = []
        offset = 0
        try:
            while offset < len(data):
                (size,) = struct.unpack_from("<I", data, offset)
                chunk = data[offset + 4 : offset + 4 + size]
                if len(chunk) != size:
                    raise TensorError(f"{where}: binary BYTES data ends inside an element")
                strings.append(str(chunk, "utf-8"))
                offset += 4 + size
        except (struct.error, UnicodeDecodeError):
            raise TensorError(f"{where}: binary BYTES data is not length-prefixed UTF-8") from None
        return strings
    values: list[Any] = _elements(data, datatype, where).tolist()
    return values


def _elements(data: memoryview, datatype: str, where: str) -> np.ndarray:
    """Binary data of a fixed-size datatype as the array it is, little-endian elements."""
    if datatype not in _BINARY:
        raise TensorError(f"{where}: datatype {datatype} is not taken")
    kind = np.dtype(_BINARY[datatype])
    if len(data) % kind.itemsize:
        raise TensorError(f"{where}: binary data is not a whole number of {datatype} elements")
    return np.frombuffer(data, kind)


def value_errors(messages: Any, matrix: bool, names: Sequence[str]) -> str:
    """marshmallow's refusal of the instances, as one line naming each input, row and feature."""
    found = []
    column = {name: index for index, name in enumerate(names)}
    for path, message in _flatten(messages):
        parts = path.split(".", 2)
        if len(parts) == 3 and parts[0] == "instances" and parts[2] in column:
            _, row, feature = parts
            if matrix:
                place = f'input "{MATRIX}" row {row}, column {column[feature]} ({feature})'
            else:
                place = f'input "{feature}" row {row}'
            found.append((place, message))
        else:
            found.append((path, message))
    return _sentence(found)


def answer(
    model: Model,
    request: Mapping[str, Any],
    outputs: Sequence[tuple[str, bool]],
    predictions: np.ndarray,
    probabilities: list[dict[str, float]] | None,
) -> tuple[dict[str, Any], bytes]:
    """The inference response, and the binary data that follows it (b"" if none).

    `predictions` as Predictor.predict_array gives them: an array of the predict output's own
    type, or of objects.
    """
    tensors, blobs = [], []
    for name, binary in outputs:
        if name == PREDICT:
            datatype = _datatype(predictions.dtype)
            shape = [len(predictions)]
            values = _as(predictions, datatype)
        else:
            assert probabilities is not None
            datatype = "FP64"
            shape = [len(probabilities), len(model.classes)]
            values = [p for row in probabilities for p in row.values()]
        tensor: dict[str, Any] = _tensor(name, datatype, shape)
        if binary:
            raw = _encode(values, datatype)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            tensor["data"] = values.tolist() if isinstance(values, np.ndarray) else values
        tensors.append(tensor)
    body: dict[str, Any] = {
        "model_name": model.manifest["name"],
        "model_version": model.manifest["version"],
    }
    if "id" in request:
        body["id"] = request["id"]
    body["outputs"] = tensors
    return body, b"".join(blobs)


def _as(values: np.ndarray, datatype: str) -> np.ndarray | list[Any]:
    """Predictions as values of the output's datatype: strings for BYTES, else as they are."""
    if datatype == "BYTES":
        return [v if type(v) is str else str(v) for v in values]
    return values.astype(_BINARY[datatype], copy=False)


def _encode(values: np.ndarray | list[Any], datatype: str) -> bytes:
    """Values in the binary tensor extension's layout (see _decode)."""
    if datatype == "BYTES":
        encoded = [v.encode("utf-8") for v in values]
        return b"".join(struct.pack("<I", len(e)) + e for e in encoded)
    return np.asarray(values, dtype=_BINARY[datatype]).tobytes()


def _takes(model: Model) -> str:
    """What the model takes, for an error message."""
    each = f"one input per feature: {_list(model.feature_names)}"
    if not takes_matrix(model):
        return f"the model takes {each}"
    return f'the model takes one input "{MATRIX}" of shape [N, {len(model.features)}], or {each}'


def _list(names: Sequence[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _first(values: Sequence[Any], kind: Any) -> int:
    """The index of the first value that is neither null nor of `kind`."""
    return next(
        i
        for i, v in enumerate(values)
        if v is not None and (not isinstance(v, kind) or type(v) is bool)
    )


def _flatten(messages: Any, path: str = "") -> list[tuple[str, str]]:
    """marshmallow's nested messages as (dotted path, message) pairs."""
    if isinstance(messages, dict):
        return [
            pair
            for key, value in messages.items()
            for pair in _flatten(value, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(path, " ".join(messages))]
    return [pair for item in messages for pair in _flatten(item, path)]


def _sentence(found: Sequence[tuple[str, str]]) -> str:
    """At most MAX_MESSAGES of them on one line, and how many more there are."""
    told = "; ".join(f"{place}: {message}" for place, message in found[:MAX_MESSAGES])
    more = len(found) - MAX_MESSAGES
    return told + (f" (and {more} more)" if more > 0 else "")
