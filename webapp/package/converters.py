"""Converters for steps skl2onnx 1.20 writes only in float32, wrongly, or not at all.

Packaging side only, as trees.py. Within `float64_converters()` skl2onnx converts these with
the arithmetic scikit-learn does, in the input's float type:

- SimpleImputer on numbers (onnxruntime's Imputer has no float64 kernel, and skl2onnx's
  missing-value indicator picks other columns): `where(missing, statistic, x)`, the columns
  whose statistic is NaN dropped, then the indicator's columns;
- PolynomialFeatures (skl2onnx's float64 graph mixes float32 in): each term of degree d as
  scikit-learn's transform makes it, a term of degree d - 1 times the feature it lacks;
- TransformedTargetRegressor (no converter): the regressor's graph, then the inverse of
  `func` (exp, log, sqrt, none) or of a StandardScaler, as transformer_.inverse_transform.

A string imputer goes to skl2onnx's own converter; what is not covered raises NotSupported,
and compile.py tries the next form or leaves the model to scikit-learn.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from onnx import numpy_helper

from .trees import DOUBLE, FLOAT, NotSupported, Writer

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


def imputer_shape(operator: Any, original: Callable[[Any], None]) -> None:
    model = operator.raw_operator
    if not _numeric_imputer(model):
        original(operator)
        return
    _, _, tensor = _dtype(operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = tensor([n, _imputer_columns(model)])


def imputer(scope: Any, operator: Any, container: Any, original: Callable[..., None]) -> None:
    """SimpleImputer.transform: missing values (NaN, or the number given) become the column's
    statistic; columns without one are dropped (unless keep_empty_features, which fills 0);
    the indicator (add_indicator) appends 1.0 where a value was missing, for its features."""
    model = operator.raw_operator
    if not _numeric_imputer(model):
        original(scope, operator, container)
        return
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
    value = OnnxSubEstimator(model.regressor_, operator.inputs[0], op_version=opv)
    transformer = model.transformer_
    last = "OnnxIdentity"
    if type(transformer) is FunctionTransformer:
        inverse = transformer.inverse_func
        name = getattr(inverse, "__name__", "")
        if transformer.inv_kw_args:
            raise NotSupported("an inverse function with arguments")
        if inverse is not None and (name not in INVERSES or inverse is not getattr(np, name)):
            raise NotSupported(f"the inverse function {name or inverse!r}")
        last = "OnnxIdentity" if inverse is None else f"Onnx{INVERSES[name]}"
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


# -- Registration ----------------------------------------------------------------------------


@contextmanager
def float64_converters() -> Iterator[None]:
    """Within it, skl2onnx converts the classes above with the converters here; its own come
    back after."""
    from skl2onnx import update_registered_converter
    from skl2onnx._parse import sklearn_parsers_map
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common._registration import get_converter, get_shape_calculator
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import PolynomialFeatures

    own_imputer = sklearn_operator_name_map[SimpleImputer]
    original_convert, original_shape = get_converter(own_imputer), get_shape_calculator(own_imputer)

    # skl2onnx checks a converter's parameter names: closures, not lambdas
    def imputer_converter(scope: Any, operator: Any, container: Any) -> None:
        imputer(scope, operator, container, original_convert)

    def imputer_shape_calculator(operator: Any) -> None:
        imputer_shape(operator, original_shape)

    table: dict[type, tuple[Callable[..., None], Callable[..., None]]] = {
        SimpleImputer: (imputer_converter, imputer_shape_calculator),
        PolynomialFeatures: (polynomial, polynomial_shape),
        TransformedTargetRegressor: (transformed_target, target_shape),
    }
    saved = [(t, dict(t)) for t in (sklearn_operator_name_map, sklearn_parsers_map)]
    try:
        for cls, (convert, shape) in table.items():
            update_registered_converter(cls, f"Float64{cls.__name__}", shape, convert)
        yield
    finally:
        for t, before in saved:
            for cls in table:
                if cls in before:
                    t[cls] = before[cls]
                else:
                    t.pop(cls, None)
