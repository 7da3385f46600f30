"""The API through Flask's test client: the validation policy, batches, errors, other models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.datasets import load_iris, load_wine

from testkit.processes import ROOT
from testkit.samples import SETOSA
from tests.conftest import send_unsized
from webapp import create_app
from webapp.core.model import load_model, sha256_hex
from webapp.runtime.settings import ConfigError

pytestmark = pytest.mark.unit

FEATURES = list(SETOSA)


def post(client: FlaskClient, document: Any, query: str = "") -> Any:
    return client.post(f"/predict{query}", json=document)


def test_seed_contract(client: FlaskClient) -> None:
    assert client.get("/health").data == b'{"status":"ok"}'
    assert post(client, SETOSA).data == b'{"prediction":0}'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5.1", "Not a valid number."),
        (True, "Not a valid number."),
        (None, "Field may not be null."),
        ([5.1], "Not a valid number."),
        ({"v": 5.1}, "Not a valid number."),
        (0, "Must be greater than 0.0 and less than or equal to 100.0."),
        (-1.5, "Must be greater than 0.0 and less than or equal to 100.0."),
        (100.000001, "Must be greater than 0.0 and less than or equal to 100.0."),
        (10**400, "Not a finite number."),
    ],
)
def test_invalid_value_names_the_field(client: FlaskClient, value: Any, message: str) -> None:
    response = post(client, {**SETOSA, "petal_length": value})
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"petal_length": [message]}


def test_boundaries_of_the_range(client: FlaskClient) -> None:
    assert post(client, {**SETOSA, "sepal_length": 100}).status_code == 200
    assert post(client, {**SETOSA, "sepal_length": 5e-324}).status_code == 200
    assert post(client, {**SETOSA, "sepal_length": 7}).status_code == 200  # ints are numbers


def test_every_missing_and_unknown_field_is_named(client: FlaskClient) -> None:
    response = post(client, {"sepal_length": 5.1, "Sepal_Width": 3.5})
    errors = response.get_json()["errors"]
    assert errors == {
        "sepal_width": ["Missing data for required field."],
        "petal_length": ["Missing data for required field."],
        "petal_width": ["Missing data for required field."],
        "Sepal_Width": ["Unknown field."],
    }


@pytest.mark.parametrize("document", [[SETOSA], "setosa", 5.1, None, True])
def test_non_object_documents_are_rejected(client: FlaskClient, document: Any) -> None:
    response = client.post("/predict", data=json.dumps(document), content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["errors"] == {
        "_schema": ['Must be an object of features, or {"instances": [...]} for a batch of rows.']
    }


def test_a_batch_route_says_to_wrap_rows_in_instances(client: FlaskClient) -> None:
    path = "/v1/models/iris-logistic-regression:predict"
    response = client.post(path, data=json.dumps([SETOSA]), content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["errors"] == {
        "_schema": ['Must be an object: {"instances": [...]}, the rows in a list.']
    }


def test_batch_errors_carry_the_instance_index(client: FlaskClient) -> None:
    response = post(
        client,
        {"instances": [SETOSA, [5.1, 3.5, "1.4", 0.2], {**SETOSA, "petal_width": -1}, [1, 2]]},
    )
    assert response.status_code == 422
    assert response.get_json()["errors"] == {
        "instances": {
            "1": {"petal_length": ["Not a valid number."]},
            "2": {"petal_width": ["Must be greater than 0.0 and less than or equal to 100.0."]},
            "3": ["Must hold exactly 4 numbers, in the order of the features."],
        }
    }


@pytest.mark.parametrize(
    "document",
    [
        {"instances": "all"},
        {"instances": None},
        {"instances": [5.1]},
        {"instances": [SETOSA], "parameters": {"threshold": 0.5}},
        {"instances": [SETOSA], **SETOSA},
    ],
)
def test_malformed_batches(client: FlaskClient, document: Any) -> None:
    response = post(client, document)
    assert response.status_code == 422
    assert "predictions" not in response.get_json()


def test_batch_predictions_are_in_order(client: FlaskClient) -> None:
    X = load_iris().data
    expected = load_model(ROOT / "model.pkl").predict(X)
    response = post(client, {"instances": X.tolist()})
    assert response.get_json() == {"predictions": expected}
    objects = [dict(zip(FEATURES, row, strict=True)) for row in X.tolist()]
    assert post(client, {"instances": objects}).get_json() == {"predictions": expected}


def test_batch_of_the_maximum_size(client: FlaskClient) -> None:
    rows = np.tile(load_iris().data, (67, 1))[:10_000].tolist()
    response = post(client, {"instances": rows})
    assert response.status_code == 200
    assert len(response.get_json()["predictions"]) == 10_000
    too_many = post(client, {"instances": rows + rows[:1]})
    assert too_many.status_code == 422
    assert too_many.get_json()["errors"] == {
        "instances": ["Must hold between 1 and 10000 instances."]
    }


def test_batch_limit_is_configurable(iris_model: Path) -> None:
    client = create_app({"MODEL_PATH": str(iris_model), "MAX_BATCH_SIZE": "2"}).test_client()
    assert post(client, {"instances": [SETOSA] * 2}).status_code == 200
    assert post(client, {"instances": [SETOSA] * 3}).status_code == 422


def test_body_limit_is_configurable(iris_model: Path) -> None:
    client = create_app({"MODEL_PATH": str(iris_model), "MAX_CONTENT_LENGTH": 100}).test_client()
    assert post(client, SETOSA).status_code == 200
    response = post(client, {"instances": [SETOSA] * 3})
    assert response.status_code == 413
    assert response.headers["Connection"] == "close"


@pytest.mark.parametrize("target", ["client", "function_client"])
def test_chunked_body_over_the_limit_is_not_read_to_the_end(
    target: str, request: pytest.FixtureRequest
) -> None:
    """No Content-Length (chunked): reading stops just past the limit, on both targets.

    functions-framework reads the whole body after every response unless it is told not to.
    """
    response, read = send_unsized(request.getfixturevalue(target), "POST", "/predict", 10**8)
    assert response.status_code == 413
    assert response.get_json()["code"] == 413
    assert read <= 2 * 1024 * 1024 + 64 * 1024


@pytest.mark.parametrize("target", ["client", "function_client"])
@pytest.mark.parametrize(
    ("length", "status", "message"),
    [
        ("1" * 4301, 413, "Request body too large."),  # int() refuses 4,300+ digits
        ("0" * 4300 + str(len(json.dumps(SETOSA))), 200, None),  # leading zeros are allowed
        ("9" * 20, 413, "Request body too large."),
        ("\u00b2", 400, "Content-Length must be the body's length in bytes."),  # isdigit()
        ("+42", 400, "Content-Length must be the body's length in bytes."),
        ("4_2", 400, "Content-Length must be the body's length in bytes."),
    ],
)
def test_a_content_length_is_parsed_bounded(
    target: str, length: str, status: int, message: str | None, request: pytest.FixtureRequest
) -> None:
    """What gunicorn's parser refuses before the app does not reach the app there, but the
    test client and Flask's dev server pass any Content-Length on: never a 500."""
    client = request.getfixturevalue(target)
    body = json.dumps(SETOSA).encode()
    response = client.post(
        "/predict",
        data=body,
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": length},
    )
    answer = response.get_json()
    assert (response.status_code, answer.get("message")) == (status, message), answer


