"""A clusterer and an outlier detector (testkit/zoo.py), packaged with the command and served
in process by both engines: their own task in the manifest, /metadata and the V2 metadata,
integer labels everywhere (/predict, the OpenAPI answer, the V2 tensor), each scikit-learn's."""

from __future__ import annotations

from typing import Any

import pytest

from testkit import zoo
from webapp import create_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # it packages with the command
TASKS = {"k-means": "clustering", "isolation-forest": "outlier_detection"}


@pytest.fixture(scope="module", params=sorted(TASKS))
def specimen(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return zoo.build(request.param, tmp_path_factory.mktemp(request.param))


@pytest.mark.parametrize("engine", ["onnx", "sklearn"])
def test_integer_labels_under_their_own_task(specimen: zoo.Specimen, engine: str) -> None:
    client = create_app({"MODEL_PATH": str(specimen.path), "ENGINE": engine}).test_client()
    task = TASKS[specimen.name]
    metadata = client.get("/metadata").get_json()
    assert (metadata["task"], metadata["engine"]["name"]) == (task, engine)

    expected = specimen.predict()
    assert all(type(label) is int for label in expected)
    answers = [client.post("/predict", json=row).get_json()["prediction"] for row in specimen.rows]
    assert answers == expected and all(type(a) is int for a in answers)
    batch = client.post("/predict", json={"instances": specimen.rows}).get_json()
    assert batch == {"predictions": expected}

    schema = client.get("/openapi.json").get_json()["components"]["schemas"]["Prediction"]
    assert schema["properties"]["prediction"]["type"] == "integer"

    model = client.get(f"/v2/models/{specimen.name}").get_json()
    assert model["outputs"][0]["datatype"] == "INT64"
    (matrix,) = model["inputs"]  # numbers only: one [N, features] tensor
    rows = [list(r.values()) for r in specimen.rows]
    shape = [len(rows), len(rows[0])]
    inputs = [{"name": matrix["name"], "shape": shape, "datatype": "FP64", "data": rows}]
    answer = client.post(f"/v2/models/{specimen.name}/infer", json={"inputs": inputs}).get_json()
    output = answer["outputs"][0]
    assert (output["datatype"], output["data"]) == ("INT64", expected), answer
