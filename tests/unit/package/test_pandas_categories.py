"""XGBoost and LightGBM fitted on pandas category columns (the zoo serves them end to end):
the categories are read from the fitted model in their own order, not the sorted one a table
would give; categories that are not strings are refused in one line."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from xgboost import XGBClassifier

from webapp.package.describe import PackageError, describe

pytestmark = pytest.mark.unit
ORDER = ["red", "green", "blue", "grey"]  # not sorted: the codes the trees learnt follow it


def table(colour: Any) -> tuple[pd.DataFrame, Any]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "colour": pd.Categorical(colour(rng))})
    return frame, (frame["x"] + (frame["colour"] == frame["colour"].iloc[0]) > 0.5).astype(int)


@pytest.mark.parametrize(
    "fit",
    [
        lambda: XGBClassifier(n_estimators=5, enable_categorical=True),
        lambda: LGBMClassifier(n_estimators=5, n_jobs=1, verbose=-1),
    ],
)
def test_the_fitted_order_is_recorded_without_a_table(fit: Any) -> None:
    frame, y = table(lambda rng: pd.Categorical(rng.choice(ORDER, 300), categories=ORDER))
    manifest = describe(fit().fit(frame, y))
    colour = manifest["features"][1]
    assert (colour["type"], colour["pandas_categories"], colour["categories"]) == (
        "category",
        ORDER,
        ORDER,
    )


def test_categories_that_are_not_strings_are_refused() -> None:
    frame, y = table(lambda rng: rng.choice([3, 7, 9], 300))
    model = XGBClassifier(n_estimators=5, enable_categorical=True).fit(frame, y)
    with pytest.raises(PackageError, match="only pandas categories of strings"):
        describe(model)