@pytest.mark.parametrize("target", ["client", "function_client"])
def test_an_encoded_slash_is_no_route(target: str, request: pytest.FixtureRequest) -> None:
    """werkzeug's test client decodes %2F into PATH_INFO, as servers do; the path as sent is in
    RAW_URI and REQUEST_URI, and with an encoded slash it is no route's (SECURITY.md)."""
    client = request.getfixturevalue(target)
    name = "iris-logistic-regression"
    rows = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1] * 4}]}
    for path in (f"/v2/models/{name}%2Finfer", f"/v2/models/{name}%2finfer"):
        answer = client.post(path, json=rows)
        assert (answer.status_code, answer.get_json()) == (404, {"error": "No such route."})
    assert client.post(f"/v2/models/{name}/infer", json=rows).status_code == 200
    answer = client.get(f"/v2/models/{name}%2Fready")
    assert (answer.status_code, answer.get_json()) == (404, {"error": "No such route."})
    answer = client.post(f"/v1/models%2F{name}:predict", json={"instances": [[1] * 4]})
    assert answer.status_code == 404 and answer.get_json()["message"] == "No such route."


def test_probabilities_in_a_batch(client: FlaskClient) -> None:
    response = post(client, {"instances": [SETOSA, [6.3, 3.3, 6.0, 2.5]]}, "?probabilities=1")
    first, second = response.get_json()["predictions"]
    assert (first["prediction"], first["label"]) == (0, "setosa")
    assert (second["prediction"], second["label"]) == (2, "virginica")
    assert second["probabilities"]["virginica"] > 0.5


