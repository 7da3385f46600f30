"""The compiled engine: the model's ONNX form, run by onnxruntime. No scikit-learn, no pickle.

`python -m webapp.package` (compile.py) wrote the graph and proved it answers as the estimator
does; this runs it. It takes rows exactly as the service holds them (a float matrix, or one
list per feature) and gives what `estimator.predict` and `predict_proba` give, in the same
order and types, so the Model above it cannot tell the engines apart.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

# onnxruntime's wheel starts a telemetry thread when it is imported, unless this is set. A thread
# in gunicorn's master is copied into no worker, yet its state is: every forked worker then hung, or
# aborted, in onnxruntime's exit handlers (the recycling in tests/service/test_faults.py, and
# tests/unit/core/test_onnx_engine.py). And a prediction service has no business reporting
# telemetry.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

import onnxruntime  # noqa: E402

from ..pins import private_api_usable
from .vocabulary import NULL_STRING, ArtifactError, Feature, Rows, one_line, row_count

log = logging.getLogger(__name__)

NAME = "onnx"
MAX_CODES = 2**24  # strings one feature's table may hold: every code exact in float32
DTYPES = {"float32": np.float32, "float64": np.float64}
FLOAT32_MAX = float(np.finfo(np.float32).max)


def runtime_version() -> str:
    """The installed onnxruntime's version, recorded at compile time and checked at load."""
    return str(onnxruntime.__version__)


