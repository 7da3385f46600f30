"""Exact ONNX graphs for tree ensembles, written from the fitted trees' own arrays.

Packaging side only (compile.py imports it; nothing at serve time does). skl2onnx 1.20 writes
float32 trees; these graphs run onnxruntime's `TreeEnsemble` (ai.onnx.ml opset 5) in float64
and redo the library's own arithmetic around it, operation for operation:

- features are compared as the library compares them: scikit-learn's trees cast them to
  float32 (the graph casts to float32 and back), HistGradientBoosting and LightGBM compare
  float64, XGBoost float32 (exact in float64 too);
- the ensemble node gives each tree's own leaf (one target per tree, so no sum happens in
  it), and `CumSum` adds the trees one by one in the library's order, starting from its
  initial value: the same roundings, whatever onnxruntime's thread count;
- then the library's own scaling, link and label rule (first maximum wins a tie, as
  `np.argmax`; thresholds as the library writes them).

Within `exact_converters()` skl2onnx converts with these, so a Pipeline or ColumnTransformer
ending in such a model converts through skl2onnx with exact trees; `to_onnx` converts one. A
model given one input per feature takes a category's strings as the codes it learnt
(XGBoost's and LightGBM's pandas categories, HistGradientBoosting's columns of strings).
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ML_OPSET = 5  # ai.onnx.ml: the TreeEnsemble operator
OPSET = 21

LEQ, LT, EQ, MEMBER = 0, 1, 4, 6  # TreeEnsemble's nodes_modes
MAX_DEPTH = 500  # the trees are walked recursively
# LightGBM takes a feature within this of zero for zero (include/LightGBM/meta.h, 1e-35f)
LIGHTGBM_ZERO = float(np.float32(1e-35))
DOUBLE, FLOAT, INT64 = TensorProto.DOUBLE, TensorProto.FLOAT, TensorProto.INT64


class NotSupported(ValueError):
    """No exact graph for this model: another converter (or the estimator) must serve it."""


# -- The trees, in the TreeEnsemble operator's vocabulary ----------------------------------


@dataclass
class Trees:
    """The attributes of one TreeEnsemble node, built tree by tree.

    Every tree writes to its own target, so the node outputs one column per tree and sums
    nothing itself. A node's children are ("node", i) or ("leaf", j); a child may be shared
    (onnxruntime walks each tree from its root and copies what it reaches twice).
    """

    features: list[int] = field(default_factory=list)
    modes: list[int] = field(default_factory=list)
    splits: list[float] = field(default_factory=list)
    members: list[float] = field(default_factory=list)
    nan_true: list[int] = field(default_factory=list)
    true_ids: list[int] = field(default_factory=list)
    true_leafs: list[int] = field(default_factory=list)
    false_ids: list[int] = field(default_factory=list)
    false_leafs: list[int] = field(default_factory=list)
    roots: list[int] = field(default_factory=list)
    leaf_targets: list[int] = field(default_factory=list)
    leaf_weights: list[float] = field(default_factory=list)

    def leaf(self, weight: float) -> tuple[str, int]:
        """A leaf of the tree being built (the next one `tree` closes)."""
        self.leaf_weights.append(weight)
        return ("leaf", len(self.leaf_weights) - 1)

    def node(
        self,
        feature: int,
        mode: int,
        split: float,
        true: tuple[str, int],
        false: tuple[str, int],
        nan_true: bool,
        members: Sequence[float] = (),
    ) -> tuple[str, int]:
        """An inner node: `true` when the feature's value compares true (or is NaN and
        nan_true); a MEMBER node's set is `members`."""
        if mode == MEMBER:
            if not members:  # onnxruntime cannot take an empty set: nothing is a member
                mode, split = LT, -math.inf
            else:
                self.members.extend([*members, math.nan])
        self.features.append(int(feature))
        self.modes.append(mode)
        self.splits.append(float(split))
        self.nan_true.append(int(nan_true))
        self.true_ids.append(true[1])
        self.true_leafs.append(int(true[0] == "leaf"))
        self.false_ids.append(false[1])
        self.false_leafs.append(int(false[0] == "leaf"))
        return ("node", len(self.features) - 1)

    def tree(self, root: tuple[str, int], target: int | None = None) -> None:
        """Close the tree whose root this is, its leaves writing to `target` (by default its
        own number). A lone leaf gets a node with both branches to it."""
        if root[0] == "leaf":
            root = self.node(0, LEQ, 0.0, root, root, False)
        new = len(self.leaf_weights) - len(self.leaf_targets)
        self.leaf_targets.extend([len(self.roots) if target is None else target] * new)
        self.roots.append(root[1])

    def constant(self, weight: float, target: int | None = None) -> None:
        """A tree that always answers `weight`: the library's initial value, summed first."""
        self.tree(self.leaf(weight), target)

    def attributes(self, dtype: Any) -> dict[str, Any]:
        def tensor(values: Sequence[float], kind: Any = dtype) -> TensorProto:
            return numpy_helper.from_array(np.asarray(values, dtype=kind))

        attrs = {
            "n_targets": max(self.leaf_targets) + 1,
            "aggregate_function": 1,  # SUM: one leaf per target, so each target is that leaf
            "post_transform": 0,
            "tree_roots": self.roots,
            "nodes_featureids": self.features,
            "nodes_modes": tensor(self.modes, np.uint8),
            "nodes_splits": tensor(self.splits),
            "nodes_missing_value_tracks_true": self.nan_true,
            "nodes_truenodeids": self.true_ids,
            "nodes_trueleafs": self.true_leafs,
            "nodes_falsenodeids": self.false_ids,
            "nodes_falseleafs": self.false_leafs,
            "leaf_targetids": self.leaf_targets,
            "leaf_weights": tensor(self.leaf_weights),
        }
        if self.members:
            attrs["membership_values"] = tensor(self.members)
        return attrs


# -- Writing nodes: standalone or inside skl2onnx's container ------------------------------


class Writer:
    """Adds nodes and constants to a graph under fresh names (skl2onnx's, when converting
    inside skl2onnx)."""

    def __init__(
        self, scope: Any = None, container: Any = None, types: dict[str, int] | None = None
    ) -> None:
        self.scope, self.container = scope, container
        self.types = types or {}  # the element type of inputs known (FLOAT, DOUBLE)
        # the matrix columns whose strings _joined_columns gave as their codes
        self.coded: set[int] = set()
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0

    def fresh(self, hint: str) -> str:
        if self.scope is not None:
            return str(self.scope.get_unique_variable_name(hint))
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: Any, hint: str = "c") -> str:
        array = np.asarray(value)
        if array.dtype.kind in "UO":
            array = array.astype(object)
        name = self.fresh(hint)
        tensor = numpy_helper.from_array(array, name)
        if self.container is not None:
            # skl2onnx copies a tensor's raw bytes only, which strings are not stored in
            content = array.ravel().tolist() if array.dtype == object else tensor
            self.container.add_initializer(name, tensor.data_type, list(array.shape), content)
        else:
            self.initializers.append(tensor)
        return name

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        hint: str = "t",
        *,
        output: str | None = None,
        domain: str = "",
        **attrs: Any,
    ) -> str:
        return self.ops(op_type, inputs, [output or self.fresh(hint)], domain=domain, **attrs)[0]

    def ops(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str],
        *,
        domain: str = "",
        **attrs: Any,
    ) -> list[str]:
        """A node with several outputs, named `outputs`."""
        if self.container is not None:
            # skl2onnx 1.20 refuses to write ai.onnx.ml above 3: the node is recorded at the
            # container's version, and finish() raises the model's import to 5.
            version = self.container.target_opset_any_domain(domain)
            if domain == "ai.onnx.ml":
                version = min(version, 3)
            self.container.add_node(
                op_type,
                list(inputs),
                list(outputs),
                op_domain=domain,
                op_version=version,
                name=self.fresh(op_type),
                **attrs,
            )
        else:
            node = helper.make_node(
                op_type, list(inputs), list(outputs), self.fresh(op_type), **attrs
            )
            node.domain = domain
            self.nodes.append(node)
        return list(outputs)


# -- The arithmetic shared by every library ------------------------------------------------


def _doubles(w: Writer, x: str, compare: str) -> str:
    """The features as the TreeEnsemble node takes them (float64), compared as the library
    compares them: "float32" rounds them to float32 first; "float64" keeps them."""
    known = w.types.get(x)
    if compare == "float32" and known != FLOAT:
        x = w.op("Cast", [x], "f32", to=FLOAT)
    elif compare == "float64" and known == DOUBLE:
        return x
    return w.op("Cast", [x], "f64", to=DOUBLE)


