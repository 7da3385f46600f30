"""Converters for steps skl2onnx 1.20 writes only in float32, wrongly, or not at all.

Packaging side only, as trees.py. Within `float64_converters()` skl2onnx converts these with
the arithmetic scikit-learn does, in the input's float type:

- SimpleImputer on numbers (onnxruntime's Imputer has no float64 kernel, and skl2onnx's
  missing-value indicator picks other columns): `where(missing, statistic, x)`, the columns
  whose statistic is NaN dropped, then the indicator's columns; on strings (skl2onnx takes
  only a string missing value, not NaN, the default): the same, the string the graph is
  given a null as (NULL_STRING, or "" where no client may send it) filled, or passed on
  where the estimator was fitted with None for it, as scikit-learn does;
- PolynomialFeatures (skl2onnx's float64 graph mixes float32 in): each term of degree d as
  scikit-learn's transform makes it, a term of degree d - 1 times the feature it lacks;
- TransformedTargetRegressor (no converter): the regressor's graph, then the inverse of
  `func` (exp, log, sqrt, none) or of a StandardScaler, as transformer_.inverse_transform;
- SVR and NuSVR (onnxruntime's SVMRegressor has no float64 kernel), so a StackingRegressor
  holding one converts: libsvm's kernel values weighed by the dual coefficients;
- SVC and NuSVC (skl2onnx's decisions are 4e-6 to 8e-5 off, its probabilities up to 6e-2):
  libsvm's decisions, its vote, decision_function's shapes, Platt's sigmoid and libsvm's
  coupling of the pairs' probabilities (a Loop);
- Nystroem with the rbf kernel (no converter): rbf_kernel's distances, then the normalization;
- KBinsDiscretizer (skl2onnx compares float32, and refuses "onehot", the default): each
  value's bin, its feature's edges at or below it counted in float64, one-hot where asked;
- SplineTransformer (no converter): scipy's B-spline basis, its recursion step by step, and
  the extrapolation beyond the knots;
- FunctionTransformer of one of numpy's elementwise functions (skl2onnx takes only none):
  np.log1p, np.log, np.sqrt, np.exp, np.expm1, np.abs, ...;
- OneHotEncoder (skl2onnx casts float codes to integers, refuses infrequent categories,
  and declares float32 output): each value compared with its categories, in float64;
- OrdinalEncoder (skl2onnx compares numbers in float32, takes a None or NaN category for
  the text "None" or "nan", and codes NaN by its place): each value's category's place,
  compared in float64, encoded_missing_value and unknown_value where scikit-learn puts them;
- TargetEncoder (no converter): each value's category's encoding, the target's mean for
  any other value, a column per class for a multiclass target;
- KNeighborsRegressor and KNeighborsClassifier weighed by distance (skl2onnx weighs them
  all alike): 1 / d, a row at distance 0 answered by its matches alone, numpy's sums;
- CalibratedClassifierCV's isotonic calibrators (skl2onnx's take the nearest threshold's
  value), and IsotonicRegression (no converter): numpy's interpolation between the thresholds;
- LinearSVC, RidgeClassifier(CV), Perceptron and SGDClassifier (float32 only, and in a
  pipeline not at all; the log loss's labels from its probabilities): the decision function,
  then the class as LinearClassifierMixin.predict picks it; and LinearDiscriminantAnalysis
  (its probabilities NaN far out): the same, with its predict_proba's expit or softmax;
- OneVsRestClassifier of those or LogisticRegression (skl2onnx's labels come from the
  probabilities, which tie at 1.0 far out): each class's decision function, the greatest's
  class, ties broken as this scikit-learn's loop breaks them.

What is not covered raises NotSupported, and compile.py tries the next form or leaves the
model to scikit-learn.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from .trees import (
    DOUBLE,
    FLOAT,
    INT64,
    NotSupported,
    Writer,
    _expit,
    _softmax,
    _two_columns,
    argmax_labels,
    binary_index,
    label_type,
    parse_classifier,
    registrations_restored,
    take_classes,
)

INVERSES = {"exp": "Exp", "log": "Log", "sqrt": "Sqrt"}  # numpy's ufunc: onnx's operator


def _dtype(operator: Any) -> tuple[Any, int, Any]:
    """(the numpy float type, its ONNX type, its skl2onnx tensor type) of the first input."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    if isinstance(operator.inputs[0].type, DoubleTensorType):
        return np.float64, DOUBLE, DoubleTensorType
    if isinstance(operator.inputs[0].type, FloatTensorType):
        return np.float32, FLOAT, FloatTensorType
    raise NotSupported(f"inputs of type {operator.inputs[0].type}")


def _writer(scope: Any, operator: Any, container: Any) -> tuple[Writer, str, list[str]]:
    """A writer, the input as one [N, features] tensor (the columns side by side, when a
    pipeline's first step is given one input per feature), and the outputs' names."""
    from skl2onnx.operator_converters.common import concatenate_variables

    x = operator.inputs[0].full_name
    if len(operator.inputs) > 1:
        x = concatenate_variables(scope, operator.inputs, container)
    return Writer(scope, container), x, [o.full_name for o in operator.outputs]


# -- SimpleImputer ---------------------------------------------------------------------------


def _imputer_columns(model: Any) -> int:
    kept = int(np.sum(~np.isnan(np.asarray(model.statistics_, dtype=np.float64))))
    if getattr(model, "keep_empty_features", False):
        kept = len(model.statistics_)
    indicator = getattr(model, "indicator_", None)
    return kept + (0 if indicator is None else len(indicator.features_))


def _numeric_imputer(model: Any) -> bool:
    """Whether it fills numbers (its statistics are objects for strategy="constant")."""
    numbers = (int, float, np.integer, np.floating)
    values = np.asarray(model.statistics_, dtype=object)
    return all(isinstance(v, numbers) and not isinstance(v, bool) for v in values)


def _strings(operator: Any) -> bool:
    from skl2onnx.common.data_types import StringTensorType

    return isinstance(operator.inputs[0].type, StringTensorType)


# The string inputs whose null the graph is given as a string only a null is, that string,
# and what scikit-learn is given for it: "NaN" or "None" (compile._null_strings).
Nulls = dict[str, tuple[str, str]]


def imputer_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import StringTensorType

    model = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    if _strings(operator):
        kept, _ = _string_statistics(model)
        operator.outputs[0].type = StringTensorType([n, len(kept)])
        return
    if not _numeric_imputer(model):
        raise NotSupported("numbers filled with a string")
    _, _, tensor = _dtype(operator)
    operator.outputs[0].type = tensor([n, _imputer_columns(model)])


def imputer(scope: Any, operator: Any, container: Any, nulls: Nulls) -> None:
    """SimpleImputer.transform: missing values (NaN, or the number given) become the column's
    statistic; columns without one are dropped (unless keep_empty_features, which fills 0);
    the indicator (add_indicator) appends 1.0 where a value was missing, for its features.
    Strings: string_imputer."""
    if _strings(operator):
        string_imputer(scope, operator, container, nulls)
        return
    model = operator.raw_operator
    if not _numeric_imputer(model):
        raise NotSupported("numbers filled with a string")
    dtype, onnx_type, _ = _dtype(operator)
    w, x, (output,) = _writer(scope, operator, container)
    statistics = np.asarray(model.statistics_, dtype=np.float64)
    if getattr(model, "keep_empty_features", False):
        statistics = np.nan_to_num(statistics, nan=0.0)
    missing_value = model.missing_values
    if isinstance(missing_value, float) and np.isnan(missing_value):
        missing = w.op("IsNaN", [x], "missing")
    elif isinstance(missing_value, (int, float)) and not isinstance(missing_value, bool):
        missing = w.op("Equal", [x, w.const(np.array(missing_value, dtype))], "missing")
    else:
        raise NotSupported(f"missing values written as {missing_value!r}")
    filled = w.op("Where", [missing, w.const(statistics.astype(dtype), "statistics"), x])
    kept = np.flatnonzero(~np.isnan(statistics))
    parts = [filled]
    if len(kept) < len(statistics):
        parts = [w.op("Gather", [filled, w.const(kept.astype(np.int64))], "kept", axis=1)]
    indicator = getattr(model, "indicator_", None)
    if indicator is not None:
        if indicator.features_.size:
            columns = w.const(np.asarray(indicator.features_, np.int64))
            flags = w.op("Gather", [missing, columns], "flags", axis=1)
            parts.append(w.op("Cast", [flags], "indicator", to=onnx_type))
    if len(parts) == 1:
        w.op("Identity", parts, output=output)
    else:
        w.op("Concat", parts, output=output, axis=1)


def _string_statistics(model: Any) -> tuple[np.ndarray, list[Any]]:
    """The columns a string imputer keeps, and what each is filled with (a string where it
    fills anything, string_imputer checks): a column whose statistic is missing (NaN: no value
    seen in fit) is dropped, as transform drops it, unless keep_empty_features keeps it
    (filled with fill_value, or 0)."""
    statistics = np.asarray(model.statistics_, dtype=object)
    kept = np.arange(len(statistics))
    if not getattr(model, "keep_empty_features", False):
        kept = np.array([i for i, v in enumerate(statistics) if not _is_nan(v)], dtype=np.int64)
    fills = [statistics[i] for i in kept]
    if not fills:
        raise NotSupported("a string imputer that keeps no column")
    indicator = getattr(model, "indicator_", None)
    if indicator is not None and indicator.features_.size:
        raise NotSupported("a missing-value indicator beside strings")
    return kept, fills


def string_imputer(scope: Any, operator: Any, container: Any, nulls: Nulls) -> None:
    """SimpleImputer.transform on strings: a missing value becomes the column's statistic
    (most_frequent's, or fill_value), columns without one dropped (_string_statistics).

    The graph is given a null category as its string in `nulls` (NULL_STRING, or "" where no
    client may send it), and scikit-learn as NaN, or None where it was fitted so. With
    missing_values NaN (the default), that string is filled where scikit-learn is given NaN,
    and passed on where it is given None, which is not NaN to it. Where no string is a null's
    alone (strings, not codes, and "" a client's value), this graph could not tell a null
    from a client's value: NotSupported. With missing_values None, a null given as None is
    filled. A string given as missing_values is compared as it is. So a null is filled only
    where scikit-learn is given the missing value for it, and a client's string only if it is
    that value, as in scikit-learn.
    """
    model = operator.raw_operator
    kept, fills = _string_statistics(model)
    w, x, (output,) = _writer(scope, operator, container)
    missing_value = model.missing_values
    if _is_nan(missing_value) or missing_value is None:
        sources = [s for i in operator.inputs for s in _sources(container, i.full_name)]
        null = _one_null(nulls, sources)  # (its string, what scikit-learn is given), or None
        wanted = "NaN" if _is_nan(missing_value) else "None"
        if null is not None:  # filled where scikit-learn is given the missing value for it
            missing_value = null[0] if null[1] == wanted else None  # None: passed on
        elif wanted == "NaN" and any(s not in nulls for s in sources):
            name = next(s for s in sources if s not in nulls)
            raise NotSupported(f'"" may be a value of {name!r}, not only its null')
        elif wanted == "NaN" or any(nulls.get(s, ("", "NaN"))[1] == "None" for s in sources):
            raise NotSupported(f"strings whose nulls differ, imputed together: {sources}")
    elif not isinstance(missing_value, str):
        raise NotSupported(f"strings missing as {missing_value!r}")
    if len(kept) < len(model.statistics_):
        x = w.op("Gather", [x, w.const(kept.astype(np.int64))], "kept", axis=1)
    if missing_value is None:
        w.op("Identity", [x], output=output)
        return
    for value in fills:
        if not isinstance(value, str):
            raise NotSupported(f"strings filled with {value!r}")
    if container.target_opset < 19:  # Equal compares strings from opset 19
        raise NotSupported(f"strings compared at opset {container.target_opset}")
    missing = w.op("Equal", [x, w.const(np.array(missing_value, dtype=object))], "missing")
    statistics = w.const(np.array([fills], dtype=object), "statistics")
    w.op("Where", [missing, statistics, x], output=output)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and np.isnan(value)


def _one_null(nulls: Nulls, sources: list[str]) -> tuple[str, str] | None:
    """The null string of inputs, and what scikit-learn is given for it, if they all share
    one; else None."""
    found = {nulls.get(name) for name in sources}
    return found.pop() if len(found) == 1 and None not in found else None


def _sources(container: Any, name: str) -> list[str]:
    """The tensors a string tensor holds side by side, traced back through the Concat and
    Identity nodes that made it (skl2onnx joins a ColumnTransformer's columns so): the graph
    inputs, where it is made of inputs only."""
    for node in container.nodes:
        if name in node.output and node.op_type in ("Concat", "Identity"):
            return [s for i in node.input for s in _sources(container, i)]
    return [name]


# -- PolynomialFeatures ----------------------------------------------------------------------