def test_probabilities_false_keeps_the_plain_answer(client: FlaskClient) -> None:
    assert post(client, SETOSA, "?probabilities=false").data == b'{"prediction":0}'
    assert post(client, SETOSA, "?probabilities=maybe").status_code == 422


def test_metadata(client: FlaskClient, iris_model: Path) -> None:
    document = client.get("/metadata").get_json()
    manifest = json.loads(iris_model.with_suffix(".json").read_text())
    assert document["sha256"] == sha256_hex(iris_model.with_suffix(".json").read_bytes())
    assert document["engine"]["name"] == "onnx"
    assert document["features"] == manifest["features"]
    assert document["classes"][0] == {"value": 0, "label": "setosa"}
    assert (document["task"], document["input"], document["probabilities"]) == (
        "classification",
        "array",
        True,
    )
    versions = {"python", "scikit-learn", "numpy", "scipy", "pandas", "joblib"}
    assert set(document["versions"]) == versions


def test_errors_never_echo_the_input(client: FlaskClient) -> None:
    secret = "<script>alert(1)</script>"
    for response in (
        client.post("/predict", data=secret, content_type="application/json"),
        post(client, {**SETOSA, "petal_width": secret}),
        client.get(f"/{secret}"),
    ):
        assert response.status_code in (400, 404, 422)
        assert secret not in response.get_data(as_text=True)
        assert response.content_type == "application/json"


def test_unexpected_failure_is_a_bare_500(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    model = app.extensions["prediction_service"].predictor.model

    def explode(rows: Any) -> list[int]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(model, "predict", explode)
    response = app.test_client().post("/predict", json=SETOSA)
    assert response.status_code == 500
    assert response.get_json() == {
        "code": 500,
        "status": "Internal Server Error",
        "message": "Internal server error.",
    }


def test_ready_is_503_when_the_self_check_fails(app: Flask) -> None:
    model = app.extensions["prediction_service"].predictor.model
    model.manifest["self_check"]["predictions"] = [2, 2, 2]
    response = app.test_client().get("/ready")
    assert response.status_code == 503
    assert response.get_json()["code"] == 503


def test_another_model_through_model_path(wine_model: Path) -> None:
    """The wine classifier: 13 features, its own names and ranges, no code change."""
    client = create_app({"MODEL_PATH": str(wine_model)}).test_client()
    data = load_wine()
    row = dict(zip(data.feature_names, data.data[0].tolist(), strict=True))
    assert post(client, row).get_json() == {"prediction": int(data.target[0])}
    assert post(client, {"instances": data.data[:5].tolist()}).status_code == 200
    missing = post(client, {k: v for k, v in row.items() if k != "proline"})
    assert missing.get_json()["errors"] == {"proline": ["Missing data for required field."]}
    assert post(client, SETOSA).status_code == 422


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"MAX_BATCH_SIZE": "ten"}, "MAX_BATCH_SIZE must be a whole number"),
        ({"MAX_BATCH_SIZE": "0"}, "MAX_BATCH_SIZE must be between 1"),
        ({"MAX_CONTENT_LENGTH": "-5"}, "MAX_CONTENT_LENGTH must be between 1"),
        ({"MODEL_SHA256": "abc"}, "MODEL_SHA256 must be 64 hexadecimal"),
    ],
)
def test_bad_settings_stop_the_factory(config: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_app(config)


def test_settings_come_from_the_environment(
    iris_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_PATH", str(iris_model))
    monkeypatch.setenv("MAX_BATCH_SIZE", "1")
    client = create_app().test_client()
    assert post(client, {"instances": [SETOSA, SETOSA]}).status_code == 422
