"""Vertex AI's parameters, KServe V1 and the Open Inference Protocol (V2), on every target.

A V2 client we did not write (tritonclient's HTTP client) talks to real gunicorn and
functions-framework processes; raw HTTP requests check every refusal. Every answer is compared
with what POST /predict gives for the same rows, and so with scikit-learn
(tests/unit/http/test_api.py).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from flask.testing import FlaskClient
from tritonclient.utils import InferenceServerException

from testkit import zoo
from testkit.processes import ROOT, Server, functions_framework_server, gunicorn
from testkit.samples import ROWS, SETOSA
from webapp import create_app
from webapp.protocol import v2

NAME, VERSION = "iris-logistic-regression", "1.0.0"
NO_MODEL = f'No such model: this server serves "{NAME}".'
NO_VERSION = f'No such version of the model: this server serves "{VERSION}".'
FEATURES = list(SETOSA)
JSON = {"Content-Type": "application/json"}
TARGETS = ["gunicorn_server", "function_server"]


def predict(server: Server, rows: Any, probabilities: bool = False) -> list[Any]:
    """What POST /predict answers for a batch of these rows."""
    query = "?probabilities=true" if probabilities else ""
    body = json.dumps({"instances": rows}).encode()
    status, _, answer = server.request("POST", f"/predict{query}", body, JSON)
    assert status == 200, answer
    predictions: list[Any] = json.loads(answer)["predictions"]
    return predictions


def infer(server: Server, document: Any, path: str = f"/v2/models/{NAME}/infer") -> Any:
    """Status and JSON answer of a raw V2 infer request."""
    status, _, answer = server.request("POST", path, json.dumps(document).encode(), JSON)
    return status, json.loads(answer)


def matrix(rows: Any, datatype: str = "FP64") -> dict[str, Any]:
    return {"name": "input", "shape": [len(rows), 4], "datatype": datatype, "data": rows}


# Vertex AI: {"instances": [...], "parameters": {...}}, in process.

VERTEX = "/v1/endpoints/1/deployedModels/2:predict"


@pytest.fixture(scope="module")
def vertex() -> FlaskClient:
    return create_app({"AIP_PREDICT_ROUTE": VERTEX}).test_client()


@pytest.mark.unit
@pytest.mark.parametrize("path", ["/predict", VERTEX])
def test_vertex_parameters_ask_for_probabilities(vertex: FlaskClient, path: str) -> None:
    rows = [list(row) for row in ROWS]
    plain = vertex.post(path, json={"instances": rows}).get_json()
    labeled = vertex.post("/predict?probabilities=true", json={"instances": rows}).get_json()
    for parameters, expected in (({}, plain), ({"probabilities": False}, plain),
                                 ({"probabilities": True}, labeled)):  # fmt: skip
        answer = vertex.post(path, json={"instances": rows, "parameters": parameters})
        assert answer.status_code == 200 and answer.get_json() == expected
    # Where both give it, the body's parameters win over the query string (Vertex AI sends
    # parameters), a rule the OpenAPI document states: a client can tell what it gets.
    for query, parameters, expected in (
        ("true", True, labeled),
        ("false", True, labeled),
        ("true", False, plain),
        ("1", False, plain),
    ):
        document = {"instances": rows, "parameters": {"probabilities": parameters}}
        answer = vertex.post(f"{path}?probabilities={query}", json=document)
        assert (answer.status_code, answer.get_json()) == (200, expected)
    answer = vertex.post(f"{path}?probabilities=true", json={"instances": rows, "parameters": {}})
    assert answer.get_json() == labeled  # the query's, where the parameters do not say


@pytest.mark.unit
@pytest.mark.parametrize(
    ("parameters", "query", "errors"),
    [
        ({"threshold": 0.5}, "", {"threshold": ["Unknown field."]}),
        ({"probabilities": "true"}, "", {"probabilities": ["Not a valid boolean."]}),
        ({"probabilities": 1}, "", {"probabilities": ["Not a valid boolean."]}),
        ({"probabilities": None}, "", {"probabilities": ["Field may not be null."]}),
        ([True], "", {"_schema": ["Invalid input type."]}),
        (None, "", ["Field may not be null."]),
        ({"probabilities": 1}, "?probabilities=true", {"probabilities": ["Not a valid boolean."]}),
    ],
)
def test_vertex_parameters_are_validated(
    vertex: FlaskClient, parameters: Any, query: str, errors: Any
) -> None:
    document = {"instances": [SETOSA], "parameters": parameters}
    answer = vertex.post(f"/predict{query}", json=document)
    assert answer.status_code == 422
    assert answer.get_json()["errors"] == {"parameters": errors}


@pytest.mark.unit
def test_vertex_parameters_and_instances_are_refused_together(vertex: FlaskClient) -> None:
    document = {"instances": [{**SETOSA, "petal_width": -1}], "parameters": {"x": 1}}
    errors = vertex.post("/predict", json=document).get_json()["errors"]
    message = "Must be greater than 0.0 and less than or equal to 100.0."
    assert errors == {
        "instances": {"0": {"petal_width": [message]}},
        "parameters": {"x": ["Unknown field."]},
    }


@pytest.mark.unit
def test_a_single_instance_takes_no_parameters(vertex: FlaskClient) -> None:
    answer = vertex.post("/predict", json={**SETOSA, "parameters": {"probabilities": True}})
    assert answer.status_code == 422
    assert answer.get_json()["errors"] == {"parameters": ["Unknown field."]}


# KServe V1 and V2 in process: the shapes of the answers, the metrics, the server's version.


@pytest.mark.unit
def test_kserve_v1_in_process(client: FlaskClient) -> None:
    assert client.get(f"/v1/models/{NAME}").get_json() == {"name": NAME, "ready": True}
    rows = [list(row) for row in ROWS]
    answer = client.post(f"/v1/models/{NAME}:predict", json={"instances": rows})
    assert answer.get_json() == client.post("/predict", json={"instances": rows}).get_json()


@pytest.mark.unit
def test_the_route_label_is_the_rule(client: FlaskClient) -> None:
    for name in ("a", "b", NAME):
        client.post(f"/v2/models/{name}/infer", json={"inputs": [matrix([ROWS[0]])]})
        client.get(f"/v1/models/{name}")
    exposition = client.get("/metrics").get_data(as_text=True)
    assert 'route="/v2/models/<name>/infer"' in exposition
    assert 'route="/v1/models/<model:name>"' in exposition
    assert "/v2/models/a/" not in exposition and f"/{NAME}" not in exposition


@pytest.mark.unit
def test_server_version_is_the_projects() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert v2.SERVER_VERSION == project["version"]


# tritonclient against the real servers.


@pytest.fixture(params=TARGETS)
def server(request: pytest.FixtureRequest) -> Server:
    found: Server = request.getfixturevalue(request.param)
    return found


@pytest.fixture()
def client_of(server: Server) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    yield client
    client.close()


@pytest.mark.integration
def test_health_and_metadata_through_tritonclient(
    client_of: triton.InferenceServerClient,
) -> None:
    client = client_of
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(NAME) and client.is_model_ready(NAME, VERSION)
    assert not client.is_model_ready("another") and not client.is_model_ready(NAME, "2")
    assert client.get_server_metadata() == {
        "name": "sklearn-serve",
        "version": v2.SERVER_VERSION,
        "extensions": ["binary_tensor_data"],
    }
    metadata = {
        "name": NAME,
        "versions": [VERSION],
        "platform": "scikit-learn",
        "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
        ],
    }
    assert client.get_model_metadata(NAME) == metadata
    assert client.get_model_metadata(NAME, VERSION) == metadata
    with pytest.raises(InferenceServerException) as refused:
        client.get_model_metadata("another")
    assert refused.value.status() == "404" and refused.value.message() == NO_MODEL


def iris_rows() -> np.ndarray:
    from sklearn.datasets import load_iris

    return load_iris().data[::7]  # 22 rows of every class


@pytest.mark.integration
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.uint8])
def test_infer_a_matrix_through_tritonclient(
    server: Server, client_of: triton.InferenceServerClient, dtype: Any, binary: bool
) -> None:
    rows = iris_rows().astype(dtype) if dtype in (np.float64, np.float32) else np.array(
        [[5, 3, 1, 1], [6, 3, 6, 2], [6, 3, 4, 1]], dtype=dtype
    )  # fmt: skip
    tensor = triton.InferInput("input", list(rows.shape), triton.np_to_triton_dtype(dtype))
    tensor.set_data_from_numpy(rows, binary_data=binary)
    outputs = [
        triton.InferRequestedOutput(n, binary_data=binary) for n in ("predict_proba", "predict")
    ]
    result = client_of.infer(NAME, [tensor], outputs=outputs, request_id="r-1")
    # The rows /predict gets: the tensor's own values (float32's rounding kept), as JSON numbers.
    expected = predict(server, rows.astype(np.float64).tolist(), probabilities=True)
    assert result.as_numpy("predict").tolist() == [e["prediction"] for e in expected]
    assert result.as_numpy("predict").dtype == np.int64
    probabilities = [list(e["probabilities"].values()) for e in expected]
    assert result.as_numpy("predict_proba").tolist() == probabilities
    response = result.get_response()
    assert response["id"] == "r-1" and response["model_name"] == NAME
    assert [o["name"] for o in response["outputs"]] == ["predict_proba", "predict"]


@pytest.mark.integration
@pytest.mark.parametrize("shape", ["[N]", "[N, 1]"])
def test_infer_one_tensor_per_feature_through_tritonclient(
    server: Server, client_of: triton.InferenceServerClient, shape: str
) -> None:
    rows = iris_rows()
    inputs = []
    for index, name in enumerate(FEATURES):
        column = rows[:, index] if shape == "[N]" else rows[:, index : index + 1]
        tensor = triton.InferInput(name, list(column.shape), "FP64")
        inputs.append(tensor.set_data_from_numpy(np.ascontiguousarray(column)))
    result = client_of.infer(NAME, inputs, model_version=VERSION)  # all outputs, in binary
    expected = predict(server, rows.tolist(), probabilities=True)
    assert result.as_numpy("predict").tolist() == [e["prediction"] for e in expected]
    probabilities = [list(e["probabilities"].values()) for e in expected]
    assert result.as_numpy("predict_proba").tolist() == probabilities
    assert result.get_response()["model_version"] == VERSION


@pytest.mark.integration
def test_tritonclient_reads_a_refusal(client_of: triton.InferenceServerClient) -> None:
    tensor = triton.InferInput("input", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, -0.2]]))
    with pytest.raises(InferenceServerException) as refused:
        client_of.infer(NAME, [tensor])
    assert refused.value.status() == "400"
    assert refused.value.message() == (
        'input "input" row 0, column 3 (petal_width): '
        "Must be greater than 0.0 and less than or equal to 100.0."
    )


# Every refusal, over raw HTTP, on both targets.

SETOSA_ROW = list(SETOSA.values())
V2_REFUSALS = [
    ("/v2/models/iris/infer", {"inputs": [matrix([SETOSA_ROW])]}, 404, NO_MODEL),
    (f"/v2/models/{NAME}/versions/2/infer", {"inputs": [matrix([SETOSA_ROW])]}, 404,
     NO_VERSION),
    (None, {"inputs": [matrix([SETOSA_ROW], "BYTES")]}, 400,
     'input "input": datatype must be FP64, FP32 or an integer type'),
    (None, {"inputs": [matrix([SETOSA_ROW], "BOOL")]}, 400,
     'input "input": datatype must be FP64, FP32 or an integer type'),
    (None, {"inputs": [matrix([SETOSA_ROW], "FP8")]}, 400, "inputs.0.datatype: Must be one of"),
    (None, {"inputs": [{**matrix([SETOSA_ROW]), "shape": [2, 4]}]}, 400,
     'input "input": nested data must match its shape [2, 4] at every level, or be flat'),
    (None, {"inputs": [{**matrix(SETOSA_ROW), "shape": [2, 4]}]}, 400,
     'input "input": holds 4 values, its shape [2, 4] says 8'),
    (None, {"inputs": [{**matrix([SETOSA_ROW]), "shape": [1, 3]}]}, 400,
     'input "input": shape must be [N, 4] (rows, then the model\'s features)'),
    (None, {"inputs": [{**matrix([SETOSA_ROW]), "shape": [4]}]}, 400,
     'input "input": shape must be [N, 4]'),
    (None, {"inputs": [{**matrix([[SETOSA_ROW]]), "shape": [1, 4]}]}, 400,
     'input "input": nested data must match its shape [1, 4] at every level, or be flat'),
    (None, {"inputs": [{**matrix([[5.1, 3.5, 1.4], [0.2, 6.3, 3.3, 6.0, 2.5]]), "shape": [2, 4]}]},
     400, 'input "input": nested data must match its shape [2, 4] at every level, or be flat'),
    (None, {"inputs": [{**matrix([[5.1, 3.5, 1.4, 0.2, 6.3], [3.3, 6.0, 2.5]])}]}, 400,
     'input "input": nested data must match its shape [2, 4] at every level, or be flat'),
    (None, {"inputs": [{"name": n, "shape": [2, 1], "datatype": "FP64", "data": [[v, v]]}
                       for n, v in SETOSA.items()]}, 400,
     'input "sepal_length": nested data must match its shape [2, 1] at every level, or be flat'),
    (None, {"inputs": [{"name": n, "shape": [2, 1], "datatype": "FP64", "data": [[v], [v, v]]}
                       for n, v in SETOSA.items()]}, 400,
     'input "sepal_length": nested data must match its shape [2, 1] at every level, or be flat'),
    (None, {"inputs": [{"name": "sepal_length", "shape": [1], "datatype": "FP64",
                        "data": [[5.1]]}]}, 400, 'input "sepal_length": data.0 is not FP64'),
    (None, {"inputs": [{**matrix([SETOSA_ROW, 1, 2, 3, 4]), "shape": [2, 4]}]}, 400,
     'input "input": nested data must match its shape [2, 4] at every level, or be flat'),
    (None, {"inputs": [matrix([[5.1, 3.5, 1.4, 0]])]}, 400,
     'input "input" row 0, column 3 (petal_width): Must be greater than 0.0'),
    (None, {"inputs": [matrix([[5.1, "3.5", 1.4, 0.2]])]}, 400, '"input": data.1 is not FP64'),
    (None, {"inputs": [matrix([[5.1, True, 1.4, 0.2]])]}, 400, '"input": data.1 is not FP64'),
    (None, {"inputs": [matrix([[5.1, None, 1.4, 0.2]])]}, 400,
     'input "input" row 0, column 1 (sepal_width): Field may not be null.'),
    (None, {"inputs": [matrix([[5, 3, 1, 0.5]], "INT64")]}, 400, '"input": data.3 is not INT64'),
    (None, {"inputs": [matrix([[5, 3, 1, 300]], "UINT8")]}, 400,
     "input \"input\": data.3 is out of UINT8's range"),
    (None, {"inputs": [matrix([[5.1, 3.5, 1e39, 0.2]], "FP32")]}, 400,
     'input "input" row 0, column 2 (petal_length): Not a finite number.'),
    (None, {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]}
                       for n, v in list(SETOSA.items())[:3]]}, 400, 'missing input "petal_width"'),
    (None, {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]}
                       for n, v in [*SETOSA.items(), ("sepal_length", 1.0)]]}, 400,
     'input "sepal_length" is given twice'),
    (None, {"inputs": [{"name": n, "shape": [1 + (n == "petal_width")], "datatype": "FP64",
                        "data": [v] * (1 + (n == "petal_width"))} for n, v in SETOSA.items()]}, 400,
     'input "petal_width": holds 2 rows, the inputs before it 1'),
    (None, {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]}
                       for n, v in {**SETOSA, "sepal_width": -3.5}.items()]}, 400,
     'input "sepal_width" row 0: Must be greater than 0.0 and less than or equal to 100.0.'),
    (None, {"inputs": [{**matrix([SETOSA_ROW]), "name": "features"}]}, 400,
     'inputs.0: no such input; the model takes one input "input" of shape [N, 4], or one input '
     'per feature: "sepal_length", "sepal_width", "petal_length", "petal_width"'),
    (None, {"inputs": [{k: v for k, v in matrix([SETOSA_ROW]).items() if k != "data"}]}, 400,
     "inputs.0.data: Missing data for required field."),
    (None, {"inputs": [matrix([SETOSA_ROW])], "outputs": [{"name": "label"}]}, 400,
     "outputs.0.name: No such output; this model gives predict, predict_proba."),
    (None, {"inputs": [matrix([SETOSA_ROW])], "outputs": [{"name": "predict"}] * 2}, 400,
     'outputs.1: output "predict" is asked for twice'),
    (None, {"inputs": [matrix([SETOSA_ROW])], "outputs": []}, 400, "outputs: Shorter than minimum"),
    (None, {"inputs": []}, 400, "inputs: Shorter than minimum length 1."),
    (None, {"instances": [SETOSA_ROW]}, 400, "inputs: Missing data for required field."),
    (None, {"inputs": [matrix([SETOSA_ROW])], "parameters": {"priority": 1}}, 400,
     "parameters.priority: Unknown field."),
    (None, {"inputs": [{**matrix([SETOSA_ROW] * 10_001)}]}, 400,
     'input "input": must hold between 1 and 10000 rows (MAX_BATCH_SIZE)'),
    (None, {"inputs": [{**matrix([]), "shape": [0, 4]}]}, 400, "must hold between 1 and 10000"),
]  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("path", "document", "status", "error"), V2_REFUSALS)
def test_v2_refusals(
    request: pytest.FixtureRequest, target: str, path: str | None, document: Any, status: int,
    error: str,
) -> None:  # fmt: skip
    server: Server = request.getfixturevalue(target)
    got, answer = infer(server, document, path or f"/v2/models/{NAME}/infer")
    assert (got, list(answer)) == (status, ["error"])
    assert error in answer["error"], answer["error"]


@pytest.mark.integration
@pytest.mark.parametrize("target", TARGETS)
def test_v2_refusals_of_the_body_and_route(request: pytest.FixtureRequest, target: str) -> None:
    server: Server = request.getfixturevalue(target)
    path = f"/v2/models/{NAME}/infer"
    cases = [
        ("POST", path, b"{", JSON, 400, "Request body is not valid JSON."),
        ("POST", path, b"", {}, 400, "Request body is empty."),
        ("POST", path, b"{}", {"Content-Type": "text/plain"}, 415,
         "Content-Type must be application/json (UTF-8)."),
        ("POST", path, b" " * (2 * 1024 * 1024 + 1), JSON, 413, "Request body too large."),
        ("GET", path, None, {}, 405, "Method not allowed on this route."),
        ("GET", f"/v2/models/{NAME}/stats", None, {}, 404, "No such route."),
        ("GET", "/v2/models/iris", None, {}, 404, NO_MODEL),
        ("GET", "/v2/models/iris/ready", None, {}, 404, NO_MODEL),
        ("GET", f"/v2/models/{NAME}/versions/2", None, {}, 404, NO_VERSION),
        ("POST", path, b"{}", {**JSON, "Inference-Header-Content-Length": "9"}, 400,
         "Inference-Header-Content-Length must be the JSON's length in bytes."),
    ]  # fmt: skip
    for method, where, body, headers, status, error in cases:
        got, _, answer = server.request(method, where, body, headers)
        assert (got, json.loads(answer)) == (status, {"error": error}), (method, where)
    _, allowed, _ = server.request("GET", path)
    assert allowed["Allow"] == "POST"


@pytest.mark.integration
@pytest.mark.parametrize("target", TARGETS)
def test_v2_binary_input_must_add_up(request: pytest.FixtureRequest, target: str) -> None:
    server: Server = request.getfixturevalue(target)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 32},
                }
            ]
        }  # fmt: skip
    ).encode()
    data = np.array([SETOSA_ROW]).tobytes()
    path, length = f"/v2/models/{NAME}/infer", {"Inference-Header-Content-Length": str(len(header))}
    status, _, answer = server.request("POST", path, header + data, length)
    assert status == 200 and json.loads(answer)["outputs"][0]["data"] == [0]
    for tail, error in (
        (data[:-8], "inputs.0: the body ends before its binary data does"),
        (data + b"\0", "the body holds more binary data than its inputs' binary_data_size"),
    ):
        status, _, answer = server.request("POST", path, header + tail, length)
        assert (status, json.loads(answer)) == (400, {"error": error})


@pytest.mark.integration
@pytest.mark.parametrize("target", TARGETS)
def test_kserve_v1_on_both_targets(request: pytest.FixtureRequest, target: str) -> None:
    server: Server = request.getfixturevalue(target)
    status, _, answer = server.request("GET", f"/v1/models/{NAME}")
    assert (status, json.loads(answer)) == (200, {"name": NAME, "ready": True})
    rows = iris_rows().tolist()
    body = json.dumps({"instances": rows}).encode()
    status, _, answer = server.request("POST", f"/v1/models/{NAME}:predict", body, JSON)
    assert (status, json.loads(answer)) == (200, {"predictions": predict(server, rows)})
    status, _, answer = server.request(
        "POST", f"/v1/models/{NAME}:predict?probabilities=true", body, JSON
    )
    assert json.loads(answer)["predictions"] == predict(server, rows, probabilities=True)
    not_found = {"code": 404, "status": "Not Found", "message": NO_MODEL}
    for method, path in (("GET", "/v1/models/iris"), ("POST", "/v1/models/iris:predict")):
        status, _, answer = server.request(method, path, body, JSON)
        assert (status, json.loads(answer)) == (404, not_found)
    status, headers, _ = server.request("GET", f"/v1/models/{NAME}:predict")
    assert status == 405 and headers["Allow"] == "POST"
    single = json.dumps(SETOSA).encode()
    status, _, answer = server.request("POST", f"/v1/models/{NAME}:predict", single, JSON)
    assert status == 422
    assert json.loads(answer)["errors"]["instances"] == ["Missing data for required field."]


# Models unlike the shipped one: categories, string and boolean labels, a regressor, nulls,
# pandas categories; all compiled but deliveries, which scikit-learn serves from a DataFrame,
# and knn, whose compiled form ties otherwise far out (tests/service/test_zoo.py).
ZOO = [
    *["column-transformer", "string-labels", "knn", "hist-gradient-boosting"],
    *["xgboost-categories", "deliveries"],
]


@pytest.fixture(scope="module", params=ZOO)
def specimen(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return zoo.build(request.param, tmp_path_factory.mktemp(request.param))


def tensors_of(rows: list[dict[str, Any]], metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows as the inputs the model's V2 metadata lists, in JSON (null for missing)."""
    inputs = metadata["inputs"]
    if inputs[0]["name"] == "input" and len(inputs) == 1:
        data = [list(row.values()) for row in rows]
        return [{"name": "input", "shape": [len(rows), len(data[0])], "datatype": "FP64",
                 "data": data}]  # fmt: skip
    return [
        {"name": i["name"], "shape": [len(rows)], "datatype": i["datatype"],
         "data": [row[i["name"]] for row in rows]}
        for i in inputs
    ]  # fmt: skip