class OnnxEngine:
    """An onnxruntime session over the compiled graph, with the manifest's view of its I/O.

    `entry` is the manifest's "compiled" object: "inputs" is "matrix" (one [N, features]
    tensor) or "columns" (one [N, 1] tensor per feature, named after it), "dtype" the float
    type numbers are given in (float32 where scikit-learn's trees compare float32 values).
    A matrix graph with string features has "codes": each one's table of strings, whose
    index the matrix holds (package/codes.py); the last stands in for any string not listed.
    """

    name = NAME
    # How far regression outputs may be from scikit-learn's, relative: compile.py accepted the
    # graph within the entry's "tolerance" (float64 forms), else within this (a float32 form's
    # last bits).
    tolerance = 1e-6

    def __init__(
        self,
        graph: bytes,
        entry: dict[str, Any],
        features: Sequence[Feature],
        classes: Sequence[Any] | None,
        probabilities: bool,
    ) -> None:
        options = onnxruntime.SessionOptions()
        # One request at a time per worker process: threads would only contend for the CPUs.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # No arena: a 10,000-row batch's buffers go back to malloc, then to the system
        # (tuning.release), instead of staying in onnxruntime's pool; no slower, one row or
        # a whole batch (docs/performance.md).
        options.enable_cpu_mem_arena = False
        try:
            self.session = onnxruntime.InferenceSession(
                graph, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a bad graph
            why = " ".join(str(exc).split())  # one line: its messages end in a line break
            raise ArtifactError(f"onnxruntime cannot load the compiled model: {why}") from None
        # The session's own run, without InferenceSession.run's per-call check of the input
        # names: feeds() always gives exactly the inputs checked below. Half the cost of a
        # single-row call (docs/performance.md); private, so only on the tested onnxruntime.
        if private_api_usable("onnxruntime", "the compiled form's calls"):
            self._run = self.session._sess.run
        else:
            self._run = self.session.run
        self.features = tuple(features)
        self.tolerance = float(entry.get("tolerance", self.tolerance))
        self.dtype = DTYPES[entry["dtype"]]
        self.overflows = self.dtype == np.float32 and any(map(_beyond_float32, features))
        self.matrix_input = entry["inputs"] == "matrix"
        # a graph whose temporaries grow with rows x training rows (package/distances.py)
        self.rows_per_call = entry.get("rows_per_call")
        if self.rows_per_call is not None and (
            type(self.rows_per_call) is not int or self.rows_per_call < 1
        ):
            raise ArtifactError("the compiled model's rows_per_call is not a positive integer")
        inputs = [i.name for i in self.session.get_inputs()]
        expected = ["input"] if self.matrix_input else [f.name for f in self.features]
        if inputs != expected:
            raise ArtifactError(f"the compiled model takes inputs {inputs}, not {expected}")
        if not self.matrix_input and any(f.null_as == "None" for f in self.features):
            raise ArtifactError("the compiled model takes strings, which cannot hold a None")
        outputs = [o.name for o in self.session.get_outputs()]
        self.label_output = [outputs[0]]
        self.proba_output = [outputs[1]] if probabilities else None
        if probabilities and len(outputs) < 2:
            raise ArtifactError("the compiled model gives no probabilities")
        # Labels come back as int64 or strings, or as their class's index (labels "indices":
        # string classes, package/codes.py); classes of another type (bool) are looked up.
        self.lookup: dict[Any, Any] | None = None
        if "labels" in entry:
            if entry["labels"] != "indices" or classes is None:
                raise ArtifactError("the compiled model's labels are not its classes' indices")
            self.lookup = dict(enumerate(classes))
        elif classes is not None and not all(type(c) in (int, str) for c in classes):
            self.lookup = {_label_key(c): c for c in classes}
        self.coders = _coders(entry.get("codes"), self.features) if self.matrix_input else []
        self.one_row: OneRow | None = None
        self.linear = self._linear(entry, classes)
        self.one_row = OneRow.bound(self) if self.matrix_input else None

    def feeds(self, rows: Rows) -> dict[str, np.ndarray]:
        """The graph's inputs for rows: a float matrix, or one sequence of values per feature."""
        if not self.overflows:
            return self._feeds(rows)
        with np.errstate(over="ignore"):  # see `_beyond_float32`
            return self._feeds(rows)

    def _feeds(self, rows: Rows) -> dict[str, np.ndarray]:
        if self.matrix_input:
            return {"input": self.matrix(rows).astype(self.dtype, copy=False)}
        columns = list(rows.T) if isinstance(rows, np.ndarray) else rows
        return {
            f.name: _tensor(f, values, self.dtype)
            for f, values in zip(self.features, columns, strict=True)
        }

    def matrix(self, rows: Rows) -> np.ndarray:
        """Rows as the matrix graph's float64 matrix: each string as its code."""
        if isinstance(rows, np.ndarray):
            return rows
        if not self.coders:
            return number_rows(rows)
        columns = list(rows)
        for index, codes, other in self.coders:  # a null's code: NULL_STRING's, or ""'s
            get = codes.get
            columns[index] = [get(v, other) for v in columns[index]]
        return number_rows(columns)

    def _outputs(self, names: list[str], rows: Rows) -> list[np.ndarray]:
        """The graph's outputs `names` for rows, from calls of at most rows_per_call rows."""
        count = row_count(rows)
        if count == 1 and self.one_row is not None:
            answer = self.one_row.run(names, rows)
            if answer is not None:
                return answer
        step = self.rows_per_call or count
        if count <= step:
            return list(self._run(names, self.feeds(rows), None))
        parts = [
            self._run(names, self.feeds(_rows_between(rows, start, start + step)), None)
            for start in range(0, count, step)
        ]
        return [np.concatenate(output) for output in zip(*parts, strict=True)]

    def _linear(self, entry: dict[str, Any], classes: Sequence[Any] | None) -> LinearLabels | None:
        """The numpy path for a scaled logistic regression's labels, if compile.py recorded
        its parameters (proven there to give the estimator's every class) and they give this
        graph's labels here too; else None, and the graph answers alone."""
        if "linear" not in entry or classes is None or not self.matrix_input or self.coders:
            return None
        linear = LinearLabels(entry["linear"], classes)
        rows = _probe_rows(self.features)
        (raw,) = self._outputs(self.label_output, rows)
        graph = (
            raw.ravel().tolist()
            if self.lookup is None
            else [self.lookup[v] for v in raw.ravel().tolist()]
        )
        if linear.predict(rows) != graph:
            log.warning("the recorded linear parameters disagree with the compiled graph: unused")
            return None
        return linear

    def predict(self, rows: Rows) -> list[Any]:
        """What the estimator's predict() gives, as JSON values."""
        if self.linear is not None:  # rows as a matrix, or integer features' columns
            return self.linear.predict(rows)
        labels = self._labels(rows)
        if self.lookup is None:
            values: list[Any] = labels.tolist()
            return values
        return [self.lookup[v] for v in labels.tolist()]

    def predict_array(self, rows: Rows) -> np.ndarray:
        """The same predictions as one array: numbers in their own dtype, other classes
        (booleans, looked up) as objects."""
        if self.linear is not None:
            return self.linear.labels(rows)
        labels = self._labels(rows)
        if self.lookup is None:
            return labels
        return np.array([self.lookup[v] for v in labels.tolist()], dtype=object)

    def _labels(self, rows: Rows) -> np.ndarray:
        """The graph's label output, flat; regression outputs (float32 from some graphs) as
        the float64 the estimator gives."""
        (raw,) = self._outputs(self.label_output, rows)
        flat: np.ndarray = raw.ravel()
        return flat.astype(np.float64) if flat.dtype.kind == "f" else flat

    def predict_proba(self, rows: Rows) -> np.ndarray:
        """What the estimator's predict_proba() gives: one column per class, in classes order."""
        assert self.proba_output is not None
        (proba,) = self._outputs(self.proba_output, rows)
        return np.asarray(proba, dtype=np.float64)


class OneRow:
    """A single row through a matrix graph with its input and each numeric output bound once
    (onnxruntime's IOBinding): the call makes and frees no tensors, and a single-row request
    takes a few microseconds less (docs/performance.md). The same graph and the same float
    values as the plain call, so the same answers; `bound` proves that on probe rows first.

    One call at a time: a thread that finds it busy (the function's gthread workers) takes
    the plain call instead.
    """

    def __init__(self, engine: OnnxEngine) -> None:
        session = engine.session
        self.engine = engine
        self.row = np.zeros((1, len(engine.features)), dtype=engine.dtype)
        self.input = onnxruntime.OrtValue.ortvalue_from_numpy(self.row)  # shares its memory
        self.bindings: dict[str, tuple[Any, np.ndarray]] = {}
        plain = session.run(None, {"input": self.row})
        for output, value in zip(session.get_outputs(), plain, strict=True):
            if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub":
                continue  # strings: onnxruntime makes those
            buffer = np.empty_like(value)
            binding = session.io_binding()
            binding.bind_ortvalue_input("input", self.input)
            binding.bind_output(
                output.name, "cpu", 0, buffer.dtype, list(buffer.shape), buffer.ctypes.data
            )
            self.bindings[output.name] = (binding, buffer)
        self.lock = threading.Lock()

    @classmethod
    def bound(cls, engine: OnnxEngine) -> OneRow | None:
        """The bound calls, if each answers as the plain call on 16 probe rows, bit for bit;
        else None, and the plain call serves as before."""
        try:
            one_row = cls(engine)
            for row in _probe_rows(engine.features, 16, engine.coders):
                matrix = row.reshape(1, -1)
                for name in one_row.bindings:
                    (plain,) = engine._run([name], engine.feeds(matrix), None)
                    bound = one_row.run([name], matrix)
                    if bound is None or bound[0].tobytes() != plain.tobytes():
                        log.warning("single rows through bound tensors differ: not used")
                        return None
        except Exception as exc:  # onnxruntime's own types
            log.warning("single rows cannot go through bound tensors: %s", one_line(exc))
            return None
        return one_row if one_row.bindings else None

    def run(self, names: list[str], rows: Rows) -> list[np.ndarray] | None:
        """The output `names` (one) for one row, or None where the plain call must answer."""
        if len(names) != 1 or names[0] not in self.bindings:
            return None
        if not self.lock.acquire(blocking=False):
            return None
        try:
            binding, buffer = self.bindings[names[0]]
            if self.engine.overflows:
                with np.errstate(over="ignore"):  # see `_beyond_float32`
                    self.row[...] = self.engine.matrix(rows)
            else:
                self.row[...] = self.engine.matrix(rows)
            self.engine.session.run_with_iobinding(binding)
            return [buffer.copy()]
        finally:
            self.lock.release()


class LinearLabels:
    """StandardScaler then a LogisticRegression, its labels as plain numpy: the arithmetic of
    StandardScaler.transform and LogisticRegression.predict, in their order (one score per
    class, the first greatest's class; with two classes one score, the second above 0).

    A second path beside the graph, kept for its measured worth (docs/performance.md): a single
    row's labels cost a fraction of an onnxruntime call. Labels only; probabilities come from
    the graph.
    """

    def __init__(self, spec: dict[str, Any], classes: Sequence[Any]) -> None:
        self.mean = None if spec["mean"] is None else np.array(spec["mean"], dtype=np.float64)
        self.scale = None if spec["scale"] is None else np.array(spec["scale"], dtype=np.float64)
        self.coef_t = np.array(spec["coef"], dtype=np.float64).T
        self.intercept = np.array(spec["intercept"], dtype=np.float64)
        self.classes = np.asarray(classes)
        scores = 1 if len(self.classes) == 2 else len(self.classes)
        if self.coef_t.shape[1] != scores or self.intercept.shape != (scores,):
            raise ArtifactError("the recorded linear parameters do not match the classes")

    def predict(self, rows: Rows) -> list[Any]:
        labels: list[Any] = self.labels(rows).tolist()
        return labels

    def labels(self, rows: Rows) -> np.ndarray:
        """Rows as a float matrix, or (integer features) one list per feature.

        Computed along the batch (a transposed copy: a row per feature, then per class), so
        that numpy broadcasts the mean, the scale and the intercept over long rows, not four
        values at a time: 3x faster for 10,000 rows. Each score is the same dot product as
        the estimator's `X @ coef_.T`; compile.py proves these labels on its verification
        rows, and loading (`_linear`) against the graph on its probe rows.
        """
        if isinstance(rows, np.ndarray):
            features = np.array(rows.T, dtype=np.float64, order="C")  # a copy: changed in place
        else:
            features = number_rows(rows).T  # a new array, one row per feature
        if self.mean is not None:
            features -= self.mean[:, None]
        if self.scale is not None:
            features /= self.scale[:, None]
        scores = self.coef_t.T @ features  # one row of scores per class
        scores += self.intercept[:, None]
        index = (scores[0] > 0).astype(np.intp) if len(scores) == 1 else first_greatest(scores)
        labels: np.ndarray = self.classes.take(index)
        return labels


def first_greatest(scores: np.ndarray) -> np.ndarray:
    """`scores.argmax(axis=0)` (the first greatest, or the first NaN), which numpy computes
    through a transposed copy: for a wide batch, a comparison per class instead."""
    if scores.shape[1] < 1024:  # fewer rows: the loop costs more than the copy
        return scores.argmax(axis=0)
    index = (scores[1] > scores[0]).astype(np.intp)  # strictly greater: a tie keeps the first
    best = np.maximum(scores[0], scores[1])  # NaN stays NaN, and is looked for below
    for position in range(2, len(scores)):
        row = scores[position]
        np.copyto(index, position, where=row > best)  # no index array, unlike index[mask]
        np.maximum(best, row, out=best)
    if np.isnan(best).any():
        return scores.argmax(axis=0)
    return index


def _probe_rows(
    features: Sequence[Feature], count: int = 4096, coders: Sequence[Coder] = ()
) -> np.ndarray:
    """Rows across every feature's valid range (or -100..100 where it is open), fixed; a
    coded string feature's, each of its codes."""
    low = [-100.0 if f.min is None else max(f.min, -1e6) for f in features]
    high = [100.0 if f.max is None else min(f.max, 1e6) for f in features]
    rows = np.random.default_rng(0).uniform(low, high, size=(count, len(features)))
    for index, _, other in coders:
        rows[:, index] = np.arange(count) % (other + 1)
    return rows


# A string feature's column, its strings' codes, and the code of any other string.
Coder = tuple[int, dict[Any, int], int]


def _coders(codes: Any, features: Sequence[Feature]) -> list[Coder]:
    """The manifest's "codes" as lookups (a null coded as NULL_STRING where the table holds
    it, else as ""); ArtifactError if they are not a table of distinct strings, "" among them
    (and NULL_STRING, where the estimator takes a null as None), for each string feature and
    no other."""
    strings = [i for i, f in enumerate(features) if not f.numeric]
    if codes is None and not strings:
        return []
    names = [features[i].name for i in strings]
    if not isinstance(codes, dict) or sorted(codes) != sorted(names):
        raise ArtifactError("the compiled model's codes are not one table per string feature")
    coders = []
    for index, name in zip(strings, names, strict=True):
        table = codes[name]
        if (
            not isinstance(table, list)
            or not 2 <= len(table) <= MAX_CODES
            or not all(type(s) is str for s in table)
            or len(set(table)) != len(table)
            or "" not in table[:-1]
            or (features[index].null_as == "None" and NULL_STRING not in table[:-1])
        ):
            raise ArtifactError(f"the compiled model's codes for {name!r} are not a table")
        lookup: dict[Any, int] = {s: i for i, s in enumerate(table[:-1])}
        lookup[None] = lookup.pop(NULL_STRING) if NULL_STRING in lookup else lookup[""]
        coders.append((index, lookup, len(table) - 1))
    return coders


def _label_key(value: Any) -> Any:
    """How the compiled graph gives a class: booleans as 0 and 1."""
    return int(value) if isinstance(value, (bool, np.bool_)) else value


def _rows_between(rows: Rows, start: int, end: int) -> Rows:
    """Rows start to end of a float matrix, or of one list per feature."""
    if isinstance(rows, np.ndarray):
        return rows[start:end]
    return [column[start:end] for column in rows]


def _beyond_float32(feature: Feature) -> bool:
    """Whether the feature takes numbers beyond float32's range. A float32 graph gets them as
    infinities, as the library reads them (XGBoost's float32 matrix; scikit-learn's trees
    refuse them, and packaging's ranges keep them out), without numpy's overflow warning: a
    false alarm in the log, and an error where warnings are errors (pytest's here)."""
    if feature.type not in ("number", "integer"):
        return False
    low, high = feature.min, feature.max
    return low is None or high is None or -low > FLOAT32_MAX or high > FLOAT32_MAX


def number_rows(columns: Sequence[Sequence[Any]]) -> np.ndarray:
    """Columns of numbers (None for missing) as a float64 matrix, a row per instance."""
    return np.array(
        [[np.nan if v is None else v for v in c] if None in c else c for c in columns],
        dtype=np.float64,
    ).T


def _tensor(feature: Feature, values: Sequence[Any] | np.ndarray, dtype: Any) -> np.ndarray:
    """One feature's values as its [N, 1] input: floats (NaN for missing) or strings."""
    if feature.type == "category":
        # An empty string is what the compiled imputers take for a missing category.
        strings = [("" if v is None else v) for v in values]
        return np.array(strings, dtype=object).reshape(-1, 1)
    if isinstance(values, np.ndarray):
        return values.astype(dtype).reshape(-1, 1)
    floats = np.array(
        [np.nan if v is None else v for v in values] if None in values else values, dtype=np.float64
    )
    return floats.astype(dtype, copy=False).reshape(-1, 1)