def _ensemble(w: Writer, x: str, trees: Trees) -> str:
    """[N, trees]: each tree's leaf weight for each row."""
    return w.op("TreeEnsemble", [x], "leaves", domain="ai.onnx.ml", **trees.attributes(np.float64))


def _sum_stages(
    w: Writer,
    per_tree: str,
    stages: int,
    outputs: int,
    dtype: Any = np.float64,
    table: np.ndarray | None = None,
    output: str | None = None,
) -> str:
    """[N, outputs]: the trees' contributions summed stage after stage, as the library's loop
    `out += tree` does (CumSum adds in order; its last row is the sum).

    The trees come in stages of `outputs` trees, one per output, each leaf weight the
    contribution itself; or, with `table` ([leaves, outputs]), one tree per stage whose leaf
    weight is the row of `table` it adds.
    """
    if table is not None:
        rows = w.op("Cast", [per_tree], "rows", to=INT64)
        per_tree = w.op("Gather", [w.const(table.astype(dtype), "table"), rows], "contrib", axis=0)
    else:
        if dtype == np.float32:
            per_tree = w.op("Cast", [per_tree], "contrib", to=FLOAT)
        if outputs > 1:
            shape = w.const(np.array([-1, stages, outputs]))
            per_tree = w.op("Reshape", [per_tree, shape], "stages")
    running = w.op("CumSum", [per_tree, w.const(np.array(1))], "running")
    if table is None and outputs == 1:  # [N, stages]: keep the last column as [N, 1]
        return w.op(
            "Gather", [running, w.const(np.array([stages - 1]))], "sum", output=output, axis=1
        )
    return w.op("Gather", [running, w.const(np.array(stages - 1))], "sum", output=output, axis=1)


def argmax_labels(w: Writer, scores: str, classes: np.ndarray, output: str) -> str:
    """classes[argmax(scores)], the first maximum winning a tie as np.argmax's does."""
    index = w.op("ArgMax", [scores], "index", axis=1, keepdims=0, select_last_index=0)
    return take_classes(w, index, classes, output)


def take_classes(w: Writer, index: str, classes: np.ndarray, output: str) -> str:
    """classes[index], in label_type's type: classes that are floats (a target read from a
    CSV with gaps) as float64, which the engine looks each class up by."""
    values = np.asarray(classes)
    if values.dtype.kind in "biu":
        values = values.astype(np.int64)
    elif values.dtype.kind in "UO":
        values = values.astype(str).astype(object)
    elif values.dtype.kind == "f":
        values = values.astype(np.float64)
    else:
        raise NotSupported(f"classes of type {values.dtype} have no exact label output")
    return w.op("Gather", [w.const(values, "classes"), index], output=output, axis=0)


def label_type(classes: Any, n: Any) -> Any:
    """The skl2onnx type of a classifier's labels output, [n], as take_classes gives it."""
    from skl2onnx.common.data_types import DoubleTensorType, Int64TensorType, StringTensorType

    kind = np.asarray(classes).dtype.kind
    if kind in "UO":
        return StringTensorType([n])
    return (DoubleTensorType if kind == "f" else Int64TensorType)([n])


def binary_index(w: Writer, test: str) -> str:
    """A [N] or [N, 1] boolean as class indices 0 and 1, [N]."""
    index = w.op("Cast", [test], "index", to=INT64)
    return w.op("Reshape", [index, w.const(np.array([-1]))], "index")


def _expit(w: Writer, raw: str) -> str:
    """1 / (1 + exp(-raw)), as scipy's expit and LightGBM's sigmoid write it (with
    onnxruntime's exp, which may differ from glibc's in the last bit)."""
    e = w.op("Exp", [w.op("Neg", [raw], "neg")], "exp")
    return w.op("Div", [w.const(np.array(1.0)), w.op("Add", [e, w.const(np.array(1.0))])], "p")


def _two_columns(w: Writer, p: str, one: Any, output: str) -> str:
    """[1 - p, p] as [N, 2] (p is [N, 1])."""
    q = w.op("Sub", [w.const(one), p], "q")
    return w.op("Concat", [q, p], output=output, axis=1)


def _softmax(w: Writer, raw: str, output: str) -> str:
    """exp(raw - max) / sum, as sklearn.utils.extmath.softmax and LightGBM's Softmax write it,
    the sum taken class after class as LightGBM's loop does (numpy's may round differently in
    the last bit). onnxruntime's exp is not glibc's: the last bit may differ too."""
    top = w.op("ReduceMax", [raw, w.const(np.array([1]))], "max", keepdims=1)
    e = w.op("Exp", [w.op("Sub", [raw, top], "shifted")], "exp")
    running = w.op("CumSum", [e, w.const(np.array(1))], "running")
    total = w.op("Gather", [running, w.const(np.array([-1]))], "total", axis=1)
    return w.op("Div", [e, total], output=output)


# -- scikit-learn ---------------------------------------------------------------------------


def _sklearn_tree(
    trees: Trees,
    tree: Any,
    weights: np.ndarray,
    features: np.ndarray | None = None,
    nan_aware: bool = True,
) -> None:
    """One sklearn.tree._tree.Tree, the leaf at node i weighing weights[i]: `x[feature] <=
    threshold` goes left, NaN as missing_go_to_left says (the float32 cast is the caller's).
    features maps the tree's feature numbers to the input's (a bagged tree on a subset)."""
    if tree.max_depth > MAX_DEPTH:
        raise NotSupported(f"a tree deeper than {MAX_DEPTH}")
    left, right = tree.children_left, tree.children_right
    feature, threshold = tree.feature, tree.threshold
    missing_left = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, np.uint8))

    def walk(i: int) -> tuple[str, int]:
        if left[i] == -1:
            return trees.leaf(float(weights[i]))
        f = int(feature[i]) if features is None else int(features[feature[i]])
        true, false = walk(int(left[i])), walk(int(right[i]))
        return trees.node(
            f, LEQ, float(threshold[i]), true, false, nan_aware and bool(missing_left[i])
        )

    trees.tree(walk(0))


def _tree_value(tree: Any) -> np.ndarray:
    """tree.value as [nodes, outputs] (one output, as predict gives it)."""
    value = np.asarray(tree.value)
    if value.shape[1] != 1:
        raise NotSupported("a tree with several outputs")
    return value[:, 0, :]


def _is_forest_member(model: Any) -> bool:
    """A tree with float32 comparisons, directly given the rows (not a bagged subset)."""
    return hasattr(model, "tree_") and hasattr(model.tree_, "children_left")


def sklearn_forest(w: Writer, x: str, model: Any, outputs: list[str]) -> None:
    """DecisionTree, RandomForest, ExtraTrees and Bagging of trees, classifiers and regressors.

    scikit-learn sums the trees' predict (a classifier's leaf value is its class fractions)
    from zeros in tree order, then divides by the number of trees; a single tree gives its
    leaf value. A bagged tree reads its own columns (estimators_features_); each was fitted
    with every class (Bagging weighs a tree's rows rather than drop them). Labels:
    classes_[argmax(proba)].
    """
    from sklearn.base import is_classifier

    single = hasattr(model, "tree_")
    members = [model] if single else list(model.estimators_)
    if not all(_is_forest_member(m) for m in members):
        raise NotSupported("an ensemble of other estimators than plain trees")
    if getattr(model, "n_outputs_", 1) != 1:
        raise NotSupported("several outputs")
    subsets = getattr(model, "estimators_features_", [None] * len(members))
    classifier = is_classifier(model)
    n_classes = int(model.n_classes_) if classifier else 1
    trees, rows, first = Trees(), [], 0
    for member, features in zip(members, subsets, strict=True):
        value = _tree_value(member.tree_)
        if not classifier:  # the leaf weight is the value
            _sklearn_tree(trees, member.tree_, value[:, 0], features)
            continue
        if len(member.classes_) != n_classes:  # a tree whose sample lacked a class
            raise NotSupported("a tree that saw only some classes")
        rows.append(value[:, :n_classes])  # node i's is row first + i of the table
        _sklearn_tree(
            trees, member.tree_, first + np.arange(len(value), dtype=np.float64), features
        )
        first += len(value)
    table = np.concatenate(rows) if classifier else None
    per_tree = _ensemble(w, _doubles(w, x, "float32"), trees)
    result = outputs[1] if classifier else outputs[0]
    if single:
        total = _sum_stages(w, per_tree, 1, n_classes, table=table, output=result)
    else:
        total = _sum_stages(w, per_tree, len(members), n_classes, table=table)
        count = w.const(np.array(float(len(members))))
        total = w.op("Div", [total, count], output=result)
    if classifier:
        argmax_labels(w, total, model.classes_, outputs[0])