@pytest.mark.integration
@pytest.mark.slow
def test_v2_answers_as_scikit_learn_for_other_models(specimen: Any) -> None:
    client = create_app({"MODEL_PATH": str(specimen.path)}).test_client()
    name = specimen.name
    metadata = client.get(f"/v2/models/{name}").get_json()
    expected = specimen.predict()
    document = {"inputs": tensors_of(specimen.rows, metadata)}
    answer = client.post(f"/v2/models/{name}/infer", json=document)
    assert answer.status_code == 200, answer.get_json()
    outputs = {o["name"]: o for o in answer.get_json()["outputs"]}
    predicted = outputs["predict"]
    assert predicted["datatype"] == metadata["outputs"][0]["datatype"]
    assert (
        predicted["datatype"]
        == {str: "BYTES", bool: "BOOL", int: "INT64", float: "FP64"}[type(expected[0])]
    )
    if predicted["datatype"] == "FP64":
        assert np.allclose(predicted["data"], expected, rtol=1e-12)
    else:
        assert predicted["data"] == expected
    batch = client.post("/predict", json={"instances": specimen.rows}).get_json()
    assert predicted["data"] == batch["predictions"]
    if "predict_proba" in outputs:
        proba = outputs["predict_proba"]
        assert proba["shape"] == [len(expected), specimen.predict_proba().shape[1]]
        assert np.allclose(proba["data"], specimen.predict_proba().ravel(), rtol=0, atol=1e-11)


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[Server]]]:
    """The model with categories and string labels, served by gunicorn (its compiled form) and
    the function (scikit-learn itself)."""
    specimen = zoo.build("column-transformer", tmp_path_factory.mktemp("churn-v2"))
    env = {"MODEL_PATH": str(specimen.path)}
    servers = [
        gunicorn(env).start(),
        functions_framework_server({**env, "ENGINE": "sklearn"}).start(),
    ]
    yield specimen, servers
    for server in servers:
        server.stop()