def polynomial_shape(operator: Any) -> None:
    _, _, tensor = _dtype(operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = tensor([n, int(operator.raw_operator.n_output_features_)])


def polynomial(scope: Any, operator: Any, container: Any) -> None:
    """PolynomialFeatures.transform (dense): the bias column, then the terms by degree, each
    combination of features in itertools' order, a term the product of the one without its
    first feature and that feature; degrees below the least asked for are left out."""
    model = operator.raw_operator
    dtype, _, _ = _dtype(operator)
    w, x, (output,) = _writer(scope, operator, container)
    n = int(model.n_features_in_)
    low, high = (
        model.degree if isinstance(model.degree, tuple) else (0, model.degree)  # (min, max)
    )
    combine = itertools.combinations if model.interaction_only else _with_replacement
    blocks: list[str] = []
    if model.include_bias:  # ones, [N, 1]
        rows = w.op("Shape", [x], "rows", start=0, end=1)
        shape = w.op("Concat", [rows, w.const(np.array([1]))], "shape", axis=0)
        one = numpy_helper.from_array(np.array([1], dtype))
        blocks.append(w.op("ConstantOfShape", [shape], "bias", value=one))
    previous: dict[tuple[int, ...], int] = {(i,): i for i in range(n)}  # a term: its column
    block = x
    if low <= 1 <= high:
        blocks.append(x)
    for degree in range(2, high + 1):
        terms = list(combine(range(n), degree))
        if not terms:
            break
        firsts = np.array([t[0] for t in terms], np.int64)
        rests = np.array([previous[t[1:]] for t in terms], np.int64)
        block = w.op(
            "Mul",
            [
                w.op("Gather", [block, w.const(rests)], "rest", axis=1),
                w.op("Gather", [x, w.const(firsts)], "first", axis=1),
            ],
            f"degree{degree}",
        )
        previous = {t: i for i, t in enumerate(terms)}
        if degree >= low:
            blocks.append(block)
    if len(blocks) == 1:
        w.op("Identity", blocks, output=output)
    else:
        w.op("Concat", blocks, output=output, axis=1)


def _with_replacement(items: range, degree: int) -> Iterator[tuple[int, ...]]:
    return itertools.combinations_with_replacement(items, degree)


# -- TransformedTargetRegressor --------------------------------------------------------------


def target_shape(operator: Any) -> None:
    _, _, tensor = _dtype(operator)
    operator.outputs[0].type = tensor([operator.inputs[0].get_first_dimension(), 1])


def transformed_target(scope: Any, operator: Any, container: Any) -> None:
    """TransformedTargetRegressor.predict: transformer_.inverse_transform of the regressor's
    prediction."""
    from skl2onnx.algebra import onnx_ops
    from skl2onnx.algebra.onnx_operator import OnnxSubEstimator
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    model = operator.raw_operator
    dtype, _, _ = _dtype(operator)
    opv = container.target_opset
    value = OnnxSubEstimator(model.regressor_, *operator.inputs, op_version=opv)
    transformer = model.transformer_
    last = "OnnxIdentity"
    if type(transformer) is FunctionTransformer:
        inverse = transformer.inverse_func
        name = getattr(inverse, "__name__", "")
        if transformer.inv_kw_args:
            raise NotSupported("an inverse function with arguments")
        known = (*INVERSES, "expm1")
        if inverse is not None and (name not in known or inverse is not getattr(np, name)):
            raise NotSupported(f"the inverse function {name or inverse!r}")
        if name == "expm1":  # the regressor's graph, then the writer's
            logged = scope.get_unique_variable_name("log_target")
            onnx_ops.OnnxIdentity(value, op_version=opv, output_names=[logged]).add_to(
                scope, container
            )
            output = operator.outputs[0].full_name
            _expm1(Writer(scope, container), logged, dtype, output)
            return
        if inverse is not None:
            last = f"Onnx{INVERSES[name]}"
    elif type(transformer) is StandardScaler:
        if transformer.with_std:
            scale = transformer.scale_.astype(dtype)
            value = onnx_ops.OnnxMul(value, scale, op_version=opv)
        if transformer.with_mean:
            value = onnx_ops.OnnxAdd(value, transformer.mean_.astype(dtype), op_version=opv)
    else:
        raise NotSupported(f"a target transformer {type(transformer).__name__}")
    final = getattr(onnx_ops, last)(value, op_version=opv, output_names=operator.outputs[:1])
    final.add_to(scope, container)


def _expm1(w: Writer, x: str, dtype: Any, output: str | None = None) -> str:
    """numpy's expm1, which ONNX lacks, by Kahan's identity: with u = exp(x), (u - 1) * x /
    log(u), within a few ulps where exp(x) - 1 would lose a small x's digits; x itself where u
    rounds to 1, -1 where u - 1 does, and u where u - 1 rounds to u (x above 37, or infinite,
    where the identity would overflow)."""
    one = w.const(np.array(1, dtype), "one")
    u = w.op("Exp", [x], "u")
    less_one = w.op("Sub", [u, one], "less_one")
    kahan = w.op("Div", [w.op("Mul", [less_one, x]), w.op("Log", [u])], "kahan")
    value = w.op("Where", [w.op("Equal", [less_one, u]), u, kahan], "expm1")
    minus_one = w.const(np.array(-1, dtype), "minus_one")
    value = w.op("Where", [w.op("Equal", [less_one, minus_one]), minus_one, value], "expm1")
    return w.op("Where", [w.op("Equal", [u, one]), x, value], "expm1", output=output)


def _log1p(w: Writer, x: str, dtype: Any) -> str:
    """numpy's log1p, which ONNX lacks, for x >= 0, by the same kind of identity: with u =
    1 + x, log(u) * x / (u - 1), within a few ulps; x itself where u rounds to 1."""
    one = w.const(np.array(1, dtype), "one")
    u = w.op("Add", [one, x], "u")
    ratio = w.op("Div", [x, w.op("Sub", [u, one])], "ratio")
    value = w.op("Mul", [w.op("Log", [u]), ratio], "log1p")
    return w.op("Where", [w.op("Equal", [u, one]), x, value], "log1p")


# -- FunctionTransformer ----------------------------------------------------------------------


def _elementwise(w: Writer, x: str, name: str, dtype: Any) -> str:
    """numpy's function `name` of every value, as ONNX computes it (a few ulps from numpy's
    for the logarithms and exponentials, exact for the rest)."""
    if name in ("log1p", "expm1"):
        return (_log1p if name == "log1p" else _expm1)(w, x, dtype)
    if name == "square":
        return w.op("Mul", [x, x], "square")
    if name in ("log2", "log10"):
        base = w.const(np.array(np.log(2.0 if name == "log2" else 10.0), dtype), "ln")
        return w.op("Div", [w.op("Log", [x]), base], name)
    return w.op(ONE_OPERATOR[name], [x], name)


# numpy's elementwise functions: those ONNX has as one operator (np.abs is np.absolute), then
# those _elementwise writes in several
ONE_OPERATOR = {**INVERSES, "absolute": "Abs", "negative": "Neg", "reciprocal": "Reciprocal"}
ELEMENTWISE = (*ONE_OPERATOR, "log1p", "expm1", "square", "log2", "log10")


def function_shape(operator: Any) -> None:
    _, _, tensor = _dtype(operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = tensor([n, int(operator.raw_operator.n_features_in_)])


def function_transformer(scope: Any, operator: Any, container: Any) -> None:
    """FunctionTransformer.transform where `func` is none or one of numpy's elementwise
    functions above (np.log1p, np.sqrt, ...), given no arguments: each value through it."""
    model = operator.raw_operator
    func = model.func
    name = getattr(func, "__name__", "")
    if func is not None and (name not in ELEMENTWISE or func is not getattr(np, name)):
        raise NotSupported(f"the function {name or func!r}")
    if model.kw_args:
        raise NotSupported("a function with arguments")
    dtype, _, _ = _dtype(operator)
    w, x, outputs = _writer(scope, operator, container)
    value = x if func is None else _elementwise(w, x, name, dtype)
    w.op("Identity", [value], output=outputs[0])


def power_shape(operator: Any) -> None:
    _, _, tensor = _dtype(operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = tensor([n, len(operator.raw_operator.lambdas_)])


def power_transformer(scope: Any, operator: Any, container: Any) -> None:
    """PowerTransformer.transform (float64): each feature through scipy's Yeo-Johnson
    (expm1(lambda * log1p(x)) / lambda at and above 0, -expm1((2 - lambda) * log1p(-x)) /
    (2 - lambda) below, the logarithm alone where that power is within eps of 0) or Box-Cox
    (expm1(lambda * log(x)) / lambda, log(x) for lambda within 1e-19 of 0), then its
    StandardScaler; expm1 and log1p by identities within a few ulps of numpy's."""
    model = operator.raw_operator
    dtype, _, _ = _dtype(operator)
    if dtype is not np.float64:
        raise NotSupported(f"PowerTransformer in {dtype.__name__}")
    w, x, (output,) = _writer(scope, operator, container)
    lambdas = np.asarray(model.lambdas_, np.float64)[np.newaxis]
    eps = np.finfo(np.float64).eps
    if model.method == "yeo-johnson":
        above = w.op("GreaterOrEqual", [x, w.const(np.array(0.0))], "above")
        logged = _log1p(w, w.op("Where", [above, x, w.op("Neg", [x])], "magnitude"), dtype)
        power = w.op("Where", [above, w.const(lambdas, "lambdas"), w.const(2 - lambdas)])
        plain_above = w.op("And", [above, w.const(np.abs(lambdas) < eps)])  # no bool Where
        plain_below = w.op("And", [w.op("Not", [above]), w.const(np.abs(lambdas - 2) <= eps)])
        plain = w.op("Or", [plain_above, plain_below], "plain")
        sign = w.op("Where", [above, w.const(np.array(1.0)), w.const(np.array(-1.0))], "sign")
    elif model.method == "box-cox":
        logged = w.op("Log", [x], "logged")
        power = w.const(lambdas, "lambdas")
        plain = w.const(np.abs(lambdas) < 1e-19, "plain")
        sign = None
    else:
        raise NotSupported(f"PowerTransformer's method {model.method!r}")
    raised = _expm1(w, w.op("Mul", [power, logged], "scaled"), dtype)
    value = w.op("Where", [plain, logged, w.op("Div", [raised, power])], "transformed")
    if sign is not None:
        value = w.op("Mul", [sign, value], "transformed")
    if not model.standardize:
        w.op("Identity", [value], output=output)
        return
    scaler = model._scaler
    if scaler.with_mean:
        value = w.op("Sub", [value, w.const(scaler.mean_[np.newaxis], "mean")], "centred")
    divisor = scaler.scale_ if scaler.with_std else np.ones_like(scaler.mean_)
    w.op(
        "Div", [value, w.const(np.asarray(divisor, np.float64)[np.newaxis], "scale")], output=output
    )


# -- KBinsDiscretizer ------------------------------------------------------------------------


def bins_shape(operator: Any) -> None:
    _, _, tensor = _dtype(operator)
    model = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    width = len(model.n_bins_) if model.encode == "ordinal" else int(sum(model.n_bins_))
    operator.outputs[0].type = tensor([n, width])


def bins(scope: Any, operator: Any, container: Any) -> None:
    """KBinsDiscretizer.transform (float64): each value's bin, the count of its feature's
    inner edges at or below it (np.searchsorted(edges[1:-1], x, side="right")), compared in
    float64, where skl2onnx compares in float32 and refuses "onehot". "ordinal" gives the
    bins; "onehot" and "onehot-dense" a column per bin of each feature, 1.0 in the value's
    bin's and 0.0 elsewhere (the sparse matrix's values, dense here)."""
    model = operator.raw_operator
    dtype, _, _ = _dtype(operator)
    if dtype is not np.float64 or model.dtype not in (None, np.float64):
        raise NotSupported(f"KBinsDiscretizer in {dtype.__name__}, its dtype {model.dtype}")
    w, x, (output,) = _writer(scope, operator, container)
    inner = [np.asarray(edges, np.float64)[1:-1] for edges in model.bin_edges_]
    # one row of edges per feature, NaN after its own (nothing is at or above NaN)
    table = np.full((len(inner), max(1, *map(len, inner))), np.nan)
    for row, edges in zip(table, inner, strict=True):
        row[: len(edges)] = edges
    above = w.op("GreaterOrEqual", [w.op("Unsqueeze", [x, w.const(np.array([2]))]), w.const(table)])
    counted = w.op("Cast", [above], "counted", to=DOUBLE)
    ordinal = model.encode == "ordinal"
    found = w.op(
        "ReduceSum",
        [counted, w.const(np.array([2]))],
        "bin",
        output=output if ordinal else None,
        keepdims=0,
    )
    if ordinal:
        return
    feature = np.repeat(np.arange(len(inner)), model.n_bins_)  # each column's feature
    number = np.concatenate([np.arange(count) for count in model.n_bins_]).astype(np.float64)
    picked = w.op("Gather", [found, w.const(feature)], "bin", axis=1)
    hot = w.op("Equal", [picked, w.const(number[np.newaxis], "bins")])
    w.op("Cast", [hot], output=output, to=DOUBLE)


# -- Kernels: SVR and Nystroem -------------------------------------------------------------


def _libsvm_kernel(w: Writer, x: str, model: Any, dtype: Any) -> str:
    """[N, support vectors]: libsvm's k_function of each row with each support vector: rbf
    exp(-gamma * sum((x - sv)^2)), linear x.sv, poly (gamma x.sv + coef0)^degree, sigmoid
    tanh(gamma x.sv + coef0)."""
    vectors = np.asarray(model.support_vectors_, dtype)
    gamma = np.array(model._gamma, dtype)
    if model.kernel == "rbf":
        rows = w.op("Unsqueeze", [x, w.const(np.array([1]))], "rows")  # [N, 1, F]
        gap = w.op("Sub", [rows, w.const(vectors[np.newaxis], "vectors")], "gap")
        total = w.op("ReduceSum", [w.op("Mul", [gap, gap]), w.const(np.array([2]))], keepdims=0)
        return w.op("Exp", [w.op("Mul", [total, w.const(-gamma)], "scaled")], "kernel")
    dot = w.op("MatMul", [x, w.const(vectors.T, "vectors")], "dot")
    if model.kernel == "linear":
        return dot
    inner = w.op("Add", [w.op("Mul", [dot, w.const(gamma)]), w.const(np.array(model.coef0, dtype))])
    if model.kernel == "poly":
        return _powi(w, inner, int(model.degree))
    if model.kernel == "sigmoid":
        return w.op("Tanh", [inner], "kernel")
    raise NotSupported(f"the kernel {model.kernel!r}")


def _powi(w: Writer, base: str, times: int) -> str:
    """base ** times as libsvm's powi multiplies: squaring, and taking the odd bits' powers."""
    result = None
    while times > 0:
        if times % 2 == 1:
            result = base if result is None else w.op("Mul", [result, base], "power")
        times //= 2
        if times:
            base = w.op("Mul", [base, base], "square")
    if result is None:
        raise NotSupported("a polynomial kernel of degree 0")
    return result


def svr_shape(operator: Any) -> None:
    _, _, tensor = _dtype(operator)
    operator.outputs[0].type = tensor([operator.inputs[0].get_first_dimension(), 1])


def svr(scope: Any, operator: Any, container: Any) -> None:
    """SVR and NuSVR.predict, as libsvm's svm_predict_values: the support vectors' kernel
    values weighed by their dual coefficients, summed in order, less rho (plus intercept_)."""
    model = operator.raw_operator
    dtype, _, _ = _dtype(operator)
    w, x, (output,) = _writer(scope, operator, container)
    kernel = _libsvm_kernel(w, x, model, dtype)
    weighed = w.op("Mul", [kernel, w.const(np.asarray(model.dual_coef_, dtype), "coef")])
    # summed one support vector after the other, as libsvm's loop adds them
    running = w.op("CumSum", [weighed, w.const(np.array(1))], "running")
    total = w.op("Gather", [running, w.const(np.array([-1]))], "total", axis=1)
    w.op("Add", [total, w.const(np.asarray(model.intercept_, dtype))], output=output)


def _platt_fitted(model: Any) -> bool:
    """Whether an SVC has Platt's probabilities, as its predict_proba asks (its probability
    parameter is a deprecation's marker from scikit-learn 1.9 on)."""
    return np.size(getattr(model, "_probA", ())) > 0


def svc_shape(operator: Any) -> None:
    model = operator.raw_operator
    dtype, _, tensor = _dtype(operator)
    if dtype is not np.float64:  # skl2onnx's float32 form
        from skl2onnx.shape_calculators.support_vector_machines import (
            calculate_sklearn_svm_output_shapes,
        )

        calculate_sklearn_svm_output_shapes(operator)
        return
    n = operator.inputs[0].get_first_dimension()
    classes = len(model.classes_)
    ovo = model.decision_function_shape == "ovo" and classes > 2 and not _platt_fitted(model)
    operator.outputs[0].type = label_type(model.classes_, n)
    operator.outputs[1].type = tensor([n, classes * (classes - 1) // 2 if ovo else classes])


def svc_classifier(scope: Any, operator: Any, container: Any) -> None:
    """SVC and NuSVC (float64), whose decisions skl2onnx's SVMClassifier gives 4e-6 off or more, so
    that a CalibratedClassifierCV around one (scikit-learn 1.9's way to its probabilities)
    was left to scikit-learn, as were Platt's probabilities (probability=True): libsvm's
    decision for each pair of classes (_libsvm_decisions), then

    - the class: libsvm's vote (svm_predict_values: i where the pair's decision is above 0,
      else j; the first with most votes), or with break_ties the first greatest of the
      decision function below;
    - the second output, what the estimator's decision_function gives: with two classes
      [d, -d] (libsvm's sign, then scikit-learn's, where CalibratedClassifierCV's converter
      reads it), else the "ovr" votes and confidences (_ovr_decision_function) or the pairs'
      own ("ovo"); with probability=True, libsvm's probabilities (svm_predict_probability):
      Platt's sigmoid_predict of each pair's decision (_platt), coupled as libsvm couples
      them (_coupled).
    """
    from skl2onnx.operator_converters.support_vector_machines import (
        convert_sklearn_svm_classifier,
    )

    model = operator.raw_operator
    dtype, _, _ = _dtype(operator)
    if dtype is not np.float64:  # skl2onnx's float32 form
        convert_sklearn_svm_classifier(scope, operator, container)
        return
    w, x, (label, scores) = _writer(scope, operator, container)
    classes = np.asarray(model.classes_)
    pairs = [(i, j) for i in range(len(classes)) for j in range(i + 1, len(classes))]
    decisions = _libsvm_decisions(w, x, model, pairs)  # [N, pairs]
    if len(classes) == 2:
        first = w.op("Greater", [decisions, w.const(np.array(0.0))], "first")
        take_classes(w, binary_index(w, w.op("Not", [first])), classes, label)
        if _platt_fitted(model):
            _coupled(w, _platt(w, decisions, model), 2, output=scores)
        else:
            w.op("Concat", [decisions, w.op("Neg", [decisions])], output=scores, axis=1)
        return
    if _platt_fitted(model):
        _coupled(w, _platt(w, decisions, model), len(classes), output=scores)
    ovr = None
    if model.decision_function_shape == "ovo" and not _platt_fitted(model):
        w.op("Identity", [decisions], output=scores)
    elif model.decision_function_shape != "ovo":
        shown = None if _platt_fitted(model) else scores
        ovr = _ovr_decision(w, decisions, pairs, len(classes), output=shown)
    if model.break_ties and ovr is not None:
        argmax_labels(w, ovr, classes, label)
        return
    wins = w.op("Cast", [w.op("Greater", [decisions, w.const(np.array(0.0))])], to=DOUBLE)
    votes = _tally(w, wins, pairs, len(classes))
    argmax_labels(w, votes, classes, label)


def _libsvm_decisions(w: Writer, x: str, model: Any, pairs: list[tuple[int, int]]) -> str:
    """[N, pairs]: svm_predict_values' decision for each pair of classes i < j, libsvm's
    signs: class i's support vectors' kernel values weighed by their coefficients against
    j, then class j's against i, summed in that order, less rho (scikit-learn's _dual_coef_,
    _n_support and _intercept_, which it keeps as libsvm gives them)."""
    kernel = _libsvm_kernel(w, x, model, np.float64)  # [N, support vectors]
    coef = np.asarray(model._dual_coef_, np.float64)
    counts = np.asarray(model._n_support, np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    totals = []
    for i, j in pairs:
        columns = np.r_[starts[i] : starts[i] + counts[i], starts[j] : starts[j] + counts[j]]
        weights = np.r_[coef[j - 1, columns[: counts[i]]], coef[i, columns[counts[i] :]]]
        values = kernel
        if len(columns) < coef.shape[1]:
            values = w.op("Gather", [kernel, w.const(columns)], "pair", axis=1)
        weighed = w.op("Mul", [values, w.const(weights[np.newaxis], "coef")], "weighed")
        running = w.op("CumSum", [weighed, w.const(np.array(1))], "running")
        totals.append(w.op("Gather", [running, w.const(np.array([-1]))], "total", axis=1))
    summed = totals[0] if len(totals) == 1 else w.op("Concat", totals, "sums", axis=1)
    rho = w.const(np.asarray(model._intercept_, np.float64)[np.newaxis], "intercept")  # -rho
    return w.op("Add", [summed, rho], "decisions")


def _tally(w: Writer, wins: str, pairs: list[tuple[int, int]], classes: int) -> str:
    """[N, classes]: each class's votes, i's where a pair's `wins` is 1, j's where it is 0
    (whole numbers: any order of their sum is exact)."""
    first, second = np.zeros((len(pairs), classes)), np.zeros((len(pairs), classes))
    for k, (i, j) in enumerate(pairs):
        first[k, i] = second[k, j] = 1.0
    losses = w.op("Sub", [w.const(np.array(1.0)), wins], "losses")
    ones = w.op("MatMul", [wins, w.const(first, "first")], "votes")
    return w.op("Add", [ones, w.op("MatMul", [losses, w.const(second, "second")])], "votes")


def _ovr_decision(
    w: Writer, decisions: str, pairs: list[tuple[int, int]], classes: int, output: str | None
) -> str:
    """scikit-learn's _ovr_decision_function(dec < 0, -dec, classes): each class's votes
    (i's where dec is not below 0, j's where it is) plus its confidences summed pair after
    pair (i less -dec, j plus -dec: i plus dec, j less dec, the same bits), through
    s / (3 * (|s| + 1))."""
    wins = w.op(
        "Cast", [w.op("Not", [w.op("Less", [decisions, w.const(np.array(0.0))])])], to=DOUBLE
    )
    votes = _tally(w, wins, pairs, classes)
    columns = [w.fresh("pair") for _ in pairs]
    columns = w.ops("Split", [decisions, w.const(np.ones(len(pairs), np.int64))], columns, axis=1)
    sums: list[str | None] = [None] * classes
    for k, (i, j) in enumerate(pairs):
        for c, op in ((i, "Add"), (j, "Sub")):
            start = sums[c]
            if start is None:  # 0 + d is d, 0 - d is -d
                sums[c] = columns[k] if op == "Add" else w.op("Neg", [columns[k]])
            else:
                sums[c] = w.op(op, [start, columns[k]], "confidence")
    confidence = w.op("Concat", [s for s in sums if s is not None], "confidences", axis=1)
    one, three = w.const(np.array(1.0)), w.const(np.array(3.0))
    scale = w.op("Mul", [three, w.op("Add", [w.op("Abs", [confidence]), one])], "scale")
    return w.op("Add", [votes, w.op("Div", [confidence, scale])], output=output)


def _platt(w: Writer, decision: str, model: Any) -> str:
    """libsvm's sigmoid_predict of each pair's decision [N, pairs] (exp(-f) / (1 + exp(-f))
    from f = dA + B at or above 0, 1 / (1 + exp(f)) below), kept within 1e-7 of 0 and 1 with
    libsvm's own min and max (x > y ? x : y, x < y ? x : y: NaN becomes 1e-7)."""
    # _probA, _probB: probA_ and probB_ warn from scikit-learn 1.9 (probability=True is deprecated)
    a = w.const(np.asarray(model._probA, np.float64).reshape(1, -1), "a")
    b = w.const(np.asarray(model._probB, np.float64).reshape(1, -1), "b")
    f = w.op("Add", [w.op("Mul", [decision, a]), b], "fApB")
    e = w.op("Exp", [w.op("Neg", [w.op("Abs", [f])])], "exp")  # exp(-f) at or above 0, exp(f) below
    one = w.const(np.array(1.0))
    q = w.op("Add", [one, e], "q")
    above = w.op("GreaterOrEqual", [f, w.const(np.array(0.0))], "above")
    p = w.op("Where", [above, w.op("Div", [e, q]), w.op("Div", [one, q])], "p")
    low, high = w.const(np.array(1e-7), "low"), w.const(np.array(1.0) - 1e-7, "high")
    p = w.op("Where", [w.op("Greater", [p, low]), p, low], "p")
    return w.op("Where", [w.op("Less", [p, high]), p, high], "p")


def _coupled(w: Writer, pairs: str, k: int, output: str) -> str:
    """libsvm's multiclass_probability, which scikit-learn's libsvm runs for two classes too,
    from r[i][j] = `pairs` [N, pairs] (i < j, in libsvm's order) and r[j][i] = 1 - r[i][j]:
    the class probabilities [N, k]. Its Q (Q[t][t] the squares of r[j][t] summed over j in
    order, Q[t][j] = -r[j][t] * r[t][j]), then from p = 1/k its rounds in an ONNX Loop of at
    most max(100, k): a round computes Qp and pQp, and where every |Qp[t] - pQp| is below
    0.005 / k (NaN never counts) the row stops, as libsvm stops it; else an update per class,
    each of libsvm's operations in its order (the last class's Qp and pQp, which the next
    round computes again, left out). The Loop ends once no row goes on."""
    q, diagonal, r = _coupling_matrix(w, pairs, k)
    start = w.op(
        "Expand",
        [
            w.const(np.array(1.0) / k),
            w.op("Shape", [w.op("Gather", [r, w.const(np.array(0))], axis=2)]),
        ],
        "p",
    )
    rounds = w.const(np.array(max(100, k), np.int64), "rounds")
    body = _coupling_round(q, diagonal, k)
    w.ops("Loop", [rounds, w.const(np.array(True), "go"), start], [output], body=body)
    return output


def _coupling_matrix(w: Writer, pairs: str, k: int) -> tuple[str, str, str]:
    """libsvm's Q for each row [N, k, k], its diagonal [N, k], and r [N, k, k]."""
    index, position = {}, 0
    for i in range(k):
        for j in range(i + 1, k):
            index[i, j] = position
            position += 1
    count = position
    others = w.op("Sub", [w.const(np.array(1.0)), pairs], "others")
    nothing = w.op(
        "Mul", [w.op("Gather", [pairs, w.const(np.array([0]))], axis=1), w.const(np.array(0.0))]
    )
    table = w.op("Concat", [pairs, others, nothing], "table", axis=1)
    # r[i][j] from the pairs, r[j][i] = 1 - r[i][j], 0 on the diagonal
    cells = [
        2 * count if i == j else index[i, j] if i < j else count + index[j, i]
        for i in range(k)
        for j in range(k)
    ]
    r = w.op("Gather", [table, w.const(np.array(cells))], "r", axis=1)
    r = w.op("Reshape", [r, w.const(np.array([0, k, k]))], "r")
    rt = w.op("Transpose", [r], "rt", perm=[0, 2, 1])  # rt[n, t, j] = r[n, j, t]
    diagonal = w.op("CumSum", [w.op("Mul", [rt, rt]), w.const(np.array(2))])  # over j, in order
    diagonal = w.op("Gather", [diagonal, w.const(np.array(k - 1))], "qtt", axis=2)
    off = w.op("Neg", [w.op("Mul", [rt, r])])
    q = w.op(
        "Where",
        [
            w.const(np.eye(k, dtype=bool)[np.newaxis]),
            w.op("Unsqueeze", [diagonal, w.const(np.array([2]))]),
            off,
        ],
        "q",
    )
    return q, diagonal, r


def _coupling_round(q: str, diagonal: str, k: int) -> Any:
    """The Loop's body: one of libsvm's rounds on every row, kept where the row goes on."""
    body = Writer()
    p_in, going_in = "round_p_in", "round_going_in"
    one = body.const(np.array(1.0), "round_one")
    last = body.const(np.array(k - 1), "round_last")
    prod = body.op(
        "Mul",
        [q, body.op("Unsqueeze", [p_in, body.const(np.array([1]), "round_axis")], "round_p")],
        "round_terms",
    )
    qp = body.op(
        "Gather",
        [body.op("CumSum", [prod, body.const(np.array(2), "round_axis")], "round_qp"), last],
        "round_qp",
        axis=2,
    )
    pqp = body.op(
        "CumSum",
        [body.op("Mul", [p_in, qp], "round_pqp"), body.const(np.array(1), "round_axis")],
        "round_pqp",
    )
    pqp = body.op("Gather", [pqp, body.const(np.array([k - 1]), "round_last")], "round_pqp", axis=1)
    errors = body.op("Abs", [body.op("Sub", [qp, pqp], "round_gap")], "round_error")
    errors = body.op(
        "Where",
        [body.op("IsNaN", [errors], "round_nan"), body.const(np.array(0.0), "round_zero"), errors],
        "round_error",
    )
    largest = body.op(
        "ReduceMax", [errors, body.const(np.array([1]), "round_axis")], "round_largest", keepdims=1
    )
    going = body.op(
        "Not",
        [body.op("Less", [largest, body.const(np.array(0.005 / k), "round_eps")], "round_settled")],
        "round_going",
    )
    new = p_in
    for t in range(k):
        column = body.const(np.array([t]), "round_t")
        qt = body.op("Gather", [qp, column], "round_qt", axis=1)
        qtt = body.op("Gather", [diagonal, column], "round_qtt", axis=1)
        diff = body.op("Div", [body.op("Sub", [pqp, qt], "round_d"), qtt], "round_diff")
        grown = body.op("Add", [one, diff], "round_grown")
        moved = body.op(
            "Add",
            [
                new,
                body.op("Mul", [diff, body.const(np.eye(k)[t][np.newaxis], "round_e")], "round_m"),
            ],
            "round_p",
        )
        new = body.op("Div", [moved, grown], "round_p")
        if t < k - 1:
            step = body.op(
                "Add",
                [body.op("Mul", [diff, qtt], "round_s"), body.op("Add", [qt, qt], "round_s")],
                "round_s",
            )
            pqp = body.op("Add", [pqp, body.op("Mul", [diff, step], "round_s")], "round_pqp")
            pqp = body.op("Div", [body.op("Div", [pqp, grown], "round_pqp"), grown], "round_pqp")
            row = body.op(
                "Reshape",
                [
                    body.op("Gather", [q, column], "round_row", axis=1),
                    body.const(np.array([0, k]), "round_shape"),
                ],
                "round_row",
            )
            qp = body.op(
                "Div",
                [body.op("Add", [qp, body.op("Mul", [diff, row], "round_q")], "round_q"), grown],
                "round_qp",
            )
    kept = body.op("Where", [going, new, p_in], "round_p_out")
    more = body.op(
        "ReduceMax", [body.op("Cast", [going], "round_any", to=INT64)], "round_any", keepdims=0
    )
    more = body.op("Greater", [more, body.const(np.array(0), "round_none")], "round_going_out")
    return helper.make_graph(
        body.nodes,
        "coupling",
        [
            helper.make_tensor_value_info("round_iteration", TensorProto.INT64, []),
            helper.make_tensor_value_info(going_in, TensorProto.BOOL, []),
            helper.make_tensor_value_info(p_in, TensorProto.DOUBLE, None),
        ],
        [
            helper.make_tensor_value_info(more, TensorProto.BOOL, []),
            helper.make_tensor_value_info(kept, TensorProto.DOUBLE, None),
        ],
        body.initializers,
    )


def nystroem_shape(operator: Any) -> None:
    _, _, tensor = _dtype(operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = tensor([n, len(operator.raw_operator.component_indices_)])


def _pairwise_kernel(w: Writer, x: str, model: Any, centres: Any, dtype: Any) -> str:
    """[N, centres]: scikit-learn's pairwise_kernels (not libsvm's), as they compute them:
    linear x.c; rbf exp(-gamma * (|x|^2 - 2 x.c + |c|^2, no less than 0)); poly (gamma x.c +
    coef0)^degree; sigmoid tanh(gamma x.c + coef0); gamma 1 / features unless given."""
    if callable(model.kernel) or model.kernel_params:
        raise NotSupported("a kernel of one's own")
    centres = np.asarray(centres, dtype)
    gamma = model.gamma if model.gamma is not None else 1.0 / centres.shape[1]
    dot = w.op("MatMul", [x, w.const(centres.T, "centres")], "dot")
    if model.kernel == "linear":
        return dot
    if model.kernel == "rbf":
        squares = w.op("ReduceSum", [w.op("Mul", [x, x]), w.const(np.array([1]))], keepdims=1)
        distances = w.op("Mul", [dot, w.const(np.array(-2, dtype))], "distances")
        distances = w.op("Add", [distances, squares], "distances")
        norms = np.einsum("ij,ij->i", centres, centres)[np.newaxis].astype(dtype)
        distances = w.op("Add", [distances, w.const(norms, "norms")], "distances")
        distances = w.op("Max", [distances, w.const(np.array(0, dtype))], "distances")
        return w.op("Exp", [w.op("Mul", [distances, w.const(np.array(-gamma, dtype))])])
    inner = w.op("Mul", [dot, w.const(np.array(gamma, dtype))], "inner")
    inner = w.op("Add", [inner, w.const(np.array(model.coef0, dtype))], "inner")
    if model.kernel == "poly":
        return w.op("Pow", [inner, w.const(np.array(model.degree, dtype))], "kernel")
    if model.kernel == "sigmoid":
        return w.op("Tanh", [inner], "kernel")
    raise NotSupported(f"the kernel {model.kernel!r}")


def nystroem(scope: Any, operator: Any, container: Any) -> None:
    """Nystroem.transform: the kernel of each row with the components (_pairwise_kernel), then
    the normalization."""
    model = operator.raw_operator
    dtype, _, _ = _dtype(operator)
    w, x, (output,) = _writer(scope, operator, container)
    kernel = _pairwise_kernel(w, x, model, model.components_, dtype)
    normalization = w.const(np.asarray(model.normalization_, dtype).T, "normalization")
    w.op("MatMul", [kernel, normalization], output=output)


def kernel_ridge_shape(operator: Any) -> None:
    _, _, tensor = _dtype(operator)
    operator.outputs[0].type = tensor([operator.inputs[0].get_first_dimension(), 1])


def kernel_ridge(scope: Any, operator: Any, container: Any) -> None:
    """KernelRidge.predict, which skl2onnx does not write: the kernel of each row with the
    training rows (_pairwise_kernel), times the dual coefficients."""
    model = operator.raw_operator
    dual = np.asarray(model.dual_coef_)
    if dual.ndim != 1:
        raise NotSupported("KernelRidge with more than one target")
    dtype, _, _ = _dtype(operator)
    w, x, (output,) = _writer(scope, operator, container)
    kernel = _pairwise_kernel(w, x, model, model.X_fit_, dtype)
    w.op("MatMul", [kernel, w.const(dual.astype(dtype)[:, np.newaxis], "dual")], output=output)


# -- SplineTransformer -----------------------------------------------------------------------


def spline_shape(operator: Any) -> None:
    _, _, tensor = _dtype(operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = tensor([n, int(operator.raw_operator.n_features_out_)])


def splines(scope: Any, operator: Any, container: Any) -> None:
    """SplineTransformer.transform (float64): each feature's B-spline basis as scipy's
    evaluate_spline computes it (the knot interval, then the Cox-de Boor recursion, its
    arithmetic in its order), set beyond the knots as the extrapolation says ("constant",
    "linear" or "continue"; "periodic" wraps x into the knots first and its last bases onto
    the first), the last basis dropped without include_bias.

    Every feature at once, [N, features, bases]: scikit-learn gives each the same number of
    knots and the same degree, and only the knots' values differ, gathered from tables.
    """
    model = operator.raw_operator
    dtype, _, _ = _dtype(operator)
    if dtype is not np.float64:
        raise NotSupported(f"SplineTransformer in {dtype.__name__}")
    if model.handle_missing != "error":
        raise NotSupported(f"SplineTransformer with handle_missing={model.handle_missing!r}")
    if model.extrapolation not in ("constant", "linear", "continue", "periodic"):
        raise NotSupported(f"SplineTransformer extrapolating {model.extrapolation!r}")
    if model.extrapolation == "linear" and model.degree <= 1:
        # scikit-learn 1.9 raises its degree to 2 for the first feature and keeps it raised
        # for the next ones, their knots' ends included
        raise NotSupported("SplineTransformer extrapolating linearly at degree 0 or 1")
    bsplines = model.bsplines_
    if len({(len(s.t), int(s.k), np.shape(s.c)) for s in bsplines}) != 1:
        raise NotSupported("SplineTransformer whose features differ in knots or degree")
    knots = np.array([np.asarray(s.t, np.float64) for s in bsplines])  # [features, knots]
    degree = int(bsplines[0].k)
    coefficients = _coefficients(bsplines)
    kept = np.shape(bsplines[0].c)[1] - (0 if model.include_bias else 1)  # bases given
    w, x, (output,) = _writer(scope, operator, container)
    value = w.op("Unsqueeze", [x, w.const(np.array([2, 3]))], "features")  # [N, features, 1, 1]
    beyond = model.extrapolation in ("constant", "linear")
    if model.extrapolation == "periodic":
        value = _wrapped(w, value, knots, degree)
    elif model.extrapolation == "constant" and _ends_hold(bsplines):
        ends = knots[:, [degree, -degree - 1], np.newaxis, np.newaxis]  # [features, 2, 1, 1]
        value = w.op("Max", [value, w.const(ends[:, 0])], "held")
        value = w.op("Min", [value, w.const(ends[:, 1])], "held")
        beyond = False
    columns = kept if coefficients is None else knots.shape[1] - degree - 1
    basis = _spline_basis(w, value, knots, degree, columns)
    if coefficients is not None:
        basis = w.op("MatMul", [basis, w.const(coefficients[:, :kept], "coefficients")])
    if beyond:
        value = w.op("Unsqueeze", [x, w.const(np.array([2]))], "features")  # [N, features, 1]
        basis = _beyond_the_knots(w, value, bsplines, basis, model.extrapolation, kept)
    w.op("Flatten", [basis], output=output, axis=1)  # a feature's bases, then the next's


def _spline_basis(w: Writer, x: str, knots: np.ndarray, k: int, columns: int) -> str:
    """The first `columns` basis functions at x [N, features, 1, 1], as [N, features,
    columns], as scipy's evaluate_spline computes them: the knot interval l (its
    _find_interval: the last from t[k] to t[n - 1] starting at or below x), _deBoor_D's k
    steps, then its k + 1 values in columns l - k to l, 0 in the others.

    Step j of _deBoor_D loops over m = 1..j: w = h[m - 1] / (t[l + m] - t[l + m - j]), then
    h[m - 1] += w * (t[l + m] - x) and h[m] = w * (x - t[l + m - j]), skipping m where the two
    knots are equal. So the new h[i] is the sum of at most two such products, which no order
    of addition changes. Here a step makes each new h[i]'s two products at once, [N,
    features, j + 2, 2]: the last h's values (_numerators; its spare column, 0, where there
    is no product), divided by the knots' differences, times t - x; then it sums each pair,
    the last axis (onnxruntime sums a middle one twenty times slower). The second product's
    difference is negated: h / -d * (t - x) is h / d * (x - t), bit for bit. Step 1's
    numerator is 1, so its weights are tables, laid out as step 2's numerators.

    The knots each row needs are gathered from tables by its interval, and t - x is taken
    once for every step: three or four nodes a step (one more where knots coincide), not
    eight, as onnxruntime's cost per call grows with its nodes.
    """
    features, n = len(knots), knots.shape[1] - k - 1
    intervals = n - k
    start = np.arange(intervals)  # l - k, a table row for each interval
    interval = None
    if intervals > 1:  # the interior knots at or below x, counted: l - k; then a table's row
        below = w.op("LessOrEqual", [w.const(knots[:, np.newaxis, k + 1 : n]), x])
        count = w.op("Cast", [below], "count", to=INT64)
        interval = w.op("ReduceSum", [count, w.const(np.array([2, 3]))], "interval", keepdims=0)
        if features > 1:
            first = w.const(np.arange(features) * intervals, "first")
            interval = w.op("Add", [interval, first], "interval")

    def rows_of(tables: list[np.ndarray], hint: str) -> list[str]:
        """Each [features, intervals, ...] table's row for each x, [N, features, ...]; with
        one interval, its [features, ...] row."""
        if interval is None:
            return [w.const(table[:, 0], hint) for table in tables]
        stacked = np.concatenate(tables, axis=2)
        stacked = stacked.reshape(features * intervals, *stacked.shape[2:])
        rows = w.op("Gather", [w.const(stacked, hint), interval], hint, axis=0)
        if len(tables) == 1:
            return [rows]
        widths = np.array([table.shape[2] for table in tables])
        return w.ops("Split", [rows, w.const(widths)], [w.fresh(hint) for _ in tables], axis=2)

    # column p of the basis: h[p - (l - k)], or h's spare column k + 1
    offsets = np.arange(columns)[np.newaxis] - start[:, np.newaxis]
    places = np.where((offsets >= 0) & (offsets <= k), offsets, k + 1)
    places = np.broadcast_to(places, (features, intervals, columns))
    if k == 0:  # no recursion: 1 in the interval's column
        (basis,) = rows_of([(places == 0).astype(np.float64)], "basis")
        if interval is None:
            shape = w.op("Shape", [x], end=3)  # [N, features, 1]
            basis = w.op("Expand", [basis, shape], "basis")
        return basis
    l = k + start  # noqa: E741 (scipy's name)
    factors, ats, skips = [], [], []  # step 1's weights, then each step's differences
    for j in range(1, k + 1):
        at = np.zeros((features, intervals, j + 2, 2))  # the spare columns': 0 - x
        span = np.zeros((features, intervals, j + 2, 2))
        for i in range(j):  # h[i] / (t[l + i + 1] - t[l + i + 1 - j]) * (t[l + i + 1] - x)
            at[:, :, i, 0] = knots[:, l + i + 1]
            span[:, :, i, 0] = at[:, :, i, 0] - knots[:, l + i + 1 - j]
        for i in range(1, j + 1):  # h[i - 1] / (t[l + i - j] - t[l + i]) * (t[l + i - j] - x)
            at[:, :, i, 1] = knots[:, l + i - j]
            span[:, :, i, 1] = at[:, :, i, 1] - knots[:, l + i]
        used = _numerators(j) < j
        equal = used & (span == 0)
        if j == 1:  # h is [1]: the weights are 1 / d, and each new h[i] one product
            with np.errstate(divide="ignore"):
                step_one = np.where(used & ~equal, 1.0 / span, 0.0)
            if k > 1:  # those products laid out as step 2's numerators
                step_one = step_one.sum(axis=3)[..., _numerators(2)]
                at = at.sum(axis=3)[..., _numerators(2)]
            factors.append(step_one)
        else:
            factors.append(np.where(used, span, 1.0))  # where equal, Where sets 0
            skips.append(equal)
        ats.append(at)
    known = rows_of([*factors, np.concatenate(ats, axis=2)], "knots")
    differences = [w.op("Sub", [known[-1], x], "differences")]  # t - x, every step's
    if k > 1:
        widths = w.const(np.array([at.shape[2] for at in ats]))
        outputs = [w.fresh("differences") for _ in ats]
        differences = w.ops("Split", [differences[0], widths], outputs, axis=2)
    skipped = rows_of(skips, "equal") if any(s.any() for s in skips) else None
    zero = w.const(np.array(0.0)) if skipped is not None else ""
    pairs = w.const(np.array([3]))
    terms = w.op("Mul", [known[0], differences[0]], "terms")
    h = w.op("ReduceSum", [terms, pairs], "h", keepdims=0) if k == 1 else ""
    for j in range(2, k + 1):
        if j == 2:
            numerators = terms
        else:
            numerators = w.op("Gather", [h, w.const(_numerators(j))], "numerators", axis=2)
        weight = w.op("Div", [numerators, known[j - 1]], "weight")
        if skipped is not None:
            weight = w.op("Where", [skipped[j - 2], zero, weight], "weight")
        terms = w.op("Mul", [weight, differences[j - 1]], "terms")
        h = w.op("ReduceSum", [terms, pairs], "h", keepdims=0)
    if interval is None:
        return w.op("Gather", [h, w.const(places[0, 0])], "basis", axis=2)
    (place,) = rows_of([places], "places")
    return w.op("GatherElements", [h, place], "basis", axis=2)


def _numerators(j: int) -> np.ndarray:
    """Where step j of _spline_basis finds its numerators in the last h, [j + 2, 2]: h[i]
    for the first product of each new h[i], h[i - 1] for the second, and h's spare column
    j, 0, where there is no product."""
    index = np.full((j + 2, 2), j)
    index[:j, 0], index[1 : j + 1, 1] = np.arange(j), np.arange(j)
    return index


def _wrapped(w: Writer, x: str, knots: np.ndarray, k: int) -> str:
    """Periodic splines' x, mapped into the knots as scikit-learn maps it: t[k] + (x - t[k]) %
    period, numpy's remainder (C's fmod, plus the period where that is below 0)."""
    start = knots[:, k, np.newaxis, np.newaxis]  # [features, 1, 1]
    period = knots[:, knots.shape[1] - k - 1, np.newaxis, np.newaxis] - start
    if not (period > 0).all():  # scikit-learn evaluates every row at 0
        raise NotSupported("SplineTransformer periodic over a single value")
    start_, period_ = w.const(start, "start"), w.const(period, "period")
    rest = w.op("Mod", [w.op("Sub", [x, start_], "shifted"), period_], "rest", fmod=1)
    negative = w.op("Less", [rest, w.const(np.array(0.0))], "negative")
    rest = w.op("Where", [negative, w.op("Add", [rest, period_]), rest], "rest")
    return w.op("Add", [start_, rest], "wrapped")


def _coefficients(bsplines: list[Any]) -> np.ndarray | None:
    """The spline's coefficients, those scikit-learn fits (the same for every feature): None
    for the identity, or (periodic) a 0/1 matrix adding the last `degree` bases onto the
    first. Each product is exact (by 0 or 1) and a column sums at most two that are not 0,
    which no order of addition changes: one MatMul is scipy's sum, exactly."""
    c = np.asarray(bsplines[0].c, np.float64)
    if any(not np.array_equal(s.c, c) for s in bsplines[1:]):
        raise NotSupported("SplineTransformer with coefficients scikit-learn does not fit")
    if c.ndim == 2 and c.shape[0] == c.shape[1] and (c == np.eye(len(c))).all():
        return None
    if c.ndim != 2 or not np.isin(c, (0.0, 1.0)).all() or (c.sum(axis=0) > 2).any():
        raise NotSupported("SplineTransformer with coefficients scikit-learn does not fit")
    return c


def _ends_hold(bsplines: list[Any]) -> bool:
    """Whether "constant" extrapolation is x held to the knots' ends t[k] and t[n]: scikit-
    learn sets the first `degree` bases to their values on t[k], the last `degree` to theirs
    on t[n], and the rest to 0; the rest are 0 on those knots too, unless knots coincide
    there."""
    degree = int(bsplines[0].k)
    return all(
        not np.asarray(s(s.t[degree]))[degree:].any()
        and not np.asarray(s(s.t[-degree - 1]))[:-degree].any()
        for s in bsplines
    )


def _beyond_the_knots(
    w: Writer, x: str, bsplines: list[Any], basis: str, extrapolation: str, kept: int
) -> str:
    """SplineTransformer's values below t[k] and above t[n] in the first `kept` bases: the
    first `degree` bases' values there ("constant"; the others 0), or those continued along
    their slope ("linear")."""
    degree, count = int(bsplines[0].k), np.shape(bsplines[0].c)[1]
    ends = np.array([[s.t[degree], s.t[-degree - 1]] for s in bsplines], np.float64)
    sides = []
    for side, columns in ((0, range(degree)), (1, range(count - degree, count))):
        value, slope = np.zeros((len(bsplines), count)), np.zeros((len(bsplines), count))
        for f, spline in enumerate(bsplines):
            edge = ends[f, side]
            value[f, columns] = np.asarray(spline(edge), np.float64)[columns]
            slope[f, columns] = np.asarray(spline(edge, nu=1), np.float64)[columns]
        row = w.const(value[:, :kept], "edge")  # [features, kept]
        if extrapolation == "linear":
            away = w.op("Sub", [x, w.const(ends[:, side : side + 1])], "away")
            row = w.op("Add", [row, w.op("Mul", [away, w.const(slope[:, :kept])])], "edge")
        sides.append(row)
    below = w.op("Less", [x, w.const(ends[:, :1])], "below")
    above = w.op("Greater", [x, w.const(ends[:, 1:])], "above")
    return w.op("Where", [below, sides[0], w.op("Where", [above, sides[1], basis])])


# -- Linear classifiers without probabilities -------------------------------------------------


def linear_classifier_shape(operator: Any) -> None:
    model = operator.raw_operator
    _, _, tensor = _dtype(operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = label_type(model.classes_, n)
    operator.outputs[1].type = tensor([n, max(len(np.atleast_2d(model.coef_)), 2)])


def linear_classifier(scope: Any, operator: Any, container: Any) -> None:
    """LinearClassifierMixin.predict (LinearSVC, RidgeClassifier, Perceptron, SGDClassifier,
    LinearDiscriminantAnalysis), whose float64 form skl2onnx does not write: the decision
    function x.coef^T + intercept, then with two classes the second where it is above 0, else
    the first greatest's class.

    The second output is the decision function where there are no probabilities to give;
    with two classes as skl2onnx gives it, [-d, d], where CalibratedClassifierCV's converter
    looks. SGDClassifier's log loss gives them as _predict_proba_lr does: expit of the
    decision, [1 - p, p] with two classes, else each class's over their sum, 1 / K each where
    every one is 0 (skl2onnx's took its labels from those, whose sigmoids tie at 1.0 far
    out). Its other losses' probabilities are skl2onnx's own. LinearDiscriminantAnalysis's, as
    its predict_proba: expit of the decision, [1 - p, p], with two classes, else its softmax
    (skl2onnx's were NaN far out, where scikit-learn's are 0 and 1)."""
    model = operator.raw_operator
    loss = getattr(model, "loss", "hinge") if type(model).__name__ == "SGDClassifier" else None
    discriminant = type(model).__name__ == "LinearDiscriminantAnalysis"
    if loss not in (None, "hinge", "log_loss"):
        from skl2onnx.operator_converters.sgd_classifier import convert_sklearn_sgd_classifier

        convert_sklearn_sgd_classifier(scope, operator, container)
        return
    dtype, _, _ = _dtype(operator)
    w, x, (label, scores) = _writer(scope, operator, container)
    coef = np.atleast_2d(np.asarray(model.coef_, dtype))  # one row for two classes
    dot = w.op("MatMul", [x, w.const(coef.T, "coef")], "dot")
    intercept = w.const(np.atleast_1d(np.asarray(model.intercept_, dtype)), "intercept")
    classes = np.asarray(model.classes_)
    # the decision is the second output itself
    plain = len(coef) > 1 and loss != "log_loss" and not discriminant
    decision = w.op("Add", [dot, intercept], "decision", output=scores if plain else None)
    if discriminant:  # its predict_proba: expit, [1 - p, p], with two classes, else softmax
        if len(coef) == 1:
            _two_columns(w, _expit(w, decision), np.array(1.0), scores)
            index = binary_index(w, w.op("Greater", [decision, w.const(np.array(0.0))]))
            take_classes(w, index, classes, label)
        else:
            _softmax(w, decision, scores)
            argmax_labels(w, decision, classes, label)
        return
    if loss == "log_loss":  # expit, as scipy writes it
        one = w.const(np.array(1, dtype), "one")
        exp = w.op("Exp", [w.op("Neg", [decision])], "exp")
        p = w.op("Div", [one, w.op("Add", [exp, one])], "p")
    if len(coef) == 1:
        if loss == "log_loss":
            w.op("Concat", [w.op("Sub", [one, p]), p], output=scores, axis=1)
        else:
            w.op("Concat", [w.op("Neg", [decision]), decision], output=scores, axis=1)
        index = binary_index(w, w.op("Greater", [decision, w.const(np.array(0, dtype))]))
        take_classes(w, index, classes, label)
        return
    if loss == "log_loss":  # summed class after class (numpy's own order below 8 classes)
        running = w.op("CumSum", [p, w.const(np.array(1))], "running")
        total = w.op("Gather", [running, w.const(np.array([-1]))], "total", axis=1)
        zero = w.op("Equal", [total, w.const(np.array(0, dtype))], "zero")  # each class 1 / K
        p = w.op("Where", [zero, one, p], "p")
        total = w.op("Where", [zero, w.const(np.array(len(coef), dtype)), total], "total")
        w.op("Div", [p, total], output=scores)
    argmax_labels(w, decision, classes, label)


def one_vs_rest(scope: Any, operator: Any, container: Any) -> None:
    """OneVsRestClassifier.predict over linear binary classifiers (the way to a one-vs-rest
    LogisticRegression, now that it has no multi_class): each class's decision function, the
    class of the greatest, a tie going where this scikit-learn's loop sends it (the first
    since it runs in reverse, the last before). skl2onnx's took each class's probability,
    and far out every sigmoid is 1.0: the first class won where scikit-learn's decisions
    still differ. Other estimators are skl2onnx's to convert.

    The second output is predict_proba's where the estimators are logistic (expit of each
    decision, divided by their sum, class after class as numpy sums the estimators' stacked
    columns, unless it is 0; [1 - p, p] for two classes), else the decisions themselves."""
    from skl2onnx.operator_converters.one_vs_rest_classifier import (
        convert_one_vs_rest_classifier,
    )
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.linear_model._base import LinearClassifierMixin

    model = operator.raw_operator
    estimators = model.estimators_
    linear = all(
        isinstance(e, LinearClassifierMixin) and np.shape(e.coef_)[0] == 1 for e in estimators
    )
    if not linear or model.label_binarizer_.y_type_ not in ("binary", "multiclass"):
        convert_one_vs_rest_classifier(scope, operator, container)
        return
    logistic = [
        isinstance(e, LogisticRegression) or (isinstance(e, SGDClassifier) and e.loss == "log_loss")
        for e in estimators
    ]
    probabilities = hasattr(model, "predict_proba")
    if probabilities and not all(logistic):
        raise NotSupported("OneVsRestClassifier's probabilities of non-logistic estimators")
    dtype, _, _ = _dtype(operator)
    w, x, (label, scores) = _writer(scope, operator, container)
    coef = np.concatenate([np.asarray(e.coef_, dtype) for e in estimators])  # [classes, d]
    intercept = np.concatenate([np.atleast_1d(np.asarray(e.intercept_, dtype)) for e in estimators])
    dot = w.op("MatMul", [x, w.const(coef.T, "coef")], "dot")
    decision = w.op("Add", [dot, w.const(intercept, "intercept")], "decision")  # [N, k]
    classes = np.asarray(model.classes_)
    if len(estimators) == 1:  # two classes: the second where the decision is above 0
        index = binary_index(w, w.op("Greater", [decision, w.const(np.array(0, dtype))]))
    else:
        last = int(_ties_go_last(model))
        index = w.op("ArgMax", [decision], "index", axis=1, keepdims=0, select_last_index=last)
    take_classes(w, index, classes, label)
    if not probabilities:
        if len(estimators) == 1:
            w.op("Concat", [w.op("Neg", [decision]), decision], output=scores, axis=1)
        else:
            w.op("Identity", [decision], output=scores)
        return
    p = _expit(w, decision)
    if len(estimators) == 1:
        _two_columns(w, p, np.array(1, dtype), scores)
        return
    running = w.op("CumSum", [p, w.const(np.array(1))], "running")
    total = w.op("Gather", [running, w.const(np.array([-1]))], "total", axis=1)
    zero = w.op("Equal", [total, w.const(np.array(0, dtype))], "zero")  # left as they are
    w.op("Where", [zero, p, w.op("Div", [p, total], "p")], output=scores)


def _ties_go_last(model: Any) -> bool:
    """Whether this scikit-learn's OneVsRestClassifier.predict gives a tie to the last of the
    classes tied (its loop before it ran in reverse, as np.argmax breaks ties): asked of the
    model itself, every estimator made its first, so that every class ties."""
    import warnings

    tied = copy.copy(model)
    tied.estimators_ = [model.estimators_[0]] * len(model.estimators_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fitted with feature names, asked without
        (answer,) = tied.predict(np.zeros((1, model.n_features_in_)))
    return bool(answer == model.classes_[-1])


def isotonic_calibration(
    scope: Any, container: Any, model: Any, T: str, k: int, dtype: Any, proto_type: int
) -> str:
    """CalibratedClassifierCV's isotonic calibrator of class k, in place of skl2onnx's (which
    takes the nearest threshold's value): IsotonicRegression.predict, x clipped to the
    thresholds, then numpy's interp, to which scipy's interp1d hands float64: for the last j
    with x[j] <= v, slope[j] * (v - x[j]) + y[j], its slopes (y[j + 1] - y[j]) / (x[j + 1] -
    x[j]) as it computes them, and y[j] itself at the last threshold."""
    calibrator = model.calibrators[k]
    if dtype is not np.float64 or calibrator.out_of_bounds != "clip":  # as it fits them
        raise NotSupported(f"isotonic calibration in {np.dtype(dtype).name}")
    w = Writer(scope, container)
    value = w.op("Reshape", [T, w.const(np.array([-1, 1]))], "calibrated")
    return _isotonic(w, value, calibrator)


def _isotonic(w: Writer, value: str, regression: Any) -> str:
    """IsotonicRegression.predict of [N, 1] float64 values, clipped to its thresholds."""
    x = np.asarray(regression.X_thresholds_, np.float64)
    y = np.asarray(regression.y_thresholds_, np.float64)
    if x[0] != regression.X_min_ or x[-1] != regression.X_max_ or not (np.diff(x) > 0).all():
        raise NotSupported("isotonic thresholds other than scikit-learn fits")
    if len(x) == 1:  # scikit-learn's constant, whatever the value
        return w.op("Expand", [w.const(y.reshape(1, 1)), w.op("Shape", [value])], "calibrated")
    value = w.op("Clip", [value, w.const(np.array(x[0])), w.const(np.array(x[-1]))])  # NaN stays
    index = w.op("Cast", [w.op("LessOrEqual", [w.const(x[np.newaxis, 1:]), value])], to=INT64)
    index = w.op("ReduceSum", [index, w.const(np.array([1]))], "index", keepdims=0)  # [N]
    slopes = np.append((y[1:] - y[:-1]) / (x[1:] - x[:-1]), 0.0)  # 0 at the last: y[-1]

    def at(table: np.ndarray, hint: str) -> str:
        return w.op("Gather", [w.const(table[:, np.newaxis], hint), index], hint, axis=0)

    away = w.op("Sub", [value, at(x, "start")], "away")
    return w.op("Add", [w.op("Mul", [at(slopes, "slope"), away]), at(y, "level")])


def isotonic_regression_shape(operator: Any) -> None:
    _, _, tensor = _dtype(operator)
    operator.outputs[0].type = tensor([operator.inputs[0].get_first_dimension(), 1])


def isotonic_regression(scope: Any, operator: Any, container: Any) -> None:
    """IsotonicRegression.predict (no converter in skl2onnx): its one feature's value clipped
    to the thresholds and interpolated between them, as isotonic_calibration's are; with
    out_of_bounds="nan", NaN outside them (packaging cannot find that range: --range)."""
    model = operator.raw_operator
    dtype, _, _ = _dtype(operator)
    if dtype is not np.float64 or model.out_of_bounds not in ("clip", "nan"):
        raise NotSupported(f"IsotonicRegression out of bounds {model.out_of_bounds!r}")
    w, x, (output,) = _writer(scope, operator, container)
    value = _isotonic(w, x, model)
    if model.out_of_bounds == "nan":
        below = w.op("Less", [x, w.const(np.array(model.X_min_, np.float64))], "below")
        above = w.op("Greater", [x, w.const(np.array(model.X_max_, np.float64))], "above")
        outside = w.op("Or", [below, above], "outside")
        value = w.op("Where", [outside, w.const(np.array(np.nan)), value], "interpolated")
    w.op("Identity", [value], output=output)


# -- Nearest neighbours weighed by distance ------------------------------------------------


def _by_distance(model: Any, dtype: Any) -> bool:
    """Whether knn_by_distance writes this model: one output, euclidean distances weighed by
    their inverse (or a regressor's alike), in float64; skl2onnx writes the others (its
    weights are the negated distances, floored at 1e-6: every answer off; its uniform
    regressor's answers were up to 1.1 relative off)."""
    y = np.asarray(model._y)
    uniform_regressor = model.weights == "uniform" and not hasattr(model, "classes_")
    return (
        dtype is np.float64
        and (model.weights == "distance" or uniform_regressor)
        and model.effective_metric_ == "euclidean"
        and not model.effective_metric_params_
        and y.ndim == 1
        and model.n_neighbors <= min(128, len(model._fit_X))
    )


def k_means(scope: Any, operator: Any, container: Any) -> None:
    """KMeans.predict (and MiniBatchKMeans's) as scikit-learn's Lloyd code computes it
    (_k_means_lloyd): each centre's squared norm (row_norms, by numpy here as there) plus -2
    times the row's dot product with the centre (its GEMM), then the first least. skl2onnx
    added the row's own squared norm too, which far out (1e15) swamps the rest, so that
    every centre ties. The second output is transform()'s distances."""
    from sklearn.utils.extmath import row_norms

    model = operator.raw_operator
    dtype, _, _ = _dtype(operator)
    w, x, (label, distances) = _writer(scope, operator, container)
    centres = np.asarray(model.cluster_centers_, dtype)
    dot = w.op("MatMul", [x, w.const(centres.T, "centres")], "dot")
    twice = w.op("Mul", [dot, w.const(np.array(-2, dtype), "minus_two")], "twice")
    norms = w.const(row_norms(centres, squared=True).astype(dtype), "norms")
    scores = w.op("Add", [norms, twice], "scores")
    w.op("ArgMin", [scores], output=label, axis=1, keepdims=0, select_last_index=0)
    own = w.op("ReduceSumSquare", [x, w.const(np.array([1]))], "own", keepdims=1)
    squared = w.op("Max", [w.op("Add", [scores, own]), w.const(np.array(0, dtype))], "squared")
    w.op("Sqrt", [squared], output=distances)


def knn_by_distance(scope: Any, operator: Any, container: Any) -> None:
    """KNeighborsRegressor and KNeighborsClassifier with weights="distance", as scikit-learn
    computes them: the k nearest training rows (each distance the square root of the
    squared differences summed feature after feature, as its trees sum them; ties to the
    lower index), weights 1 / d, except that a row with a neighbour at distance 0 (1 / d
    infinite) weighs those by 1 and the others by 0 (_get_weights); then the regressor's
    sum of y * w over the sum of w (np.sum's order), or the classifier's weights summed per
    class in neighbour order (predict_proba's loop), the first greatest's class, and each
    sum over their total (1 where that is 0). A regressor weighing them alike: the mean of
    their y (np.mean: np.sum's order, over k).

    The [N, training rows, features] broadcast is distances.py's: the engine calls the graph
    on slices of a batch."""
    from skl2onnx.operator_converters.nearest_neighbours import (
        convert_nearest_neighbors_classifier,
        convert_nearest_neighbors_regressor,
    )

    model = operator.raw_operator
    classifier = hasattr(model, "classes_")
    dtype, _, _ = _dtype(operator)
    if not _by_distance(model, dtype):
        if classifier:
            convert_nearest_neighbors_classifier(scope, operator, container)
        else:
            convert_nearest_neighbors_regressor(scope, operator, container)
        return
    w, x, outputs = _writer(scope, operator, container)
    k = int(model.n_neighbors)
    rows = w.op("Unsqueeze", [x, w.const(np.array([1]))], "rows")  # [N, 1, F]
    training = w.const(np.asarray(model._fit_X, np.float64), "training")  # [M, F]
    gaps = w.op("Sub", [rows, training], "gaps")  # [N, M, F]
    squares = w.op("ReduceSumSquare", [gaps, w.const(np.array([2]))], "squares", keepdims=0)
    nearest, index = w.ops(
        "TopK",
        [squares, w.const(np.array([k]))],
        [w.fresh("nearest"), w.fresh("index")],
        axis=1,
        largest=0,
        sorted=1,
    )
    if model.weights == "uniform":  # a regressor (_by_distance)
        # the tree's heap starts as k entries of row 0 at an infinite distance, and no row at
        # an infinite distance (a feature far out) takes one's place
        index = w.op("Where", [w.op("IsInf", [nearest]), w.const(np.array(0)), index], "index")
        values = w.op("Gather", [w.const(np.asarray(model._y, np.float64), "y"), index], "values")
        w.op("Div", [_numpy_sum(w, values, k), w.const(np.array(float(k)))], output=outputs[0])
        return
    weights = w.op("Div", [w.const(np.array(1.0)), w.op("Sqrt", [nearest])], "weights")
    exact = w.op("IsInf", [weights], "exact")  # a neighbour at distance 0
    matches = w.op("Cast", [exact], "matches", to=DOUBLE)
    any_exact = w.op("ReduceMax", [matches, w.const(np.array([1]))], "any_exact", keepdims=1)
    any_exact = w.op("Greater", [any_exact, w.const(np.array(0.0))], "any_exact")
    weights = w.op("Where", [any_exact, matches, weights], "weights")
    if not classifier:
        values = w.op("Gather", [w.const(np.asarray(model._y, np.float64), "y"), index], "values")
        total = _numpy_sum(w, w.op("Mul", [values, weights]), k)
        w.op("Div", [total, _numpy_sum(w, weights, k)], output=outputs[0])
        return
    classes = np.asarray(model.classes_)
    codes = w.op("Gather", [w.const(np.asarray(model._y, np.int64), "codes"), index], "codes")
    columns = w.const(np.arange(len(classes)), "columns")
    own = w.op("Equal", [w.op("Unsqueeze", [codes, w.const(np.array([2]))]), columns], "own")
    spread = w.op(
        "Where", [own, w.op("Unsqueeze", [weights, w.const(np.array([2]))]), w.const(np.array(0.0))]
    )
    running = w.op("CumSum", [spread, w.const(np.array(1))], "running")  # neighbour after neighbour
    votes = w.op("Gather", [running, w.const(np.array(k - 1))], "votes", axis=1)  # [N, classes]
    argmax_labels(w, votes, classes, outputs[0])
    total = _numpy_sum(w, votes, len(classes))
    total = w.op(
        "Where", [w.op("Equal", [total, w.const(np.array(0.0))]), w.const(np.array(1.0)), total]
    )
    w.op("Div", [votes, total], output=outputs[1])


def _numpy_sum(w: Writer, values: str, n: int) -> str:
    """np.sum(values, axis=1) of [N, n] float64, [N, 1], in numpy's order (its pairwise sum
    below 129 values): one after the other below 8; else eight running sums over blocks of
    8, added in pairs, then the rest one after the other."""
    if n < 8:
        running = w.op("CumSum", [values, w.const(np.array(1))], "running")
        return w.op("Gather", [running, w.const(np.array([n - 1]))], "sum", axis=1)
    if n > 128:
        raise NotSupported(f"numpy's sum of {n} values")
    blocks = n // 8
    head = w.op(
        "Slice",
        [values, w.const(np.array([0])), w.const(np.array([8 * blocks])), w.const(np.array([1]))],
    )
    head = w.op("Reshape", [head, w.const(np.array([0, blocks, 8]))], "blocks")
    running = w.op("CumSum", [head, w.const(np.array(1))], "running")
    r = w.op("Gather", [running, w.const(np.array(blocks - 1))], "r", axis=1)  # [N, 8]
    parts = w.ops(
        "Split", [r, w.const(np.ones(8, np.int64))], [w.fresh("r") for _ in range(8)], axis=1
    )
    pairs = [w.op("Add", [parts[i], parts[i + 1]]) for i in range(0, 8, 2)]
    total = w.op("Add", [w.op("Add", pairs[:2]), w.op("Add", pairs[2:])], "sum")
    for i in range(8 * blocks, n):
        total = w.op(
            "Add", [total, w.op("Gather", [values, w.const(np.array([i]))], axis=1)], "sum"
        )
    return total


# -- OneHotEncoder -------------------------------------------------------------------------


def _encoded_type(model: Any) -> Any:
    """The skl2onnx tensor type of an encoder's output, as its dtype parameter says: float64
    by default (0 and 1, and the codes, are exact in every type)."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, Int64TensorType

    dtype = np.dtype(model.dtype)
    if dtype.kind in "iu":
        return Int64TensorType
    return DoubleTensorType if dtype == np.float64 else FloatTensorType


def one_hot_parser(scope: Any, model: Any, inputs: Any, custom_parsers: Any = None) -> Any:
    """The encoder's output declared in its own dtype. skl2onnx guesses it from the input:
    float32 for strings, and a ColumnTransformer whose first block encodes strings then
    declared float32 probabilities for the float64 classifier after it, a graph that does
    not load (such pipelines had only a float32 form, 1e-7 off)."""
    operator = scope.declare_local_operator("Float64OneHotEncoder", model)  # registered so
    operator.inputs = inputs
    output = scope.declare_local_variable("variable", _encoded_type(model)())
    operator.outputs.append(output)
    return list(operator.outputs)


def one_hot_shape(operator: Any) -> None:
    model = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _encoded_type(model)([n, len(model.get_feature_names_out())])


def one_hot(scope: Any, operator: Any, container: Any, nulls: Nulls) -> None:
    """OneHotEncoder.transform (skl2onnx's casts floats to integers, 2.5 to 2, and refuses
    infrequent categories): each value compared with its feature's categories (equal, or NaN
    for a NaN category), the categories grouped as scikit-learn groups the infrequent ones
    into one column, a value no category holds counted there where handle_unknown is
    "infrequent_if_exist" or "warn" (else nowhere: zeros), and the dropped column left out.

    Strings with a missing category (a column fitted with missing values, not imputed, NaN
    or None): the string the graph is given a null as stands for it, where `nulls` has one,
    and scikit-learn is given the null as that category (as for string_imputer)."""
    model = operator.raw_operator
    w = Writer(scope, container)
    blocks = [
        _one_hot_block(w, model, index, column, values)
        for index, (column, values) in enumerate(_encoded_columns(w, operator, container, nulls))
    ]
    joined = blocks[0] if len(blocks) == 1 else w.op("Concat", blocks, "encoded", axis=1)
    target = operator.outputs[0].type.to_onnx_type().tensor_type.elem_type
    w.op("Cast", [joined], output=operator.outputs[0].full_name, to=target)


def _encoded_columns(
    w: Writer, operator: Any, container: Any, nulls: Nulls
) -> list[tuple[str, np.ndarray]]:
    """An encoder's features, each as its [N, 1] tensor and its categories as the graph holds
    its values (strings, float64 or int64): a missing category of strings (a column fitted
    with missing values, not imputed, NaN or None; scikit-learn's last) as the string the
    graph is given a null as, where `nulls` has one, and scikit-learn is given the null as
    that category (as for string_imputer)."""
    from skl2onnx.common.data_types import DoubleTensorType, Int64TensorType, StringTensorType

    model = operator.raw_operator
    encoder = type(model).__name__
    columns = []  # each feature's [N, 1] tensor, its kind, and the string of its null alone
    for given in operator.inputs:
        kind = given.type
        if not isinstance(kind, (DoubleTensorType, Int64TensorType, StringTensorType)):
            raise NotSupported(f"{encoder} of {type(kind).__name__}")
        width = given.type.shape[1]
        if not isinstance(width, int):
            raise NotSupported(f"{encoder} of inputs whose width is unknown")
        sources = _sources(container, given.full_name)
        for i in range(width):
            column = given.full_name
            if width > 1:
                column = w.op("Gather", [column, w.const(np.array([i]))], "feature", axis=1)
            # each column's own input, where the columns were joined one input each
            mine = [sources[i]] if len(sources) == width else sources
            columns.append((column, kind, _one_null(nulls, mine)))
    if len(columns) != len(model.categories_):
        raise NotSupported(f"{encoder} given another number of features")
    encoded = []
    for (column, kind, null), categories in zip(columns, model.categories_, strict=True):
        values = np.asarray(categories)
        if isinstance(kind, StringTensorType):
            if not all(isinstance(c, str) for c in values[:-1]):
                raise NotSupported(f"{encoder} of strings with a missing category")
            if not isinstance(values[-1], str):  # a missing category: scikit-learn's last
                learnt = "NaN" if _is_nan(values[-1]) else "None" if values[-1] is None else "?"
                if null is None or null[1] != learnt or null[0] in values[:-1]:
                    raise NotSupported(f"{encoder} of strings with a missing category")
                values = np.array([*values[:-1], null[0]])
            values = values.astype(object)
        elif isinstance(kind, DoubleTensorType):
            values = values.astype(np.float64)
        else:
            values = values.astype(np.int64)
        encoded.append((column, values))
    return encoded


def _hits(w: Writer, column: str, categories: np.ndarray) -> str:
    """[N, categories] booleans: which category each value is (equal, or NaN for a NaN
    category)."""
    hits = w.op("Equal", [column, w.const(categories[np.newaxis])], "hits")
    if categories.dtype.kind == "f" and np.isnan(categories).any():  # scikit-learn's last
        missing = w.const(np.isnan(categories)[np.newaxis])  # onnxruntime has no boolean Where
        hits = w.op("Or", [hits, w.op("And", [missing, w.op("IsNaN", [column])])], "hits")
    return hits


def _places(w: Writer, column: str, categories: np.ndarray) -> tuple[str, str]:
    """[N, 1] each value's category's place (0 where none holds it), and [N, 1] whether one
    does."""
    hit = w.op("Cast", [_hits(w, column, categories)], "hit", to=DOUBLE)  # one 1 at most
    place = w.op("ArgMax", [hit], "place", axis=1, keepdims=1)
    found = w.op("ReduceMax", [hit, w.const(np.array([1]))], "found", keepdims=1)
    return place, w.op("Greater", [found, w.const(np.array(0.0))], "known")


def _one_hot_block(w: Writer, model: Any, index: int, column: str, categories: np.ndarray) -> str:
    """One feature's columns, [N, its columns] float64 (0 or 1), from its categories as the
    graph holds its values (strings, float64 or int64)."""
    hits = w.op("Cast", [_hits(w, column, categories)], "hits", to=DOUBLE)  # [N, categories]
    groups = np.arange(len(categories))
    if model._infrequent_enabled and model._default_to_infrequent_mappings[index] is not None:
        groups = np.asarray(model._default_to_infrequent_mappings[index])
    grouping = np.zeros((len(categories), int(groups.max()) + 1))
    grouping[np.arange(len(categories)), groups] = 1.0
    encoded = hits  # each category its own column, in order, unless infrequent ones group
    if not np.array_equal(groups, np.arange(len(categories))):
        encoded = w.op("MatMul", [hits, w.const(grouping, "grouping")], "encoded")  # one 1 at most
    infrequent = model._infrequent_enabled and model._infrequent_indices[index] is not None
    if infrequent and model.handle_unknown in ("infrequent_if_exist", "warn"):
        found = w.op("ReduceSum", [hits, w.const(np.array([1]))], "found", keepdims=1)
        unknown = w.op("Sub", [w.const(np.array(1.0)), found], "unknown")
        last = np.zeros((1, grouping.shape[1]))
        last[0, -1] = 1.0
        encoded = w.op("Add", [encoded, w.op("Mul", [unknown, w.const(last)])], "encoded")
    dropped = model._drop_idx_after_grouping
    if dropped is not None and dropped[index] is not None:
        kept = np.delete(np.arange(grouping.shape[1]), int(dropped[index]))
        encoded = w.op("Gather", [encoded, w.const(kept)], "kept", axis=1)
    return encoded


# -- OrdinalEncoder --------------------------------------------------------------------------


def ordinal_parser(scope: Any, model: Any, inputs: Any, custom_parsers: Any = None) -> Any:
    """The encoder's output declared in its own dtype (skl2onnx declares float32)."""
    operator = scope.declare_local_operator("Float64OrdinalEncoder", model)
    operator.inputs = inputs
    operator.outputs.append(scope.declare_local_variable("variable", _encoded_type(model)()))
    return list(operator.outputs)


def ordinal_shape(operator: Any) -> None:
    model = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _encoded_type(model)([n, len(model.categories_)])


def ordinal(scope: Any, operator: Any, container: Any, nulls: Nulls) -> None:
    """OrdinalEncoder.transform (skl2onnx's compares numbers in float32, and takes a None or
    NaN category of strings for the text "None" or "nan", and a NaN category's code for its
    place, not encoded_missing_value): each value's category's place among its feature's
    (equal, or NaN for a NaN category; a missing category of strings as _encoded_columns
    gives it), the infrequent ones' grouped into one, encoded_missing_value for a NaN
    category (scikit-learn's last), unknown_value for a value no category holds (with
    handle_unknown="error", the schemas let none arrive)."""
    model = operator.raw_operator
    w = Writer(scope, container)
    infrequent = model._infrequent_enabled  # private: the pinned scikit-learn's
    codes = []
    for index, (column, values) in enumerate(_encoded_columns(w, operator, container, nulls)):
        place, known = _places(w, column, values)
        places = np.arange(len(values), dtype=np.float64)
        if infrequent and model._default_to_infrequent_mappings[index] is not None:
            if index in model._missing_indices:
                raise NotSupported("OrdinalEncoder grouping infrequent categories beside NaN")
            places = np.asarray(model._default_to_infrequent_mappings[index], np.float64)
        if index in model._missing_indices:  # a NaN category, last: encoded_missing_value
            places[model._missing_indices[index]] = model.encoded_missing_value
        code = w.op("Gather", [w.const(places, "places"), place], "code", axis=0)  # [N, 1]
        if model.handle_unknown == "use_encoded_value":
            code = w.op("Where", [known, code, w.const(np.array(float(model.unknown_value)))])
        codes.append(code)
    joined = codes[0] if len(codes) == 1 else w.op("Concat", codes, "codes", axis=1)
    target = operator.outputs[0].type.to_onnx_type().tensor_type.elem_type
    w.op("Cast", [joined], output=operator.outputs[0].full_name, to=target)


# -- TargetEncoder ---------------------------------------------------------------------------


def target_encoder_parser(scope: Any, model: Any, inputs: Any, custom_parsers: Any = None) -> Any:
    """The encodings declared float64, as transform gives them whatever its input."""
    from skl2onnx.common.data_types import DoubleTensorType

    operator = scope.declare_local_operator("Float64TargetEncoder", model)
    operator.inputs = inputs
    operator.outputs.append(scope.declare_local_variable("variable", DoubleTensorType()))
    return list(operator.outputs)


def target_encoder_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    model = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = DoubleTensorType([n, len(model.encodings_)])


def target_encoder(scope: Any, operator: Any, container: Any, nulls: Nulls) -> None:
    """TargetEncoder.transform (no converter in skl2onnx): each value's category's encoding
    (a missing category's too, as _encoded_columns gives it), the target's mean where no
    category holds the value; for a multiclass target, one column per class for each
    feature, in scikit-learn's order."""
    model = operator.raw_operator
    w = Writer(scope, container)
    classes = len(model.classes_) if model.target_type_ == "multiclass" else 1
    means = np.atleast_1d(np.asarray(model.target_mean_, np.float64))[np.newaxis]  # [1, classes]
    blocks = []
    for index, (column, values) in enumerate(_encoded_columns(w, operator, container, nulls)):
        place, known = _places(w, column, values)
        encodings = model.encodings_[index * classes : (index + 1) * classes]
        table = np.stack([np.asarray(e, np.float64) for e in encodings], axis=1)
        place = w.op("Squeeze", [place, w.const(np.array([1]))], "place")  # [N]
        encoded = w.op("Gather", [w.const(table, "encodings"), place], "encoded", axis=0)
        blocks.append(w.op("Where", [known, encoded, w.const(means, "mean")], "encoded"))
    joined = blocks[0] if len(blocks) == 1 else w.op("Concat", blocks, "encoded", axis=1)
    w.op("Identity", [joined], output=operator.outputs[0].full_name)


# -- Binarizer and BernoulliNB ------------------------------------------------------------------


def binarizer(scope: Any, operator: Any, container: Any) -> None:
    """Binarizer.transform: 1 where a value is above the threshold, else 0. skl2onnx's float64
    form gave 1 at the threshold itself (not below it)."""
    dtype, onnx_type, _ = _dtype(operator)
    w, x, (output,) = _writer(scope, operator, container)
    threshold = w.const(np.array(operator.raw_operator.threshold, dtype), "threshold")
    w.op("Cast", [w.op("Greater", [x, threshold], "above")], output=output, to=onnx_type)


def bernoulli_shape(operator: Any) -> None:
    model = operator.raw_operator
    _, _, tensor = _dtype(operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = label_type(model.classes_, n)
    operator.outputs[1].type = tensor([n, len(model.classes_)])


def bernoulli(scope: Any, operator: Any, container: Any) -> None:
    """BernoulliNB in float64 (skl2onnx's probabilities were 2.5e-6 off): each value
    binarized (above `binarize`), the joint log-likelihood as _joint_log_likelihood computes
    it, x.(log p - log(1 - p))^T + (log prior + sum log(1 - p)), the coefficients from numpy
    here; the first greatest's class; probabilities exp(jll - logsumexp(jll)) (onnxruntime's
    takes the greatest out first, as scikit-learn's does; the two may differ in the log-sum's
    last bits)."""
    model = operator.raw_operator
    dtype, onnx_type, _ = _dtype(operator)
    w, x, (label, probabilities) = _writer(scope, operator, container)
    if model.binarize is not None:
        above = w.op("Greater", [x, w.const(np.array(model.binarize, dtype))], "above")
        x = w.op("Cast", [above], "binary", to=onnx_type)
    log_p = np.asarray(model.feature_log_prob_, dtype=np.float64)
    neg = np.log(1 - np.exp(log_p))
    weights = w.const((log_p - neg).T.astype(dtype), "weights")
    base = w.const((model.class_log_prior_ + neg.sum(axis=1)).astype(dtype), "base")
    jll = w.op("Add", [w.op("MatMul", [x, weights], "dot"), base], "jll")
    argmax_labels(w, jll, np.asarray(model.classes_), label)
    log_sum = w.op("ReduceLogSumExp", [jll, w.const(np.array([1]))], "log_sum", keepdims=1)
    w.op("Exp", [w.op("Sub", [jll, log_sum])], output=probabilities)


# -- Registration ----------------------------------------------------------------------------


def voting_classifier(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx's VotingClassifier, also where flatten_transform is on (the default), which
    it refuses: that shapes transform() alone, never predict or predict_proba. Hard voting
    is written here (_hard_vote)."""
    from skl2onnx.operator_converters.voting_classifier import convert_voting_classifier

    if operator.raw_operator.voting == "hard":
        _hard_vote(scope, operator, container)
        return
    if operator.raw_operator.flatten_transform:
        operator.raw_operator = copy.copy(operator.raw_operator)  # the user's stays as it is
        operator.raw_operator.flatten_transform = False
    convert_voting_classifier(scope, operator, container)


def _hard_vote(scope: Any, operator: Any, container: Any) -> None:
    """VotingClassifier.predict with voting="hard": each estimator's label (its class's index:
    they are fitted on the encoded classes) a vote of its weight, added in the estimators'
    order as np.bincount adds them, in float64, and the first greatest wins, as np.argmax
    picks. skl2onnx took each vote from the argmax of the estimator's probabilities, or of an
    SVC's decision function, which is not always its label. The second output is the votes
    (scikit-learn gives no probabilities for a hard vote)."""
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common.data_types import Int64TensorType

    model = operator.raw_operator
    _, onnx_type, tensor = _dtype(operator)
    w = Writer(scope, container)
    label, votes = (o.full_name for o in operator.outputs)
    places = w.const(np.arange(len(model.classes_), dtype=np.int64), "places")
    weights = model._weights_not_none
    total = None
    for i, estimator in enumerate(model.estimators_):
        voter = scope.declare_local_operator(sklearn_operator_name_map[type(estimator)], estimator)
        voter.inputs = operator.inputs
        voter.outputs.append(scope.declare_local_variable(f"label_{i}", Int64TensorType()))
        voter.outputs.append(scope.declare_local_variable(f"scores_{i}", tensor()))
        chosen = w.op("Unsqueeze", [voter.outputs[0].onnx_name, w.const(np.array([1]))], "chosen")
        vote = w.op("Cast", [w.op("Equal", [chosen, places], "is")], "vote", to=DOUBLE)
        if weights is not None:
            vote = w.op("Mul", [vote, w.const(np.array(weights[i], np.float64), "weight")])
        total = vote if total is None else w.op("Add", [total, vote], "votes")
    assert total is not None  # VotingClassifier refuses to fit without an estimator
    argmax_labels(w, total, np.asarray(model.classes_), label)
    w.op("Cast", [total], output=votes, to=onnx_type)


@contextmanager
def float64_converters(nulls: Nulls | None = None) -> Iterator[None]:
    """Within it, skl2onnx converts the classes above with the converters here; its own come
    back after. `nulls`: the string inputs whose null the graph is given as a string only a
    null can be, that string, and what scikit-learn is given (string_imputer, the encoders)."""
    nulls = nulls or {}

    from skl2onnx import update_registered_converter
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
    from skl2onnx.shape_calculators.k_means import calculate_sklearn_kmeans_output_shapes
    from skl2onnx.shape_calculators.linear_classifier import (
        calculate_linear_classifier_output_shapes,
    )
    from skl2onnx.shape_calculators.nearest_neighbours import (
        calculate_sklearn_nearest_neighbours_regressor,
    )
    from skl2onnx.shape_calculators.voting_classifier import voting_classifier_shape_calculator
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.ensemble import VotingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.isotonic import IsotonicRegression
    from sklearn.kernel_approximation import Nystroem
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.linear_model import (
        Perceptron,
        RidgeClassifier,
        RidgeClassifierCV,
        SGDClassifier,
    )
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.naive_bayes import BernoulliNB
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.preprocessing import (
        Binarizer,
        FunctionTransformer,
        KBinsDiscretizer,
        OneHotEncoder,
        OrdinalEncoder,
        PolynomialFeatures,
        PowerTransformer,
        SplineTransformer,
        TargetEncoder,
    )
    from sklearn.svm import SVC, SVR, LinearSVC, NuSVC, NuSVR

    # skl2onnx checks a converter's parameter names: a closure, not a lambda
    def imputer_converter(scope: Any, operator: Any, container: Any) -> None:
        imputer(scope, operator, container, nulls)

    def one_hot_converter(scope: Any, operator: Any, container: Any) -> None:
        one_hot(scope, operator, container, nulls)

    def ordinal_converter(scope: Any, operator: Any, container: Any) -> None:
        ordinal(scope, operator, container, nulls)

    def target_encoder_converter(scope: Any, operator: Any, container: Any) -> None:
        target_encoder(scope, operator, container, nulls)

    table: dict[type, tuple[Callable[..., None], Callable[..., None]]] = {
        SimpleImputer: (imputer_converter, imputer_shape),
        PolynomialFeatures: (polynomial, polynomial_shape),
        TransformedTargetRegressor: (transformed_target, target_shape),
        SVR: (svr, svr_shape),
        NuSVR: (svr, svr_shape),
        Nystroem: (nystroem, nystroem_shape),
        KernelRidge: (kernel_ridge, kernel_ridge_shape),
        SplineTransformer: (splines, spline_shape),
        PowerTransformer: (power_transformer, power_shape),
        KBinsDiscretizer: (bins, bins_shape),
        FunctionTransformer: (function_transformer, function_shape),
        KNeighborsRegressor: (knn_by_distance, calculate_sklearn_nearest_neighbours_regressor),
        KMeans: (k_means, calculate_sklearn_kmeans_output_shapes),
        MiniBatchKMeans: (k_means, calculate_sklearn_kmeans_output_shapes),
        Binarizer: (binarizer, calculate_sklearn_imputer_output_shapes),
        IsotonicRegression: (isotonic_regression, isotonic_regression_shape),
    }
    linear = (
        LinearSVC,
        RidgeClassifier,
        RidgeClassifierCV,
        Perceptron,
        SGDClassifier,
        LinearDiscriminantAnalysis,
    )
    classifiers = {cls: (linear_classifier, linear_classifier_shape) for cls in linear}
    classifiers[VotingClassifier] = (voting_classifier, voting_classifier_shape_calculator)
    classifiers[SVC] = classifiers[NuSVC] = (svc_classifier, svc_shape)
    classifiers[KNeighborsClassifier] = (knn_by_distance, calculate_linear_classifier_output_shapes)
    classifiers[OneVsRestClassifier] = (one_vs_rest, calculate_linear_classifier_output_shapes)
    classifiers[BernoulliNB] = (bernoulli, bernoulli_shape)
    from skl2onnx.common import tree_ensemble
    from skl2onnx.operator_converters import calibrated_classifier_cv as calibration

    skl2onnx_isotonic = calibration._transform_isotonic  # private: the package's pin's
    calibration._transform_isotonic = isotonic_calibration
    skl2onnx_switch_point = tree_ensemble.find_switch_point  # as private
    tree_ensemble.find_switch_point = _finite_switch_point(skl2onnx_switch_point)
    try:
        encoders = [OneHotEncoder, OrdinalEncoder, TargetEncoder]
        with registrations_restored([*table, *classifiers, *encoders]):
            for cls, (convert, shape) in table.items():
                # skl2onnx's converter, which knn_by_distance hands uniform weights to, reads it
                knn = {"optim": [None, "cdist"]} if cls is KNeighborsRegressor else None
                update_registered_converter(
                    cls, f"Float64{cls.__name__}", shape, convert, options=knn
                )
            update_registered_converter(
                OneHotEncoder,
                "Float64OneHotEncoder",
                one_hot_shape,
                one_hot_converter,
                parser=one_hot_parser,
            )
            update_registered_converter(
                OrdinalEncoder,
                "Float64OrdinalEncoder",
                ordinal_shape,
                ordinal_converter,
                parser=ordinal_parser,
            )
            update_registered_converter(
                TargetEncoder,
                "Float64TargetEncoder",
                target_encoder_shape,
                target_encoder_converter,
                parser=target_encoder_parser,
            )
            for cls, (convert, shape) in classifiers.items():
                # skl2onnx's options for a classifier are taken, and change nothing here; its
                # SVC converter, which svc_classifier hands the others to, reads two more
                options: dict[str, list[Any]] = {
                    "zipmap": [True, False, "columns"],
                    "nocl": [True, False],
                }
                if cls in (SVC, NuSVC, KNeighborsClassifier, OneVsRestClassifier):
                    options |= {"output_class_labels": [False, True], "raw_scores": [True, False]}
                if cls is KNeighborsClassifier:
                    options["optim"] = [None, "cdist"]
                update_registered_converter(
                    cls,
                    f"Float64{cls.__name__}",
                    shape,
                    convert,
                    options=options,
                    parser=parse_classifier,
                )
            yield
    finally:
        calibration._transform_isotonic = skl2onnx_isotonic
        tree_ensemble.find_switch_point = skl2onnx_switch_point


def _finite_switch_point(find: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """skl2onnx's search for a float64 tree threshold's float32 neighbours, refusing what it
    never finishes: a threshold of infinity, which scikit-learn's trees fitted with missing
    values hold (its neighbours are then NaN, which it halves forever)."""

    def finite(low: Any, high: Any) -> Any:
        if not (np.isfinite(low) and np.isfinite(high)):
            raise NotSupported("a tree threshold of infinity, which skl2onnx cannot convert")
        return find(low, high)

    return finite