def sklearn_gradient_boosting(w: Writer, x: str, model: Any, outputs: list[str]) -> None:
    """GradientBoostingClassifier and Regressor: raw = init, then `raw[k] += learning_rate *
    value` stage by stage (predict_stages); regression gives raw, a classifier class 1 where
    raw >= 0 (binary) or the first maximum of raw, probabilities through the loss's link."""
    from sklearn.base import is_classifier
    from sklearn.dummy import DummyClassifier, DummyRegressor

    if not (model.init_ == "zero" or type(model.init_) in (DummyClassifier, DummyRegressor)):
        raise NotSupported("an init estimator other than the default (or 'zero')")
    n_features = int(model.n_features_in_)
    init = model._raw_predict_init(np.zeros((1, n_features), dtype=np.float32))[0]
    stages, per_stage = model.estimators_.shape
    trees = Trees()
    for k in range(per_stage):
        trees.constant(float(init[k]))
    scale = float(model.learning_rate)
    for stage in model.estimators_:
        for member in stage:
            value = _tree_value(member.tree_)[:, 0]
            # the product predict_stages adds, rounded alike; it has no NaN rule (NaN > x)
            _sklearn_tree(trees, member.tree_, scale * value, nan_aware=False)
    per_tree = _ensemble(w, _doubles(w, x, "float32"), trees)
    if not is_classifier(model):
        _sum_stages(w, per_tree, stages + 1, per_stage, output=outputs[0])
        return
    raw = _sum_stages(w, per_tree, stages + 1, per_stage)
    link = type(model._loss.link).__name__
    if per_stage == 1:
        index = binary_index(w, w.op("GreaterOrEqual", [raw, w.const(np.array(0.0))], "ge"))
        take_classes(w, index, model.classes_, outputs[0])
        if link == "HalfLogitLink":  # the exponential loss: expit(2 * raw)
            raw = w.op("Mul", [raw, w.const(np.array(2.0))], "twice")
        elif link != "LogitLink":
            raise NotSupported(f"a binary loss with the {link}")
        _two_columns(w, _expit(w, raw), np.array(1.0), outputs[1])
    else:
        argmax_labels(w, raw, model.classes_, outputs[0])
        _softmax(w, raw, outputs[1])


def sklearn_hist_gradient_boosting(w: Writer, x: str, model: Any, outputs: list[str]) -> None:
    """HistGradientBoostingClassifier and Regressor: raw = baseline, then each iteration's
    trees added (their leaf values carry the learning rate); float64 comparisons, NaN and
    unknown categories as missing_go_to_left says. Regression: the link's inverse of raw; a
    classifier: class 1 where raw > 0 (binary) or the first maximum."""
    from sklearn.base import is_classifier

    n_features = int(model.n_features_in_)
    x = _doubles(w, x, "float64")
    columns = np.arange(n_features)  # the predictors' feature numbers as input columns
    if model._preprocessor is not None:  # categorical columns come first, ordinal-encoded
        categorical = np.flatnonzero(model.is_categorical_)
        encoder = model._preprocessor.named_transformers_["encoder"]
        codes = _ordinal_codes(w, x, categorical, encoder.categories_)
        x = w.op("Concat", [x, codes], "with_codes", axis=1)
        # the i-th categorical feature is read from its code, column n_features + i
        columns = np.concatenate(
            [n_features + np.arange(len(categorical)), np.flatnonzero(~model.is_categorical_)]
        )
    known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    per_stage = int(model.n_trees_per_iteration_)
    trees = Trees()
    for k in range(per_stage):
        trees.constant(float(np.asarray(model._baseline_prediction).reshape(-1)[k]))
    for iteration in model._predictors:
        for predictor in iteration:
            _hgb_tree(trees, predictor, columns, known, f_idx_map)
    per_tree = _ensemble(w, x, trees)
    stages = len(model._predictors) + 1
    link = type(model._loss.link).__name__
    if not is_classifier(model):
        if link == "IdentityLink":
            _sum_stages(w, per_tree, stages, per_stage, output=outputs[0])
        elif link == "LogLink":
            w.op("Exp", [_sum_stages(w, per_tree, stages, per_stage)], output=outputs[0])
        else:
            raise NotSupported(f"a regression loss with the {link}")
        return
    raw = _sum_stages(w, per_tree, stages, per_stage)
    if per_stage == 1:
        index = binary_index(w, w.op("Greater", [raw, w.const(np.array(0.0))], "gt"))
        take_classes(w, index, model.classes_, outputs[0])
        _two_columns(w, _expit(w, raw), np.array(1.0), outputs[1])
    else:
        argmax_labels(w, raw, model.classes_, outputs[0])
        _softmax(w, raw, outputs[1])


def _ordinal_codes(w: Writer, x: str, columns: np.ndarray, categories: Sequence[np.ndarray]) -> str:
    """[N, len(columns)]: each column's value as HistGradientBoosting's OrdinalEncoder codes
    it (its position among the categories, equal as floats are), or -1 for NaN and values it
    does not know (which sklearn codes NaN: both go where missing values go)."""
    width = max(len(c) for c in categories)
    table = np.full((len(columns), width), np.nan)
    for i, (column, values) in enumerate(zip(columns, categories, strict=True)):
        values = np.asarray(values)
        if column in w.coded:  # strings, given as their places among these categories
            values = np.arange(len(_strings_of(values)))
        elif values.dtype.kind not in "fiu":
            raise NotSupported("categories that are not numbers")
        values = values.astype(np.float64)
        table[i, : len(values)] = values  # a NaN category (missing values) never equals
    picked = w.op("Gather", [x, w.const(columns.astype(np.int64))], "categorical", axis=1)
    picked = w.op("Unsqueeze", [picked, w.const(np.array([2]))], "categorical")
    equal = w.op("Cast", [w.op("Equal", [picked, w.const(table, "categories")])], to=DOUBLE)
    position = w.op("ArgMax", [equal], "position", axis=2, keepdims=0)
    found = w.op("ReduceMax", [equal, w.const(np.array([2]))], "found", keepdims=0)
    known = w.op("Greater", [found, w.const(np.array(0.0))], "known")
    position = w.op("Cast", [position], "position", to=DOUBLE)
    return w.op("Where", [known, position, w.const(np.array(-1.0))], "codes")