@pytest.mark.integration
@pytest.mark.slow
def test_categories_and_string_labels_through_tritonclient(churn: Any) -> None:
    specimen, servers = churn
    complete = [row for row in specimen.rows if None not in row.values()]
    assert len(complete) >= 10
    expected = [
        label
        for row, label in zip(specimen.rows, specimen.predict(), strict=True)
        if None not in row.values()
    ]
    for server, engine in zip(servers, ["onnx", "sklearn"], strict=True):
        facts = json.loads(server.request("GET", "/metadata")[2])
        assert facts["engine"]["name"] == engine
        client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
        try:
            metadata = client.get_model_metadata("column-transformer")
            assert metadata["inputs"] == [
                {"name": "tenure", "datatype": "INT64", "shape": [-1]},
                {"name": "spend", "datatype": "FP64", "shape": [-1]},
                {"name": "plan", "datatype": "BYTES", "shape": [-1]},
                {"name": "region", "datatype": "BYTES", "shape": [-1]},
            ]
            assert metadata["outputs"][0] == {"name": "predict", "datatype": "BYTES", "shape": [-1]}
            for binary in (True, False):
                inputs = []
                for spec in metadata["inputs"]:
                    values = [row[spec["name"]] for row in complete]
                    kind = object if spec["datatype"] == "BYTES" else triton.triton_to_np_dtype(
                        spec["datatype"])  # fmt: skip
                    tensor = triton.InferInput(spec["name"], [len(values)], spec["datatype"])
                    inputs.append(tensor.set_data_from_numpy(np.array(values, kind), binary))
                wanted = [triton.InferRequestedOutput("predict", binary_data=binary)]
                result = client.infer("column-transformer", inputs, outputs=wanted)
                got = [
                    v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")
                ]
                assert got == expected == predict(server, complete)
            with_nulls = {"inputs": tensors_of(specimen.rows, metadata)}
            status, answer = infer(server, with_nulls, "/v2/models/column-transformer/infer")
            assert status == 200
            assert answer["outputs"][0]["data"] == specimen.predict()
            unknown_plan = tensors_of(specimen.rows[:2], metadata)
            unknown_plan[2]["data"] = ["gold", "basic"]
            status, answer = infer(
                server, {"inputs": unknown_plan}, "/v2/models/column-transformer/infer"
            )
            assert (status, answer) == (
                400, {"error": 'input "plan" row 0: Must be one of: basic, pro, team.'}
            )  # fmt: skip
            numbers_for_a_category = tensors_of(specimen.rows[:1], metadata)
            numbers_for_a_category[3] = {**numbers_for_a_category[3], "datatype": "FP64"}
            status, answer = infer(
                server, {"inputs": numbers_for_a_category}, "/v2/models/column-transformer/infer"
            )
            assert (status, answer) == (
                400, {"error": 'input "region": datatype must be BYTES (a category)'}
            )  # fmt: skip
        finally:
            client.close()


