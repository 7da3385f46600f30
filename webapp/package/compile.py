"""Compile a fitted estimator to ONNX, and accept the result only if it answers as the estimator.

Called by `python -m webapp.package` and train.py after the manifest is described. skl2onnx
converts; onnxruntime, through the very engine the service runs (onnx_engine.py), answers the
verification rows: the table's, at least 100,000 drawn across every feature's observed range,
categories and nulls, and edge values (bounds, and far out where a range is open: FAR).
Accepted only if every predicted class is identical, and regression outputs and probabilities
agree within 1e-9 relative (EXACT_RTOL; a probability near zero within 1e-14 absolute,
PROBABILITY_FLOOR). Only where no float64 form runs at all is a float32 form (skl2onnx's
float32 trees, a RidgeClassifier) held to less: 1e-6, relative for regression outputs and
absolute for probabilities, the most float32 arithmetic can give.

A model holding tree ensembles trees.py writes exactly (scikit-learn's, XGBoost's, LightGBM's)
is tried first in that form. Otherwise numbers are given as float64 first (linear models
compute in float64), then float32 (the trees scikit-learn fits compare float32 values;
skl2onnx's float64 trees also do not load in this version pairing). The first form that passes
is written; if none does, the manifest says why and the service runs scikit-learn itself.
skl2onnx converts with converters.py's float64 converters for the steps it writes in float32,
wrongly or not at all; distances.py then replaces its loops over training rows (nearest
neighbours' distances) by one broadcast, which the service calls on slices of a batch.
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.sklearn_engine import estimator_input, one_per_row
from ..core.verification import compare, rows_document
from ..core.vocabulary import LARGEST_INTEGER, NULL_STRING, Feature, one_line
from ..extras import install_command

VERIFICATION_ROWS = 100_000
UNSEEN = "\x00unseen category"  # a string no encoder has seen (describe.py tries it too)
# The locale onnxruntime's StringNormalizer lowercases text in (a text vectorizer's graph):
# without one, it asks for en_US.UTF-8, which slim hosts lack and refuse to load. Every glibc
# since 2.35 has C.UTF-8.
TEXT_LOCALE = "C.UTF-8"
EXACT_RTOL = 1e-9  # float64 forms: regression outputs and probabilities, relative
LAYOUTS = ("matrix", "columns")  # the compiled engine's inputs, the faster first
# Kept with the model, with the estimator's answers, to verify the form again where another
# onnxruntime serves it (core/verification.py).
REVERIFICATION_ROWS = 2_000
# Magnitudes each number is also verified at, alone, on either side its range leaves open: a
# request may send any finite number there, and a graph may compute otherwise far out (a
# distance by another formula, a saturated sigmoid picked instead of a score).
FAR = (1e3, 1e6, 1e10, 1e15, 1e20, 1e30, 1e50, 1e100, 1e200, 1e300, float(np.finfo(float).max))


def compile_model(
    estimator: Any, manifest: dict[str, Any], table: Any, file_name: str
) -> tuple[dict[str, Any], bytes | None, bytes | None]:
    """The verified ONNX form of `estimator`, the manifest's entry for it, and the rows to
    verify it again with (a rows file, core/verification.py).

    The entry is {"file", "inputs", "dtype", "verification", "opsets", "versions"} (the file's
    sha256 is added by package.write_manifest), or {"error": why} and neither graph nor rows
    when no form passed.
    """
    try:
        import skl2onnx

        from ..core.onnx_engine import LinearLabels, OnnxEngine, number_rows, runtime_version
        from . import codes, distances
    except ImportError as exc:
        missing = f"{exc.name} is not installed: {install_command('package')}"
        return {"error": missing}, None, None

    features = [Feature.from_manifest(f) for f in manifest["features"]]
    # the rows as the service holds them (accept.py): one float matrix where every feature is
    # a number that may not be null, else one list per feature
    plain = all(f.type == "number" and not f.nullable for f in features)
    classes = [c["value"] for c in manifest.get("classes", [])] or None
    probabilities = bool(manifest.get("probabilities"))
    columns = verification_columns(features, table)
    for check in manifest["self_check"]["instances"]:  # the rows /ready replays, too
        for column, f in zip(columns, features, strict=True):
            column.append(check[f.name])
    expected = _answers(estimator, features, manifest["input"], columns, probabilities)
    estimator = as_predicting(estimator)  # what is converted; `expected` stays the original's

    rows = number_rows(columns) if plain else columns  # as the service holds them
    failures = []
    precise = False  # whether a float64 form ran: then every form is held to EXACT_RTOL
    for entry in _exact_forms(estimator) + _forms(estimator):
        if precise or entry["dtype"] == "float64":
            entry["tolerance"] = EXACT_RTOL
        form = f"{entry['inputs']} of {entry['dtype']}"
        form += " (exact trees)" if "trees" in entry else ""
        try:
            graph = _convert(estimator, features, entry, classes is not None)
            if classes is not None and codes.labels_as_indices(graph, classes):
                entry["labels"] = "indices"  # numbers, which a bound call can give
            _outputs_read(graph, 2 if probabilities else 1)
            distances.without_scans(graph)
            if row_bytes := distances.broadcast_bytes(graph):
                entry["rows_per_call"] = distances.rows_per_call(row_bytes)
            engine = OnnxEngine(graph.SerializeToString(), entry, features, classes, probabilities)
            with warnings.catch_warnings():  # numpy's: a number far out is inf in float32
                warnings.simplefilter("ignore", RuntimeWarning)
                got = (engine.predict(rows), engine.predict_proba(rows) if probabilities else None)
        except Exception as exc:  # skl2onnx and onnxruntime raise many types for what they lack
            failures.append(f"{form}: {one_line(exc)}")
            continue
        precise |= "tolerance" in entry
        verdict, verification = compare(expected, got, classes is not None, entry.get("tolerance"))
        if verdict:
            failures.append(f"{form}: {verdict}")
            continue
        linear = _linear_parameters(estimator) if entry["dtype"] == "float64" else None
        if linear is not None and classes is not None and entry["inputs"] == "matrix":
            labels = LinearLabels(linear, classes).predict(rows)
            if compare(expected, (labels, None), True)[0] is None:
                entry["linear"] = linear  # the numpy path for its labels, as exact
        checks = len(manifest["self_check"]["instances"])
        kept = _rows_to_keep(features, columns, expected, got, classes is not None, checks)
        return (
            {
                "file": file_name,
                **entry,
                "verification": {"rows": len(columns[0]), **verification},
                "opsets": {o.domain or "ai.onnx": o.version for o in graph.opset_import},
                "versions": {
                    "onnxruntime": runtime_version(),
                    "skl2onnx": skl2onnx.__version__,
                },
            },
            graph.SerializeToString(),
            kept,
        )
    return {"error": "; ".join(failures)}, None, None


def as_predicting(estimator: Any) -> Any:
    """The estimator as it predicts, where skl2onnx cannot convert it as it is: a search's
    (RandomizedSearchCV, HalvingGridSearchCV, ...) best estimator, refitted on all the data,
    which its predict calls; an imbalanced-learn Pipeline's steps but its samplers (SMOTE,
    ...), which resample only while it is fitted, as a scikit-learn Pipeline (the step itself,
    where one is left). Else the estimator."""
    from sklearn.pipeline import Pipeline

    if hasattr(estimator, "cv_results_") and hasattr(estimator, "best_estimator_"):
        return as_predicting(estimator.best_estimator_)
    if not isinstance(estimator, Pipeline):
        return estimator
    kept = [(name, step) for name, step in estimator.steps if not hasattr(step, "fit_resample")]
    if len(kept) == len(estimator.steps):
        return estimator
    return kept[0][1] if len(kept) == 1 else Pipeline(kept)


def _outputs_read(graph: Any, count: int) -> None:
    """Keep the graph's first `count` outputs, those the engine reads (labels, and
    probabilities where the model gives them), and only the nodes and constants they need:
    onnxruntime runs every node, whichever outputs a call asks for (an outlier detector's
    scores, a clusterer's distances)."""
    main = graph.graph
    del main.output[count:]
    needed = {o.name for o in main.output}
    kept: set[int] = set()
    grown = True
    while grown:  # again until nothing is added: a subgraph's reads may come after it
        grown = False
        for index, node in reversed(list(enumerate(main.node))):
            if index not in kept and needed.intersection(node.output):
                kept.add(index)
                needed |= _names_read(node)
                grown = True
    nodes = [node for index, node in enumerate(main.node) if index in kept]
    del main.node[:]
    main.node.extend(nodes)
    constants = [t for t in main.initializer if t.name in needed]
    del main.initializer[:]
    main.initializer.extend(constants)


def _names_read(node: Any) -> set[str]:
    """The tensors a node reads: its inputs, and any its subgraphs read (a Loop's body may
    read the outer graph's tensors without naming them as inputs, and skl2onnx may write
    their nodes after the Loop's: onnxruntime orders them itself)."""
    from onnx import AttributeProto

    names = set(node.input)
    for attribute in node.attribute:
        one = [attribute.g] if attribute.type == AttributeProto.GRAPH else []
        for sub in [*one, *attribute.graphs]:
            for inner in sub.node:
                names |= _names_read(inner)
    return names


def _linear_parameters(estimator: Any) -> dict[str, Any] | None:
    """A StandardScaler -> LogisticRegression pipeline's parameters, which the compiled
    engine may compute labels from in numpy (onnx_engine.LinearLabels); else None."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(estimator, Pipeline) or len(estimator.steps) != 2:
        return None
    scaler, classifier = (step for _, step in estimator.steps)
    if type(scaler) is not StandardScaler or type(classifier) is not LogisticRegression:
        return None
    return {
        "mean": scaler.mean_.tolist() if scaler.with_mean else None,
        "scale": scaler.scale_.tolist() if scaler.with_std else None,
        "coef": classifier.coef_.tolist(),
        "intercept": classifier.intercept_.tolist(),
    }


def _exact_forms(estimator: Any) -> list[dict[str, Any]]:
    """The forms with exact trees, if the estimator holds a model trees.py writes: float32
    numbers for such a model alone that compares float32 (its graph casts nothing), float64
    for anything else."""
    from . import trees

    parts = [estimator, *estimator.get_params(deep=True).values()]
    if not any(trees.supported(p) for p in parts):
        return []
    dtype = "float32" if trees.compares_float32(estimator) else "float64"
    return [
        {"inputs": layout, "dtype": dtype, "trees": "exact", "tolerance": EXACT_RTOL}
        for layout in LAYOUTS
    ]


def _forms(estimator: Any) -> list[dict[str, Any]]:
    """The input forms to try, most faithful first.

    A tree ensemble given the features directly compares them as float32, as scikit-learn
    casts them: float32 inputs agree exactly, not just on the rows tried. Anything else
    computes in float64. One matrix first (strings in it as codes, see codes.py); named
    columns for pipelines that pick their columns by name, or strings that cannot be coded.
    """
    members = getattr(estimator, "estimators_", [])
    # a list (bagging, voting) or a 2-D array (gradient boosting); never np.ravel a list: a
    # Pipeline member has a length and items, and numpy would take it for a sequence
    members = members.ravel().tolist() if isinstance(members, np.ndarray) else list(members)
    trees = hasattr(estimator, "tree_") or any(hasattr(e, "tree_") for e in members)
    dtypes = ("float32", "float64") if trees else ("float64", "float32")
    return [{"inputs": layout, "dtype": dtype} for layout in LAYOUTS for dtype in dtypes]


def verification_columns(
    features: Sequence[Feature], table: Any, count: int = VERIFICATION_ROWS
) -> list[list[Any]]:
    """Rows to verify on, as one list per feature (None for null): drawn, edges, the table's.

    Numbers are drawn across their training range widened threefold (within the valid range),
    integers as whole numbers, categories from their allowed values (and an unseen one, "" and
    NULL_STRING where any string is allowed: the compiled engine is given one of those for a
    null, too); a tenth
    are null where null is allowed. Then each bound alone and all at once, and the table's
    rows as they are.
    """
    rng = np.random.default_rng(0)
    drawn: list[list[Any]] = []
    for f in features:
        if f.type == "category":
            values = list(f.categories or f.train_categories or ["a"])
            if f.categories is None:  # any text: "", and the known words next to other letters
                others = (w for v in values for w in _other_writings(v))
                values += [UNSEEN, "", NULL_STRING, *others]
            column: list[Any] = [values[i] for i in rng.integers(0, len(values), count)]
        else:
            low, high = _interval(f)
            numbers = rng.uniform(low, high, count)
            column = (
                np.round(numbers).astype(np.int64).tolist()
                if f.type == "integer"
                else numbers.tolist()
            )
        if f.nullable:
            column = [
                None if hit else v for v, hit in zip(column, rng.random(count) < 0.1, strict=True)
            ]
        drawn.append(column)
    base = [c[0] if c[0] is not None else c[1] for c in drawn]
    edges = _edges(features, base)
    given = _table_columns(table, features)
    return [
        d + [e[i] for e in edges] + g for i, (d, g) in enumerate(zip(drawn, given, strict=True))
    ]


def _other_writings(text: str) -> list[str]:
    """The text upper-cased, and with a non-ASCII letter ending each word: scikit-learn
    lower-cases with Python's str.lower and takes every Unicode letter for one; a graph that
    lower-cases another way, or splits words there, finds other words (skl2onnx writes `\\w`
    as `[a-zA-Z0-9_]`)."""
    return [text.upper(), re.sub(r"(\w+)", lambda m: m.group(1) + "é", text)]


def _interval(feature: Feature) -> tuple[float, float]:
    low = -1.0 if feature.train_min is None else feature.train_min
    high = 1.0 if feature.train_max is None else feature.train_max
    width = max(high - low, 1.0)
    lo = max(low - width, -math.inf if feature.min is None else feature.min)
    hi = min(high + width, math.inf if feature.max is None else feature.max)
    return lo, hi


def _edges(features: Sequence[Feature], base: list[Any]) -> list[list[Any]]:
    """Rows at each feature's bounds, its training extremes and far out (FAR) as far as its
    range allows, one feature at a time; then at all its bounds at once."""
    rows = []
    high_corner, low_corner = list(base), list(base)
    for i, f in enumerate(features):
        if not f.numeric:
            continue
        far = [sign * m for m in FAR for sign in (1, -1)]
        if f.type == "integer":
            far = [max(min(v, LARGEST_INTEGER), -LARGEST_INTEGER) for v in far]
        for value in (f.min, f.max, f.train_min, f.train_max, 0, *far):
            if value is not None and f.contains(value):
                rows.append(
                    [*base[:i], int(value) if f.type == "integer" else value, *base[i + 1 :]]
                )
        if f.max is not None and f.contains(f.max):
            high_corner[i] = f.max
        if f.min is not None and f.contains(f.min):
            low_corner[i] = f.min
    return [*rows, high_corner, low_corner]


def _table_columns(table: Any, features: Sequence[Feature]) -> list[list[Any]]:
    """The table's rows that a request may send: not those with a null where the estimator
    takes none (the service refuses them; the estimator would raise)."""
    if table is None:
        return [[] for _ in features]
    columns = []
    for f in features:
        values = table[f.name].astype(object).tolist()
        columns.append([None if isinstance(v, float) and math.isnan(v) else v for v in values])
    valid = [
        all(
            f.nullable or column[row] is not None
            for f, column in zip(features, columns, strict=True)
        )
        for row in range(len(table))
    ]
    return [[v for v, keep in zip(column, valid, strict=True) if keep] for column in columns]


def _answers(
    estimator: Any,
    features: Sequence[Feature],
    form: str,
    columns: list[list[Any]],
    proba: bool,
) -> tuple[list[Any], np.ndarray | None]:
    """The estimator's own predictions (and probabilities) for the verification rows."""
    given = estimator_input(features, form, columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted = one_per_row(estimator.predict(given)).tolist()
        probabilities = estimator.predict_proba(given) if proba else None
    return predicted, probabilities


def _convert(
    estimator: Any, features: Sequence[Feature], entry: dict[str, Any], classifier: bool
) -> Any:
    """skl2onnx's graph for the estimator, taking inputs as the entry says."""
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    from . import codes, converters, trees  # onnx and skl2onnx: imported only to compile

    number = DoubleTensorType if entry["dtype"] == "float64" else FloatTensorType
    coded = entry["inputs"] == "matrix" and not all(f.numeric for f in features)
    if entry["inputs"] == "matrix" and not coded:
        initial_types = [("input", number([None, len(features)]))]
    else:
        initial_types = [
            (f.name, number([None, 1]) if f.numeric else StringTensorType([None, 1]))
            for f in features
        ]
    # Probabilities as one tensor, not a list of maps; labels and probabilities in classes order.
    options = {"zipmap": False} if classifier else None
    exact = entry.get("trees") == "exact"
    nulls = _null_strings(features, coded)
    with (
        warnings.catch_warnings(),
        converters.float64_converters(nulls),
        trees.exact_converters() if exact else contextlib.nullcontext(),
    ):
        warnings.simplefilter("ignore")
        # A fixed graph name (skl2onnx draws a random one): the same model, the same bytes.
        graph = convert_sklearn(
            estimator,
            "model",
            initial_types=initial_types,
            options=options,
            target_opset={"": trees.OPSET, "ai.onnx.ml": 3} if exact else None,
        )
    if exact:
        graph = trees.finish(graph)
    for node in graph.graph.node:
        if node.op_type == "StringNormalizer":
            kept = [a for a in node.attribute if a.name != "locale"]
            del node.attribute[:]
            node.attribute.extend([*kept, helper.make_attribute("locale", TEXT_LOCALE)])
    if coded:
        element = TensorProto.DOUBLE if entry["dtype"] == "float64" else TensorProto.FLOAT
        given = {name: string for name, (string, _) in nulls.items()}
        entry["codes"] = codes.strings_as_codes(graph, features, element, given)
    return graph


def _null_strings(features: Sequence[Feature], coded: bool) -> dict[str, tuple[str, str]]:
    """The string features whose null the graph is given as a string no client can send in
    its place: that string, and what scikit-learn is given (null_as: "NaN" or "None").

    As codes (a matrix), a null is NULL_STRING, which onnx_engine codes apart from every
    string a client sends. As strings (columns), it is "", only a null's where the schemas
    close the categories without it; a None none can stand for (onnx_engine refuses it)."""
    nulls = {}
    for f in features:
        if f.type != "category":
            continue
        if coded and f.nullable:
            nulls[f.name] = (NULL_STRING, f.null_as)
        elif f.null_as == "NaN" and f.categories is not None and "" not in f.categories:
            nulls[f.name] = ("", "NaN")
    return nulls


def _rows_to_keep(
    features: Sequence[Feature],
    columns: list[list[Any]],
    expected: tuple[list[Any], np.ndarray | None],
    got: tuple[list[Any], np.ndarray | None],
    classifier: bool,
    self_checks: int,
) -> bytes:
    """The rows file kept with the model: REVERIFICATION_ROWS of the verification rows with
    the estimator's answers. The self-check's (last), the edges' and the table's (after the
    drawn ones), the rows nearest to another answer (the smallest margin between the two
    likeliest classes, or the largest difference between the graph's output and the
    estimator's), then drawn ones."""
    total = len(expected[0])
    picks: list[Any] = [
        range(total - self_checks, total),
        range(VERIFICATION_ROWS, min(total, VERIFICATION_ROWS + REVERIFICATION_ROWS // 4)),
    ]
    proba, nearest = expected[1], None
    if classifier and proba is not None and proba.shape[1] > 1:
        top_two = np.sort(proba, axis=1)[:, -2:]
        nearest = np.argsort(top_two[:, 1] - top_two[:, 0], kind="stable")
    elif not classifier:
        want = np.asarray(expected[0], dtype=np.float64)
        difference = np.abs(np.asarray(got[0], dtype=np.float64) - want)
        nearest = np.argsort(-difference / np.maximum(np.abs(want), 1e-300), kind="stable")
    if nearest is not None:
        picks.append(nearest[: REVERIFICATION_ROWS // 2])
    picks.append(np.random.default_rng(0).permutation(total))
    kept = sorted(list(dict.fromkeys(int(i) for pick in picks for i in pick))[:REVERIFICATION_ROWS])
    return rows_document(
        features,
        [[c[i] for i in kept] for c in columns],
        [expected[0][i] for i in kept],
        None if proba is None else proba[kept],
    )
