"""Your own model, served in process: for generated rows, the service answers exactly as
scikit-learn does, and refuses a bad value with a 422 that names its feature (testkit/zoo.py)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testkit import zoo
from webapp import create_app
from webapp.core.model import load_model
from webapp.core.vocabulary import Feature

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # it packages with the command
SETTINGS = settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Some served by scikit-learn (deliveries has no compiled form, knn's ties otherwise far
# out), the others by onnxruntime: the property
# below is also the proof that the compiled engine answers as scikit-learn does (for
# column-transformer, with its strings imputed; for xgboost-categories, with its pandas
# categories coded). log-scale's features are bounded at zero, exclusive, by what its
# logarithm answers for; deliveries is fitted on a DataFrame.
MODELS = [
    "column-transformer",
    "hist-gradient-boosting",
    "log-scale",
    "string-labels",
    "knn",
    "random-forest",
    "xgboost-categories",
    "deliveries",
]


@pytest.fixture(scope="module", params=MODELS)
def own(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    specimen = zoo.build(request.param, tmp_path_factory.mktemp(request.param))
    client = create_app({"MODEL_PATH": str(specimen.path)}).test_client()
    return specimen, client, load_model(specimen.path, engine="sklearn")


def value_of(feature: Feature) -> st.SearchStrategy[Any]:
    """A valid value for the feature."""
    if feature.type == "category":
        choices = feature.categories
        kind: st.SearchStrategy[Any] = (
            st.text(max_size=8) if choices is None else st.sampled_from(choices)
        )
    else:
        low = -1e6 if feature.min is None else max(feature.min, -1e6)
        high = 1e6 if feature.max is None else min(feature.max, 1e6)
        kind = (
            st.integers(int(low), int(high))
            if feature.type == "integer"
            else st.floats(
                low,
                high,
                exclude_min=not feature.min_inclusive,
                exclude_max=not feature.max_inclusive,
                allow_nan=False,
            )
        )
    return st.none() | kind if feature.nullable else kind


def rows_for(features: tuple[Feature, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({f.name: value_of(f) for f in features})


@SETTINGS
@given(data=st.data())
def test_generated_rows_answer_as_scikit_learn(own: Any, data: st.DataObject) -> None:
    specimen, client, model = own
    rows = data.draw(st.lists(rows_for(model.features), min_size=1, max_size=5))
    frame = model.engine.estimator_input(model.columns(rows))
    expected = np.asarray(specimen.estimator.predict(frame)).tolist()
    got = client.post("/predict", json={"instances": rows}).get_json()
    assert got == {"predictions": expected}
    if model.probabilities:
        answer = client.post("/predict?probabilities=true", json=rows[0]).get_json()
        first = frame.iloc[:1] if hasattr(frame, "iloc") else frame[:1]
        proba = specimen.estimator.predict_proba(first)[0]
        # answered to 12 decimals (the compiled trees are exact)
        assert np.allclose(list(answer["probabilities"].values()), proba, rtol=0, atol=1e-11)


def wrong_value(feature: Feature) -> st.SearchStrategy[Any]:
    """A value the feature must refuse."""
    containers = st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(), st.integers())
    wrong = [st.booleans(), containers]
    numbers = st.floats(allow_nan=False, allow_infinity=False) | st.integers()
    wrong.append(numbers if feature.type == "category" else st.text(max_size=5))
    if not feature.nullable:
        wrong.append(st.none())
    if feature.categories is not None:
        wrong.append(st.text(max_size=8).filter(lambda t: t not in feature.categories))
    if feature.max is not None:
        wrong.append(st.just(feature.max * 2 + 1 if feature.max >= 0 else feature.max / 2 + 1))
    if feature.min is not None:
        below = st.floats(max_value=feature.min, exclude_max=feature.min_inclusive)
        wrong.append(below.filter(math.isfinite))
    if feature.type == "integer":
        fractions = st.floats(-1e6, 1e6, allow_nan=False).filter(lambda x: not x.is_integer())
        wrong.append(fractions)
    return st.one_of(wrong)


@SETTINGS
@given(data=st.data())
def test_a_bad_value_is_a_422_naming_its_feature(own: Any, data: st.DataObject) -> None:
    _, client, model = own
    row = data.draw(rows_for(model.features))
    feature = data.draw(st.sampled_from(model.features))
    row[feature.name] = data.draw(wrong_value(feature))
    response = client.post("/predict", json=row)
    assert response.status_code == 422, (row, response.get_json())
    assert set(response.get_json()["errors"]) == {feature.name}
    batch = client.post("/predict", json={"instances": [row]})
    assert batch.status_code == 422
    messages = response.get_json()["errors"][feature.name]
    assert batch.get_json()["errors"] == {"instances": {"0": {feature.name: messages}}}