@pytest.mark.unit
def test_v2_answers_conform_to_the_openapi_document(client: FlaskClient) -> None:
    from openapi_schema_validator import OAS30Validator

    spec = client.get("/openapi.json").get_json()
    cases = [
        ("GET", "/v2", None, 200),
        ("GET", "/v2/health/live", None, 200),
        ("GET", "/v2/health/ready", None, 200),
        ("GET", f"/v2/models/{NAME}", None, 200),
        ("GET", f"/v2/models/{NAME}/versions/{VERSION}/ready", None, 200),
        ("POST", f"/v2/models/{NAME}/infer", {"id": "x", "inputs": [matrix([SETOSA_ROW])]}, 200),
        ("POST", f"/v2/models/{NAME}/infer", {"inputs": [matrix([[1, 2]])]}, 400),
        ("GET", "/v2/models/iris", None, 404),
        ("GET", f"/v1/models/{NAME}", None, 200),
        ("POST", f"/v1/models/{NAME}:predict", {"instances": [SETOSA_ROW]}, 200),
        ("POST", "/v1/models/iris:predict", {"instances": [SETOSA_ROW]}, 404),
    ]
    for method, path, body, status in cases:
        answer = client.open(path, method=method, json=body)
        assert answer.status_code == status, path
        template = (
            path.replace(NAME, "{name}").replace(f"/versions/{VERSION}", "/versions/{version}")
            .replace("/models/iris", "/models/{name}")
        )  # fmt: skip
        declared = spec["paths"][template][method.lower()]["responses"][str(status)]
        schema = declared["content"]["application/json"]["schema"]
        OAS30Validator({**schema, "components": spec["components"]}).validate(answer.get_json())


@pytest.mark.unit
def test_v2_example_in_the_document_is_answered(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    content = spec["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    for example in content["application/json"]["examples"].values():
        answer = client.post(f"/v2/models/{NAME}/infer", json=example["value"])
        assert answer.status_code == 200, answer.get_json()


@pytest.mark.unit
def test_the_function_refuses_under_v2_in_the_v2_shape(function_client: FlaskClient) -> None:
    """functions-framework's own routing refuses a path with a newline, before ours sees it."""
    answer = function_client.get("/v2/models/a%0Ab/ready")
    assert (answer.status_code, answer.get_json()) == (404, {"error": "No such route."})