def _bits(bitset: np.ndarray) -> list[int]:
    """The numbers 0..255 a scikit-learn bitset (8 uint32 words) holds."""
    return [v for v in range(256) if (int(bitset[v // 32]) >> (v % 32)) & 1]


def _hgb_tree(
    trees: Trees, predictor: Any, columns: np.ndarray, known: np.ndarray, f_idx_map: np.ndarray
) -> None:
    """One TreePredictor, as _predict_one_from_raw_data walks it. A categorical split reads
    the code (see _ordinal_codes): codes in the left bitset go left, the other codes the bin
    mapper knows go right, and the rest (-1 included) where missing values go."""
    nodes = predictor.nodes
    raw_left = predictor.raw_left_cat_bitsets

    def walk(i: int) -> tuple[str, int]:
        node = nodes[i]
        if node["is_leaf"]:
            return trees.leaf(float(node["value"]))
        f = int(node["feature_idx"])
        left, right = walk(int(node["left"])), walk(int(node["right"]))
        missing_left = bool(node["missing_go_to_left"])
        if not node["is_categorical"]:
            return trees.node(
                int(columns[f]), LEQ, float(node["num_threshold"]), left, right, missing_left
            )
        goes_left = _bits(raw_left[node["bitset_idx"]])
        if missing_left:  # right only for the known codes not in the left set
            goes_right = [c for c in _bits(known[f_idx_map[f]]) if c not in goes_left]
            return trees.node(int(columns[f]), MEMBER, 0.0, right, left, False, goes_right)
        return trees.node(int(columns[f]), MEMBER, 0.0, left, right, False, goes_left)

    trees.tree(walk(0))


def sklearn_isolation_forest(w: Writer, x: str, model: Any, outputs: list[str]) -> None:
    """IsolationForest: depths summed from zeros in tree order (each leaf's depth + average
    path length - 1.0, as _parallel_compute_tree_depths adds), score_samples =
    -(2 ** -(depths / denominator)), decision_function = score_samples - offset_; predict
    is -1 below the depth where the estimator's own decision_function turns negative."""
    from sklearn.ensemble._iforest import _average_path_length

    n_features = int(model.n_features_in_)
    subsample = model._max_features != n_features
    trees = Trees()
    for t, (member, features) in enumerate(
        zip(model.estimators_, model.estimators_features_, strict=True)
    ):
        depth = model._decision_path_lengths[t] + model._average_path_length_per_tree[t] - 1.0
        _sklearn_tree(trees, member.tree_, depth, np.asarray(features) if subsample else None)
    per_tree = _ensemble(w, _doubles(w, x, "float32"), trees)
    depths = _sum_stages(w, per_tree, len(model.estimators_), 1)
    denominator = float((len(model.estimators_) * _average_path_length([model._max_samples]))[0])
    if denominator != 0:
        ratio = w.op("Div", [depths, w.const(np.array(denominator))], "ratio")
    else:
        ratio = w.op(
            "Add", [w.op("Mul", [depths, w.const(np.array(0.0))]), w.const(np.array(1.0))], "ratio"
        )
    score = w.op("Pow", [w.const(np.array(2.0)), w.op("Neg", [ratio], "neg")], "pow")
    score = w.op("Neg", [score], "score_samples", output=outputs[2] if len(outputs) > 2 else None)
    w.op("Sub", [score, w.const(np.array(float(model.offset_)))], output=outputs[1])
    limit = _isolation_limit(model, denominator)
    outlier = w.op("Less", [depths, w.const(np.array(limit))], "outlier")
    label = w.op(
        "Where", [outlier, w.const(np.array(-1, np.int64)), w.const(np.array(1, np.int64))]
    )
    w.op("Reshape", [label, w.const(np.array([-1]))], output=outputs[0])


def sklearn_adaboost_classifier(w: Writer, x: str, model: Any, outputs: list[str]) -> None:
    """AdaBoostClassifier (SAMME) of trees: each tree votes its predicted class, weighing w
    there and -w / (K - 1) elsewhere, the votes summed from the first in tree order and
    divided by the weights' sum (decision_function); labels by the decision's sign (two
    classes) or its first maximum; probabilities softmax([-d, d] / 2) or softmax(d / (K - 1))."""
    members = list(model.estimators_)
    if getattr(model, "algorithm", "SAMME") != "SAMME":
        raise NotSupported(f"the algorithm {model.algorithm}")
    if not all(_is_forest_member(m) for m in members):
        raise NotSupported("an ensemble of other estimators than plain trees")
    n_classes = int(model.n_classes_)
    if n_classes < 2:
        raise NotSupported("a single class")
    classes = np.asarray(model.classes_)
    trees, rows, first = Trees(), [], 0
    for member, weight in zip(members, model.estimator_weights_, strict=False):
        if not np.array_equal(np.asarray(member.classes_), classes):
            raise NotSupported("a tree with other classes than the ensemble's")
        voted = np.argmax(_tree_value(member.tree_)[:, :n_classes], axis=1)  # as its predict
        votes = np.arange(n_classes) == voted[:, np.newaxis]
        rows.append(np.where(votes, weight, -1 / (n_classes - 1) * weight))  # as the estimator
        _sklearn_tree(trees, member.tree_, first + np.arange(len(voted), dtype=np.float64))
        first += len(voted)
    per_tree = _ensemble(w, _doubles(w, x, "float32"), trees)
    total = _sum_stages(w, per_tree, len(members), n_classes, table=np.concatenate(rows))
    weights = w.const(np.array(model.estimator_weights_.sum()))  # numpy's own sum
    decision = w.op("Div", [total, weights], "decision")
    if n_classes == 2:  # -d0 + d1, and the probabilities' softmax of [-d, d] / 2
        pick = [w.op("Gather", [decision, w.const(np.array([c]))], "d", axis=1) for c in (0, 1)]
        decision = w.op("Sub", [pick[1], pick[0]], "decision")
        index = binary_index(w, w.op("Greater", [decision, w.const(np.array(0.0))], "gt"))
        take_classes(w, index, classes, outputs[0])
        both = w.op("Concat", [w.op("Neg", [decision], "neg"), decision], "both", axis=1)
        _softmax(w, w.op("Div", [both, w.const(np.array(2.0))], "halves"), outputs[1])
        return
    argmax_labels(w, decision, classes, outputs[0])
    scaled = w.op("Div", [decision, w.const(np.array(float(n_classes - 1)))], "scaled")
    _softmax(w, scaled, outputs[1])


def sklearn_adaboost_regressor(w: Writer, x: str, model: Any, outputs: list[str]) -> None:
    """AdaBoostRegressor of trees: the weighted median of the trees' predictions. Sorted per
    row (ties in tree order; numpy's sort may order tied trees otherwise, which changes the
    value only if the weights' running sum meets half their total within a tie, at the last
    bit), the weights summed in that order, the first prediction whose running sum reaches
    half the total."""
    members = list(model.estimators_)
    if not all(_is_forest_member(m) for m in members):
        raise NotSupported("an ensemble of other estimators than plain trees")
    trees = Trees()
    for member in members:
        _sklearn_tree(trees, member.tree_, _tree_value(member.tree_)[:, 0])
    per_tree = _ensemble(w, _doubles(w, x, "float32"), trees)
    count = w.const(np.array([len(members)]))
    named = [w.fresh("sorted"), w.fresh("order")]
    ordered, order = w.ops("TopK", [per_tree, count], named, axis=1, largest=0, sorted=1)
    weights = w.const(np.asarray(model.estimator_weights_[: len(members)], np.float64), "w")
    running = w.op("CumSum", [w.op("Gather", [weights, order], axis=0), w.const(np.array(1))])
    total = w.op("Gather", [running, w.const(np.array([len(members) - 1]))], "total", axis=1)
    half = w.op("Mul", [w.const(np.array(0.5)), total], "half")
    reached = w.op("Cast", [w.op("GreaterOrEqual", [running, half])], "reached", to=INT64)
    median = w.op("ArgMax", [reached], "median", axis=1, keepdims=1, select_last_index=0)
    w.op("GatherElements", [ordered, median], output=outputs[0], axis=1)


def _isolation_limit(model: Any, denominator: float) -> float:
    """The least summed depth the estimator calls an inlier (decision_function >= 0), found
    with the estimator's own arithmetic; rows below it are outliers."""

    def inlier(depth: float) -> bool:
        depths = np.full(64, depth)  # numpy's vector loop, as on a batch
        den = np.array([denominator])
        scores = -(2 ** (-np.divide(depths, den, out=np.ones_like(depths), where=den != 0)))
        decisions = scores - model.offset_
        return bool(np.all(decisions >= 0))

    return _first_true(inlier)


def _first_true(test: Callable[[float], bool]) -> float:
    """The least float64 for which the monotone `test` holds (inf if none, -inf if all)."""

    def key(v: float) -> int:  # float64 in order as integers
        i = int(np.array(v).view(np.int64))
        return i if i >= 0 else -(i & 0x7FFFFFFFFFFFFFFF)

    def value(k: int) -> float:
        i = k if k >= 0 else (-k) | -0x8000000000000000
        return float(np.array(i, dtype=np.int64).view(np.float64))

    if test(-math.inf):
        return -math.inf
    if not test(math.inf):
        return math.inf
    low, high = key(-math.inf), key(math.inf)  # test(low) is false, test(high) true
    while high - low > 1:
        middle = (low + high) // 2
        if test(value(middle)):
            high = middle
        else:
            low = middle
    return value(high)


# -- XGBoost --------------------------------------------------------------------------------


XGBOOST_IDENTITY = (
    *("reg:squarederror", "reg:squaredlogerror", "reg:absoluteerror", "reg:pseudohubererror"),
    "reg:quantileerror",
)
XGBOOST_EXP = ("count:poisson", "reg:gamma", "reg:tweedie")  # margins are logarithms
XGBOOST_SIGMOID = ("binary:logistic", "reg:logistic")


def xgboost_model(w: Writer, x: str, model: Any, outputs: list[str]) -> None:
    """XGBClassifier and XGBRegressor, and their random forests (gbtree or dart): float32
    throughout, as XGBoost predicts: `x < split` goes left, NaN the default way, a category
    (a pandas category's code, see _joined_columns) by its set; margin = base_score + trees
    added one by one in float32 (dart's leaves weighed, see _dart_leaf); then the objective's
    transform: none, expf(m) for the log-link regressions, the sigmoid 1 / (expf(-m) + 1 +
    1e-16f), multi:softprob's softmax (expf, a float64 sum, a float32 division); classes as
    XGBClassifier takes them."""
    if not (isinstance(model.missing, float) and math.isnan(model.missing)):
        raise NotSupported("a missing value other than NaN")
    booster = model.get_booster()
    dump = json.loads(bytes(booster.save_raw(raw_format="json")))
    learner = dump["learner"]
    objective = learner["objective"]["name"]
    if objective not in (*XGBOOST_IDENTITY, *XGBOOST_EXP, *XGBOOST_SIGMOID, "multi:softprob"):
        raise NotSupported(f"the objective {objective}")
    gbm = learner["gradient_booster"]
    dart = gbm["name"] == "dart"
    if dart:
        weights = gbm["weight_drop"]
        gbm = gbm["gbtree"]
    elif gbm["name"] != "gbtree":
        raise NotSupported(f"the {gbm['name']} booster")
    trees_json = gbm["model"]["trees"]
    groups = [int(g) for g in gbm["model"]["tree_info"]]
    if any(int(t["tree_param"].get("size_leaf_vector", "1")) > 1 for t in trees_json):
        raise NotSupported("multi-output trees")
    n_groups = max(groups) + 1
    if n_groups > 1 and objective != "multi:softprob":
        raise NotSupported("several outputs")
    try:  # after early stopping, predict stops at the best iteration
        end = int(gbm["model"]["iteration_indptr"][int(model.best_iteration) + 1])
        trees_json, groups = trees_json[:end], groups[:end]
    except AttributeError:
        pass
    if dart and "c" in (booster.feature_types or []):
        raise NotSupported("the dart booster with categorical features")
    counts = [groups.count(k) for k in range(n_groups)]
    if len(set(counts)) != 1:
        raise NotSupported("classes with different numbers of trees")
    per_round = n_groups * int(gbm["model"]["gbtree_model_param"]["num_parallel_tree"])
    weighed = [float(v) for v in weights[: len(trees_json)]] if dart else None
    base = _xgboost_base_margin(booster, objective, trees_json, groups, per_round, weighed)
    if weighed is not None:
        trees_json = [
            _weighted_leaves(t, w, base[k])
            for t, w, k in zip(trees_json, weighed, groups, strict=True)
        ]
    n_features = int(booster.num_features())
    trees = Trees()
    for k in range(n_groups):
        trees.constant(float(base[k]), k)
    seen = [0] * n_groups
    categorical = False
    for tree, k in zip(trees_json, groups, strict=True):
        seen[k] += 1
        categorical |= _xgboost_tree(trees, tree, seen[k] * n_groups + k, n_features)
    per_tree = _ensemble(w, _xgboost_features(w, x, categorical), trees)
    if objective in XGBOOST_IDENTITY:
        _sum_stages(w, per_tree, counts[0] + 1, n_groups, np.float32, output=outputs[0])
        return
    margin = _sum_stages(w, per_tree, counts[0] + 1, n_groups, np.float32)
    if objective in XGBOOST_EXP:
        w.op("Identity", [_xgboost_exp(w, margin)], output=outputs[0])
    elif objective == "reg:logistic":
        w.op("Identity", [_xgboost_sigmoid(w, margin)], output=outputs[0])
    elif objective == "binary:logistic":
        p = _xgboost_sigmoid(w, margin)
        index = binary_index(w, w.op("Greater", [p, w.const(np.float32(0.5))], "gt"))
        take_classes(w, index, model.classes_, outputs[0])
        _two_columns(w, p, np.array(1.0, np.float32), outputs[1])
    else:
        proba = _xgboost_softmax(w, margin, n_groups, outputs[1])
        argmax_labels(w, proba, model.classes_, outputs[0])


def _xgboost_features(w: Writer, x: str, categorical: bool) -> str:
    """[N, F]: the features as float32 values (in float64), and [N, 2F] with each value's
    category appended where splits are categorical: its integer part (AsCat's cast) for
    values from zero, -1 below (an invalid category, which no set holds), NaN for NaN."""
    x = _doubles(w, x, "float32")
    if not categorical:
        return x
    negative = w.op("Less", [x, w.const(np.array(0.0))], "negative")
    category = w.op("Where", [negative, w.const(np.array(-1.0)), w.op("Floor", [x])], "category")
    return w.op("Concat", [x, category], "with_categories", axis=1)


def _weighted_leaves(tree: dict[str, Any], weight: float, base: np.float32) -> dict[str, Any]:
    """A dart tree with each leaf's value (its split_conditions entry) as the estimator's
    predict adds it (see _dart_leaf)."""
    leaf = np.asarray(tree["left_children"]) == -1
    values = np.asarray(tree["split_conditions"], np.float32)
    values = np.where(leaf, _dart_leaf(values, base, weight), values)
    return {**tree, "split_conditions": values.tolist()}


def _dart_leaf(value: np.ndarray, base: np.float32, weight: float) -> np.ndarray:
    """What Dart::InplacePredict (the scikit-learn API's predict) adds for a leaf: the tree
    predicted from the starting margin, which is taken off again, times the tree's weight,
    in float32: ((base + value) - base) * weight. (A DMatrix's predict adds value * weight.)"""
    return ((base + value) - base) * np.float32(weight)


def _xgboost_tree(trees: Trees, tree: dict[str, Any], target: int, n_features: int) -> bool:
    """One tree of the saved model, as GetNextNode walks it: NaN the default way, `x < split`
    left, a categorical split's categories right and every other category left (its
    category read from column n_features + feature, see _xgboost_features). True if it has
    a categorical split."""
    left, right = tree["left_children"], tree["right_children"]
    index, cond = tree["split_indices"], tree["split_conditions"]
    default_left = tree["default_left"]
    kinds = tree.get("split_type", [0] * len(left))
    if any(t not in (0, 1) for t in kinds):
        raise NotSupported("a split type of XGBoost's other than numerical and categorical")
    categories = tree.get("categories", [])
    members = {
        int(node): sorted(float(c) for c in categories[start : start + size])
        for node, start, size in zip(
            tree.get("categories_nodes", []),
            tree.get("categories_segments", []),
            tree.get("categories_sizes", []),
            strict=True,
        )
    }

    def walk(i: int) -> tuple[str, int]:
        if left[i] == -1:
            return trees.leaf(float(np.float32(cond[i])))
        to_left, to_right = walk(left[i]), walk(right[i])
        nan_left = bool(default_left[i])
        if kinds[i] == 1:
            chosen = members.get(i, [])
            f = n_features + index[i]
            return trees.node(f, MEMBER, 0.0, to_right, to_left, not nan_left, chosen)
        return trees.node(index[i], LT, float(np.float32(cond[i])), to_left, to_right, nan_left)

    trees.tree(walk(0), target)
    return 1 in kinds


def _xgboost_base_margin(
    booster: Any,
    objective: str,
    trees: list[dict[str, Any]],
    groups: list[int],
    per_round: int,
    weights: list[float] | None = None,
) -> np.ndarray:
    """The float32 margins XGBoost starts from (base_score through the objective's link, in
    float32: -logf(1.0f / p - 1.0f) for the sigmoid's, logf(p) for the log link's). Taken
    from XGBoost itself: of the floats near that formula, the one whose float32 sums give
    XGBoost's own margins bit for bit, after the first iteration and after all, on probe rows
    (the margins the scikit-learn API predicts from: a dart booster's, with each tree's
    `weights`, differ from a DMatrix's)."""
    n_groups = max(groups) + 1
    config = json.loads(booster.save_config())["learner"]
    scores = np.atleast_1d(np.array(json.loads(config["learner_model_param"]["base_score"])))
    scores = np.broadcast_to(scores.astype(np.float32), (n_groups,))
    if objective in XGBOOST_SIGMOID:
        one = np.float32(1.0)
        p = np.clip(scores, np.float32(1e-6), one - np.float32(1e-6))
        guess = -np.log((one / p - one).astype(np.float64)).astype(np.float32)
    elif objective in XGBOOST_EXP:
        tiny = np.finfo(np.float32).tiny
        guess = np.log(np.maximum(scores, tiny).astype(np.float64)).astype(np.float32)
    else:
        guess = scores
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(256, int(booster.num_features()))).astype(np.float32)
    for f, kind in enumerate(booster.feature_types or []):
        if kind == "c":  # a category's code
            rows[:, f] = rng.integers(0, 8, len(rows))
    rows[rng.random(rows.shape) < 0.1] = np.nan
    probe = _dmatrix(rows, booster)
    leaves = booster.predict(probe, pred_leaf=True).astype(np.int64)
    leaves = leaves.reshape(len(rows), -1)
    values = [
        np.asarray(t["split_conditions"], np.float32)[leaves[:, i]] for i, t in enumerate(trees)
    ]
    checks = []  # (how many trees, XGBoost's margins)
    for end in (per_round, len(trees)):
        rounds = (0, end // per_round)
        if weights is None:
            margins = booster.predict(probe, output_margin=True, iteration_range=rounds)
        else:
            margins = booster.inplace_predict(rows, predict_type="margin", iteration_range=rounds)
        checks.append((end, np.asarray(margins, np.float32).reshape(len(rows), n_groups)))
    base = np.empty(n_groups, np.float32)
    for k in range(n_groups):
        up = down = guess[k]
        candidates = [guess[k]]
        for _ in range(64):
            up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(-np.inf))
            candidates += [up, down]
        for candidate in candidates:  # nearest first
            if all(
                _float32_sum(candidate, values, groups, k, end, weights) == margins[:, k].tobytes()
                for end, margins in checks
            ):
                base[k] = candidate
                break
        else:
            raise NotSupported("XGBoost's starting margin could not be reproduced")
    return base


def _float32_sum(
    start: np.float32,
    values: list[np.ndarray],
    groups: list[int],
    k: int,
    end: int,
    weights: list[float] | None,
) -> bytes:
    total = np.full(len(values[0]), start, np.float32)
    for t in range(end):
        if groups[t] == k:
            added = values[t] if weights is None else _dart_leaf(values[t], start, weights[t])
            total = total + added
    return total.tobytes()


def _dmatrix(rows: np.ndarray, booster: Any) -> Any:
    """The rows for the booster, under its features' names and types (a category's codes)."""
    return importlib.import_module("xgboost").DMatrix(
        rows,
        feature_names=booster.feature_names,
        feature_types=booster.feature_types,
        enable_categorical=True,
    )


# glibc's expf (sysdeps/ieee754/flt-32/e_expf.c): x = (k + r) ln2 / 32, expf(x) = 2^(k/32) *
# (C2 r + 1 + (C0 r + C1) r^2) in float64, rounded to float32. Its constants: 2^(i/32)
# correctly rounded, 1/ln2 and the polynomial in hexadecimal, as glibc writes them.
EXPF_N = 32
EXPF_INVLN2 = float.fromhex("0x1.71547652b82fep+0") * EXPF_N
EXPF_C0 = float.fromhex("0x1.c6af84b912394p-5") / EXPF_N**3
EXPF_C1 = float.fromhex("0x1.ebfce50fac4f3p-3") / EXPF_N**2
EXPF_C2 = float.fromhex("0x1.62e42ff0c52d6p-1") / EXPF_N
EXPF_LOWEST = -151  # 2^(k/32) down to exp(-104), below which expf is 0 in float32


def _two_to_the_32nds() -> np.ndarray:
    from decimal import Decimal, localcontext

    with localcontext() as context:
        context.prec = 50
        return np.array([float(Decimal(2) ** (Decimal(i) / EXPF_N)) for i in range(EXPF_N)])


def _expf_scales() -> np.ndarray:
    """glibc's scale 2^(k/32) for each k from 32 * EXPF_LOWEST up to 2^128's: its table's
    entry for k mod 32 with k div 32 added to the exponent, which is that entry times 2 to
    the k div 32, exact in float64. One lookup in place of the two and their product."""
    k = np.arange(EXPF_LOWEST * EXPF_N, 129 * EXPF_N)
    return _two_to_the_32nds()[k % EXPF_N] * 2.0 ** (k // EXPF_N)


def _float_exp(w: Writer, x: str) -> str:
    """expf(x) for float32 x <= 88.7 as glibc computes it, operation for operation (a plain
    float64 exp rounded to float32 differs from it in the last bit now and then: `python -m
    bench.trees` counts both against glibc's own)."""
    xd = w.op("Max", [w.op("Cast", [x], "x64", to=DOUBLE), w.const(np.array(-104.0))], "x64")
    z = w.op("Mul", [xd, w.const(np.array(EXPF_INVLN2))], "z")
    kd = w.op("Round", [z], "kd")  # half to even, as glibc's shift trick rounds
    r = w.op("Sub", [z, kd], "r")
    k = w.op("Cast", [kd], "k", to=INT64)
    row = w.op("Add", [k, w.const(np.array(-EXPF_LOWEST * EXPF_N))], "row")
    scale = w.op("Gather", [w.const(_expf_scales(), "scales"), row], "scale", axis=0)
    c = w.op("Add", [w.op("Mul", [r, w.const(np.array(EXPF_C0))]), w.const(np.array(EXPF_C1))])
    y = w.op("Add", [w.op("Mul", [r, w.const(np.array(EXPF_C2))]), w.const(np.array(1.0))])
    y = w.op("Add", [w.op("Mul", [c, w.op("Mul", [r, r], "r2")]), y], "poly")
    return w.op("Cast", [w.op("Mul", [y, scale], "exp64")], "exp32", to=FLOAT)


def _xgboost_exp(w: Writer, margin: str) -> str:
    """expf(margin) for any float32 margin: above 88.72 expf overflows to inf, and so does
    89's, which stands in for them (_float_exp's tables end there)."""
    return _float_exp(w, w.op("Min", [margin, w.const(np.float32(89.0))], "capped"))


def _xgboost_sigmoid(w: Writer, margin: str) -> str:
    """common::Sigmoid(float): 1.0f / (expf(min(-x, 88.7f)) + 1.0f + 1e-16f)."""
    neg = w.op("Min", [w.op("Neg", [margin], "neg"), w.const(np.float32(88.7))], "clip")
    denominator = w.op("Add", [_float_exp(w, neg), w.const(np.float32(1.0))], "den")
    denominator = w.op("Add", [denominator, w.const(np.float32(1e-16))], "den")
    return w.op("Div", [w.const(np.float32(1.0)), denominator], "p")


def _xgboost_softmax(w: Writer, margin: str, n: int, output: str) -> str:
    """common::Softmax: expf(x - max) in float32, their sum in float64 in class order, each
    divided by that sum rounded to float32."""
    top = w.op("ReduceMax", [margin, w.const(np.array([1]))], "max", keepdims=1)
    e = _float_exp(w, w.op("Sub", [margin, top], "shifted"))
    running = w.op("CumSum", [w.op("Cast", [e], "e64", to=DOUBLE), w.const(np.array(1))])
    total = w.op("Gather", [running, w.const(np.array([n - 1]))], "total", axis=1)
    return w.op("Div", [e, w.op("Cast", [total], "total32", to=FLOAT)], output=output)


# -- LightGBM -------------------------------------------------------------------------------


LIGHTGBM_IDENTITY = ("regression", "regression_l1", "huber", "fair", "quantile", "mape")
LIGHTGBM_EXP = ("poisson", "gamma", "tweedie")
LIGHTGBM_SIGMOID = ("binary", "multiclassova")


def lightgbm_model(w: Writer, x: str, model: Any, outputs: list[str]) -> None:
    """LGBMClassifier and LGBMRegressor (gbdt): float64, as LightGBM predicts: a value within
    1e-35 of zero is zero, `x <= threshold` goes left, missing values by missing_type and
    default_left, categories by their integer part (a pandas category's strings become
    their codes first, see _joined_columns); raw = trees added in order from zero;
    divided by the number of iterations in random forest mode; sigmoid 1 / (1 + exp(-raw))
    (each class's, one-vs-all) or softmax; labels the first maximum of predict_proba."""
    dump = model.booster_.dump_model()
    described = str(dump.get("objective", ""))
    objective = described.split(" ")[0]
    if objective not in (*LIGHTGBM_IDENTITY, *LIGHTGBM_EXP, *LIGHTGBM_SIGMOID, "multiclass"):
        raise NotSupported(f"the objective {objective}")
    if "sqrt" in described.split(" "):
        raise NotSupported("a regression on the square root")
    per_stage = int(dump["num_tree_per_iteration"])
    tree_info = dump["tree_info"]
    best = int(model.booster_.best_iteration or 0)  # predict stops there if it is set
    if best > 0:
        tree_info = tree_info[: best * per_stage]
    n_features = int(dump["max_feature_idx"]) + 1
    thresholds = _lightgbm_thresholds(model.booster_)
    trees = Trees()
    categorical = False
    for info in tree_info:
        splits = thresholds[int(info["tree_index"])]
        categorical |= _lightgbm_tree(trees, info["tree_structure"], n_features, splits)
    per_tree = _ensemble(w, _lightgbm_features(w, x, categorical), trees)
    stages = len(tree_info) // per_stage
    average = dump.get("average_output")  # random forest mode
    if objective in LIGHTGBM_IDENTITY and not average:
        _sum_stages(w, per_tree, stages, per_stage, output=outputs[0])
        return
    raw = _sum_stages(w, per_tree, stages, per_stage)
    if average:  # GBDT::Predict divides the sum by the iterations
        raw = w.op("Div", [raw, w.const(np.array(float(stages)))], "average")
    if objective in LIGHTGBM_IDENTITY:
        w.op("Identity", [raw], output=outputs[0])
        return
    if objective in LIGHTGBM_EXP:
        w.op("Exp", [raw], output=outputs[0])
        return
    if objective in LIGHTGBM_SIGMOID:
        sigmoid = _lightgbm_sigmoid(described)
        if sigmoid != 1.0:
            raw = w.op("Mul", [raw, w.const(np.array(sigmoid))], "scaled")
        if objective == "binary":
            proba = _two_columns(w, _expit(w, raw), np.array(1.0), outputs[1])
        else:  # one sigmoid per class, not normalised
            proba = w.op("Identity", [_expit(w, raw)], output=outputs[1])
    else:
        proba = _softmax(w, raw, outputs[1])
    argmax_labels(w, proba, model.classes_, outputs[0])


def _lightgbm_sigmoid(described: str) -> float:
    for part in described.split(" "):
        if part.startswith("sigmoid:"):
            return float(part.split(":")[1])
    return 1.0


def _lightgbm_features(w: Writer, x: str, categorical: bool) -> str:
    """[N, F] with values within 1e-35 of zero set to zero (LightGBM drops them from the row
    it predicts), and [N, 2F] with each value's category appended where splits are
    categorical: its integer part (C's cast) for values above -1, else -1 (never in a set)."""
    x = _doubles(w, x, "float64")
    small = w.op("LessOrEqual", [w.op("Abs", [x]), w.const(np.array(LIGHTGBM_ZERO))], "small")
    x = w.op("Where", [small, w.const(np.array(0.0)), x], "zeroed")
    if not categorical:
        return x
    above = w.op("Greater", [x, w.const(np.array(-1.0))], "above")
    whole = w.op("Floor", [w.op("Abs", [x])], "whole")
    category = w.op("Where", [above, whole, w.const(np.array(-1.0))], "category")
    return w.op("Concat", [x, category], "with_categories", axis=1)


def _lightgbm_thresholds(booster: Any) -> list[list[float]]:
    """Each tree's thresholds by split index, as LightGBM compares with them. dump_model()
    writes those beyond 1e300 as 1e300 (Common::AvoidInf), an infinite one among them (the
    split of NaN from every number); the model's text writes them as they are."""
    found = []
    for tree in booster.model_to_string().split("\nTree=")[1:]:
        line = next((t for t in tree.splitlines() if t.startswith("threshold=")), "threshold=")
        found.append([float(v) for v in line.removeprefix("threshold=").split()])
    return found


def _lightgbm_tree(
    trees: Trees, root: dict[str, Any], n_features: int, thresholds: list[float]
) -> bool:
    """One tree of dump_model(), as Tree::NumericalDecision and CategoricalDecision walk it
    (features already zeroed, see _lightgbm_features), its numerical splits at `thresholds`
    (see _lightgbm_thresholds). True if it has a categorical split."""
    categorical = False

    def walk(node: dict[str, Any]) -> tuple[str, int]:
        nonlocal categorical
        if "leaf_coeff" in node:  # a linear tree's leaf: a model of the features, not a value
            raise NotSupported("linear trees")
        if "leaf_value" in node:
            return trees.leaf(float(node["leaf_value"]))
        f = int(node["split_feature"])
        left, right = walk(node["left_child"]), walk(node["right_child"])
        if node["decision_type"] == "==":
            categorical = True
            members = sorted(float(int(c)) for c in str(node["threshold"]).split("||"))
            # NaN goes right (category -1 for NaN is never a member)
            return trees.node(n_features + f, MEMBER, 0.0, left, right, False, members)
        if node["decision_type"] != "<=":
            raise NotSupported(f"the decision type {node['decision_type']}")
        threshold = thresholds[int(node["split_index"])]
        default_left = bool(node["default_left"])
        missing = node["missing_type"]
        if missing == "NaN":
            return trees.node(f, LEQ, threshold, left, right, default_left)
        if missing == "None":  # NaN is taken for zero
            return trees.node(f, LEQ, threshold, left, right, 0.0 <= threshold)
        if missing != "Zero":
            raise NotSupported(f"the missing type {missing}")
        # zero (and NaN, taken for zero) goes the default way, other values by the threshold
        compare = trees.node(f, LEQ, threshold, left, right, default_left)
        if (0.0 <= threshold) == default_left:
            return compare
        # onnxruntime refuses a node with two parents: the default side is written twice
        zero = walk(node["left_child"] if default_left else node["right_child"])
        return trees.node(f, EQ, 0.0, zero, compare, True)

    trees.tree(walk(root))
    return categorical


# -- Registration with skl2onnx -------------------------------------------------------------


Converter = Callable[[Writer, str, Any, list[str]], None]


def _converters() -> dict[type, tuple[str, Converter]]:
    """Every model class with an exact graph here, with its converter (those of XGBoost and
    LightGBM only where they are installed)."""
    from sklearn import ensemble, tree

    table: dict[type, tuple[str, Converter]] = {}
    for cls in (
        tree.DecisionTreeClassifier,
        tree.DecisionTreeRegressor,
        tree.ExtraTreeClassifier,
        tree.ExtraTreeRegressor,
        ensemble.RandomForestClassifier,
        ensemble.RandomForestRegressor,
        ensemble.ExtraTreesClassifier,
        ensemble.ExtraTreesRegressor,
        ensemble.BaggingClassifier,
        ensemble.BaggingRegressor,
    ):
        table[cls] = ("forest", sklearn_forest)
    for cls in (ensemble.GradientBoostingClassifier, ensemble.GradientBoostingRegressor):
        table[cls] = ("gradient_boosting", sklearn_gradient_boosting)
    for cls in (ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor):
        table[cls] = ("hist_gradient_boosting", sklearn_hist_gradient_boosting)
    table[ensemble.IsolationForest] = ("isolation_forest", sklearn_isolation_forest)
    table[ensemble.AdaBoostClassifier] = ("adaboost", sklearn_adaboost_classifier)
    table[ensemble.AdaBoostRegressor] = ("adaboost", sklearn_adaboost_regressor)
    for package, kind, convert in (
        ("xgboost", "XGB", xgboost_model),
        ("lightgbm", "LGBM", lightgbm_model),
    ):
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue
        for task in ("Classifier", "Regressor", "RFClassifier", "RFRegressor"):
            if hasattr(module, kind + task):  # XGBoost's random forests; LightGBM's are a mode
                table[getattr(module, kind + task)] = (package, convert)
    return table


def supported(model: Any) -> bool:
    """Whether `model`'s class has an exact converter here."""
    return type(model) in _converters()


def compares_float32(model: Any) -> bool:
    """Whether `model` is one whose library compares float32 features (its graph then takes
    float32 as it is; HistGradientBoosting and LightGBM compare float64)."""
    kind = _converters().get(type(model), ("", None))[0]
    return kind in ("forest", "gradient_boosting", "isolation_forest", "adaboost", "xgboost")


def _output_type(model: Any) -> Any:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    return FloatTensorType if _converters()[type(model)][0] == "xgboost" else DoubleTensorType


def _shape_calculator(operator: Any) -> None:
    from skl2onnx.common.data_types import Int64TensorType
    from sklearn.base import is_classifier

    model = operator.raw_operator
    number = _output_type(model)
    n = operator.inputs[0].get_first_dimension()
    if type(model).__name__ == "IsolationForest":
        operator.outputs[0].type = Int64TensorType([n])
        for output in operator.outputs[1:]:
            output.type = number([n, 1])
    elif is_classifier(model):
        operator.outputs[0].type = label_type(model.classes_, n)
        operator.outputs[1].type = number([n, len(model.classes_)])
    else:
        operator.outputs[0].type = number([n, 1])


def _skl2onnx_converter(scope: Any, operator: Any, container: Any) -> None:
    model = operator.raw_operator
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    _, convert = _converters()[type(model)]
    x = operator.inputs[0]
    if len(operator.inputs) == 1 and not isinstance(x.type, StringTensorType):
        known = {FloatTensorType: FLOAT, DoubleTensorType: DOUBLE}.get(type(x.type))
        w = Writer(scope, container, {x.full_name: known} if known else None)
        matrix = x.full_name
    else:  # one input per feature
        w = Writer(scope, container)
        matrix = _joined_columns(w, operator.inputs, model)
        w.types[matrix] = DOUBLE
    convert(w, matrix, model, [o.full_name for o in operator.outputs])


def pandas_categories(estimator: Any, names: list[str]) -> dict[str, tuple[str, ...]]:
    """The columns XGBoost or LightGBM was fitted on as pandas categories, with their
    categories in order (what the codes it learnt mean), which a CSV table cannot tell."""
    if hasattr(estimator, "get_booster"):
        found = _xgboost_categories(estimator.get_booster(), names)
    elif hasattr(getattr(estimator, "booster_", None), "pandas_categorical"):
        booster = estimator.booster_
        kept = booster.pandas_categorical or []
        infos = booster.dump_model()["feature_infos"]
        columns = [n for n in names if infos.get(n, {}).get("values")]  # its categorical ones
        if len(columns) != len(kept):
            raise NotSupported("cannot tell which of LightGBM's columns are categories")
        found = dict(zip(columns, kept, strict=True))
    else:
        return {}
    if not all(isinstance(v, str) for values in found.values() for v in values):
        raise NotSupported("only pandas categories of strings are supported")
    return {name: tuple(values) for name, values in found.items()}


def string_categories(model: Any, names: list[str]) -> dict[str, tuple[str, ...]]:
    """The columns `model` takes as strings, each with its strings in the order of the codes
    the model learnt (a string's code is its place): XGBoost's and LightGBM's pandas
    categories, and HistGradientBoosting's categorical columns of strings."""
    if getattr(model, "_preprocessor", None) is None or not hasattr(model, "is_categorical_"):
        return pandas_categories(model, names)
    # HistGradientBoosting: its OrdinalEncoder's categories (what it saw, sorted); any other
    # string, and a missing value, it codes NaN, which goes where missing values go
    encoder = model._preprocessor.named_transformers_["encoder"]
    columns = np.flatnonzero(model.is_categorical_)
    found = {}
    for column, values in zip(columns, encoder.categories_, strict=True):
        if np.asarray(values).dtype.kind not in "fiu":
            found[names[column]] = _strings_of(values)
    return found


def _strings_of(categories: Any) -> tuple[str, ...]:
    """An OrdinalEncoder's categories of strings, without the NaN it keeps last for missing
    values (which no string is coded as)."""
    values = list(categories)
    if values and not isinstance(values[-1], str) and values[-1] != values[-1]:
        values.pop()
    if not values or not all(isinstance(v, str) for v in values):
        raise NotSupported("categories that are neither all numbers nor all strings")
    return tuple(values)


def _xgboost_categories(booster: Any, names: list[str]) -> dict[str, list[Any]]:
    """XGBoost's categorical features' categories, from the model it saves: each feature's
    strings as UTF-8 bytes between offsets."""
    kinds = booster.feature_types or []
    if "c" not in kinds:
        return {}
    model = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]
    if "cats" not in model:
        raise NotSupported("this XGBoost does not save its categories in the model: upgrade it")
    found = {}
    for name, kind, enc in zip(names, kinds, model["cats"]["enc"], strict=True):
        if kind == "c":
            if not enc.get("offsets"):  # numbers, not strings
                raise NotSupported("only pandas categories of strings are supported")
            raw, ends = bytes(enc["values"]), enc["offsets"]
            found[name] = [raw[a:b].decode() for a, b in zip(ends, ends[1:], strict=False)]
    return found


def _joined_columns(w: Writer, inputs: Sequence[Any], model: Any) -> str:
    """One [N, 1] input per feature, in the model's order (compile.py's "columns" form), as
    one [N, features] float64 matrix: numbers as they are (float32 and float64 both hold in
    float64), a category's strings as the codes the model learnt (string_categories), their
    columns noted in `w.coded`."""
    from skl2onnx.common.data_types import StringTensorType

    names = [str(v.raw_name) for v in inputs]
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None and [str(n) for n in fitted] != names:
        raise NotSupported("inputs other than the features the model was fitted on, in order")
    categories = string_categories(model, names)
    columns = []
    for number, v in enumerate(inputs):
        strings = isinstance(v.type, StringTensorType)
        if strings != (v.raw_name in categories):  # strings exactly for those categories
            raise NotSupported(f"the input {v.raw_name!r} of another type than its feature's")
        if strings:
            columns.append(_category_codes(w, v.full_name, categories[v.raw_name]))
            w.coded.add(number)
        else:
            columns.append(w.op("Cast", [v.full_name], "f64", to=DOUBLE))
    return w.op("Concat", columns, "columns", axis=1)


def _category_codes(w: Writer, strings: str, categories: Sequence[str]) -> str:
    """[N, 1] float64: each string's code, its position among the model's categories
    (string_categories), or NaN for any other string, which each library takes as missing
    as it does a null (pandas.Categorical codes it -1, HistGradientBoosting's encoder NaN).
    The compiled engine gives a null as "" (onnx_engine._tensor): a category "" would be
    taken for one."""
    if "" in categories:
        raise NotSupported("the empty string among a category's values (a null arrives as one)")
    if len(categories) > 2**24:  # codes are float32 here
        raise NotSupported("more than 2**24 categories")
    codes = w.op(
        "LabelEncoder",
        [strings],
        "codes",
        domain="ai.onnx.ml",
        keys_strings=list(categories),
        values_floats=[float(i) for i in range(len(categories))],
        default_float=math.nan,
    )
    return w.op("Cast", [codes], "codes", to=DOUBLE)


def parse_classifier(scope: Any, model: Any, inputs: Any, custom_parsers: Any = None) -> Any:
    """A classifier's outputs, labels and probabilities, without skl2onnx's ZipMap."""
    from skl2onnx._parse import _parse_sklearn_simple_model

    return _parse_sklearn_simple_model(scope, model, inputs, custom_parsers=custom_parsers)


@contextmanager
def registrations_restored(classes: Iterable[type]) -> Iterator[None]:
    """skl2onnx's converters and parsers for `classes` as they were, once the block ends:
    converters registered within it serve one conversion, not the whole process."""
    from skl2onnx._parse import sklearn_parsers_map
    from skl2onnx._supported_operators import sklearn_operator_name_map

    saved = [(table, dict(table)) for table in (sklearn_operator_name_map, sklearn_parsers_map)]
    try:
        yield
    finally:
        for table, before in saved:
            for cls in classes:
                if cls in before:
                    table[cls] = before[cls]
                else:
                    table.pop(cls, None)


@contextmanager
def exact_converters() -> Iterator[None]:
    """Within it, skl2onnx converts every supported model (alone or in a pipeline) exactly;
    pass what it converts through finish(). skl2onnx's own converters come back after."""
    from skl2onnx import update_registered_converter
    from sklearn.base import is_classifier

    converters = _converters()
    with registrations_restored(converters):
        for cls, (kind, _) in converters.items():
            options: dict[str, Any] | None = None
            parser = None
            if kind == "isolation_forest":
                options = {"score_samples": [True, False]}
            elif is_classifier(cls()):
                # accepted for skl2onnx's callers, but the probabilities stay one float64
                # tensor: ZipMap takes float32 only
                options = {"zipmap": [True, False, "columns"], "nocl": [True, False]}
                parser = parse_classifier
            update_registered_converter(
                cls,
                f"ExactTrees{cls.__name__}",
                _shape_calculator,
                _skl2onnx_converter,
                options=options,
                parser=parser,
            )
        yield


def to_onnx(
    model: Any, n_features: int, dtype: str = "float64", columns: bool = False
) -> onnx.ModelProto:
    """The exact graph for a fitted model (or a pipeline holding such models), through skl2onnx:
    input "input" [N, n_features] of dtype, or with `columns` one [N, 1] input per feature
    named as the model's feature_names_in_, strings for a pandas category (compile.py's
    "columns" form); a classifier's outputs are its labels and its probabilities [N,
    classes], a regressor's its values [N, 1], IsolationForest's its labels (-1, 1) and
    decision_function [N, 1]."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    from sklearn.base import is_classifier

    number = FloatTensorType if dtype == "float32" else DoubleTensorType
    initial_types = [("input", number([None, n_features]))]
    if columns:
        names = [str(n) for n in model.feature_names_in_]
        categories = string_categories(model, names)
        initial_types = [
            (n, StringTensorType([None, 1]) if n in categories else number([None, 1]))
            for n in names
        ]
    options = {"zipmap": False} if is_classifier(model) else None
    with exact_converters():
        graph = convert_sklearn(
            model,
            "model",
            initial_types=initial_types,
            target_opset={"": OPSET, "ai.onnx.ml": 3},
            options=options,
        )
    return finish(graph)


def finish(graph: onnx.ModelProto) -> onnx.ModelProto:
    """The model with ai.onnx.ml opset 5 if it holds a TreeEnsemble node (skl2onnx wrote 3).
    Its other ai.onnx.ml operators are the same at 5, except the legacy tree operators
    (deprecated there): a graph with both does not load, and compile.py falls back."""
    if any(n.op_type == "TreeEnsemble" and n.domain == "ai.onnx.ml" for n in graph.graph.node):
        for opset in graph.opset_import:
            if opset.domain == "ai.onnx.ml":
                opset.version = max(opset.version, ML_OPSET)
    return graph
