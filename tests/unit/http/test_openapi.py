"""The OpenAPI document: valid, generated from the live schemas, and true of real responses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from flask.testing import FlaskClient
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate
from sklearn.svm import SVC

from testkit.samples import SETOSA
from webapp import create_app
from webapp.package import command

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    document: dict[str, Any] = create_app().test_client().get("/openapi.json").get_json()
    return document


def conforms(spec: dict[str, Any], schema: dict[str, Any], document: Any) -> None:
    """Validate `document` against `schema`, resolving refs inside the spec's components."""
    OAS30Validator({**schema, "components": spec["components"]}).validate(document)


def test_spec_is_valid_openapi(spec: dict[str, Any]) -> None:
    validate(spec)
    assert spec["openapi"] == "3.0.3"
    assert set(spec["paths"]) == {
        "/health",
        "/ready",
        "/metadata",
        "/predict",
        "/metrics",
        "/openapi.json",
        "/v1/models/{name}",
        "/v1/models/{name}:predict",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        *(
            f"/v2/models/{{name}}{version}{action}"
            for version in ("", "/versions/{version}")
            for action in ("", "/ready", "/infer")
        ),
    }


def test_spec_comes_from_the_served_model(wine_model: Path) -> None:
    wine = create_app({"MODEL_PATH": str(wine_model)}).test_client()
    instance = wine.get("/openapi.json").get_json()["components"]["schemas"]["Instance"]
    assert len(instance["properties"]) == 13 and "proline" in instance["required"]


def test_exclusive_minimum_is_documented(spec: dict[str, Any]) -> None:
    prop = spec["components"]["schemas"]["Instance"]["properties"]["petal_width"]
    assert (prop["minimum"], prop.get("exclusiveMinimum"), prop["maximum"]) == (0, True, 100)


REQUESTS = [
    ("/predict", SETOSA, 200),
    ("/predict?probabilities=true", SETOSA, 200),
    ("/predict", {"instances": [SETOSA, [6.3, 3.3, 6.0, 2.5]]}, 200),
    ("/predict?probabilities=1", {"instances": [SETOSA, [6.3, 3.3, 6.0, 2.5]]}, 200),
    ("/predict", {**SETOSA, "petal_width": "x"}, 422),
    ("/predict", {"instances": [[1, 2]]}, 422),
]


@pytest.mark.parametrize(("path", "document", "status"), REQUESTS)
def test_real_responses_conform(
    spec: dict[str, Any], client: FlaskClient, path: str, document: Any, status: int
) -> None:
    response = client.post(path, json=document)
    assert response.status_code == status
    declared = spec["paths"]["/predict"]["post"]["responses"][str(status)]
    conforms(spec, declared["content"]["application/json"]["schema"], response.get_json())


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [(b"{", "application/json", 400), (b"{}", "text/plain", 415), (b" " * 3_000_000, None, 413)],
)
def test_error_responses_conform(
    spec: dict[str, Any], client: FlaskClient, body: bytes, content_type: str | None, status: int
) -> None:
    response = client.post("/predict", data=body, content_type=content_type or "application/json")
    assert response.status_code == status
    conforms(spec, spec["components"]["schemas"]["Error"], response.get_json())


@pytest.mark.parametrize("path", ["/health", "/ready", "/metadata", "/openapi.json"])
def test_get_responses_conform(spec: dict[str, Any], client: FlaskClient, path: str) -> None:
    response = client.get(path)
    declared = spec["paths"][path]["get"]["responses"]["200"]
    conforms(spec, declared["content"]["application/json"]["schema"], response.get_json())


def test_examples_in_the_spec_are_accepted(spec: dict[str, Any], client: FlaskClient) -> None:
    examples = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    for example in examples["examples"].values():
        assert client.post("/predict", json=example["value"]).status_code == 200


def test_docs_page_is_served_locally(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.content_type.startswith("text/html")
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html  # no CDN
    for asset in ("docs/swagger-ui-bundle.js", "docs/swagger-ui.css"):
        assert asset in html
        response = client.get(f"/{asset}")
        assert response.status_code == 200 and len(response.data) > 10_000
    assert client.get("/docs/../model.pkl").status_code == 404
    assert client.get("/docs/index.html").status_code == 404


def test_function_serves_the_same_spec(function_client: FlaskClient, spec: dict[str, Any]) -> None:
    assert json.loads(function_client.get("/openapi.json").data) == spec
    assert function_client.get("/docs/swagger-ui.css").status_code == 200


def test_paths_come_from_the_route_table(iris_model: Path) -> None:
    """A route the table adds (a Vertex AI alias) is documented like the one it stands for."""
    config = {"MODEL_PATH": str(iris_model), "AIP_PREDICT_ROUTE": "/v1/endpoints/1:predict"}
    spec = create_app(config).test_client().get("/openapi.json").get_json()
    validate(spec)
    alias = spec["paths"]["/v1/endpoints/1:predict"]["post"]
    assert alias == spec["paths"]["/predict"]["post"]


def output_names(spec: dict[str, Any]) -> list[str]:
    names: list[str] = spec["components"]["schemas"]["RequestOutput"]["properties"]["name"]["enum"]
    return names


def test_v2_outputs_are_the_served_models(spec: dict[str, Any], tmp_path: Path) -> None:
    """An infer request may ask for the outputs the model gives, by name, and the document
    says which: predict_proba only for a model with probabilities. Others are a 400."""
    assert output_names(spec) == ["predict", "predict_proba"]
    X = np.random.default_rng(0).normal(size=(60, 2))
    joblib.dump(SVC().fit(X, X[:, 0] > 0), tmp_path / "model.pkl")
    assert command.main([str(tmp_path / "model.pkl"), "--name", "svc"]) == 0
    svc = create_app({"MODEL_PATH": str(tmp_path / "model.pkl")}).test_client()
    assert output_names(svc.get("/openapi.json").get_json()) == ["predict"]
    rows = [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [0.5, 0.5]}]
    for name, status in (("predict", 200), ("predict_proba", 400), ("label", 400)):
        answer = svc.post(
            "/v2/models/svc/infer", json={"inputs": rows, "outputs": [{"name": name}]}
        )
        assert answer.status_code == status, answer.get_json()
        if status == 400:
            assert answer.get_json() == {
                "error": "outputs.0.name: No such output; this model gives predict."
            }
