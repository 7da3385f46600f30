"""The HTTP contract, one suite over every target: both test clients and both real servers.

Each case checks status, content type, the Allow header and the exact JSON body, so "the
service and the function behave the same" is something a test can fail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from flask.testing import FlaskClient

from testkit.processes import Server
from testkit.samples import SETOSA
from webapp import create_app

Call = Callable[[str, str, bytes | None, Mapping[str, str]], tuple[int, Any, bytes]]

JSON = {"Content-Type": "application/json"}
# The test clients run in process; the real servers, and --base-url's, are integration tests.
TARGETS = {
    "flask": pytest.mark.unit,
    "function": pytest.mark.unit,
    "gunicorn": pytest.mark.integration,
    "functions-framework": pytest.mark.integration,
}


def _via_client(client: FlaskClient) -> Call:
    def call(method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> Any:
        # PATH_INFO set directly: the test client would read "//predict" as a host name
        path_info, _, query = path.partition("?")
        response = client.open(
            path_info,
            method=method,
            data=body,
            headers=dict(headers),
            query_string=query,
            environ_overrides={"PATH_INFO": path_info},
        )
        return response.status_code, response.headers, response.get_data()

    return call


def _via_server(server: Server) -> Call:
    def call(method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> Any:
        return server.request(method, path, body, headers)

    return call


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test taking `call` runs on every target, plus --base-url when one is given."""
    if "call" in metafunc.fixturenames:
        targets = dict(TARGETS)
        if metafunc.config.getoption("--base-url"):
            targets["base-url"] = pytest.mark.integration
        params = [pytest.param(name, marks=mark) for name, mark in targets.items()]
        metafunc.parametrize("call", params, indirect=True)


@pytest.fixture()
def call(request: pytest.FixtureRequest) -> Call:
    """A way to send one request to the target named by the parameter."""
    if request.param == "flask":
        return _via_client(create_app().test_client())
    if request.param == "function":
        return _via_client(request.getfixturevalue("function_client"))
    if request.param == "gunicorn":
        return _via_server(request.getfixturevalue("gunicorn_server"))
    if request.param == "functions-framework":
        return _via_server(request.getfixturevalue("function_server"))
    return _via_server(Server.at(request.config.getoption("--base-url")))


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


def case(
    case_id: str,
    method: str,
    path: str,
    status: int,
    payload: Any = None,
    *,
    raw: bytes | None = None,
    content_type: str | None = "application/json",
    expected: Any = None,
    allow: str | None = None,
) -> Any:
    """One contract case: the request, then the status, exact answer and Allow it must get."""
    data = raw if raw is not None else (None if payload is None else body(payload))
    headers = {"Content-Type": content_type} if content_type and data is not None else {}
    return pytest.param(method, path, data, headers, status, expected, allow, id=case_id)


def with_(**changes: Any) -> dict[str, Any]:
    return {**SETOSA, **changes}


CASES = [
    case("health", "GET", "/health", 200, expected={"status": "ok"}),
    case("ready", "GET", "/ready", 200, expected={"status": "ready"}),
    case("predict", "POST", "/predict", 200, SETOSA, expected={"prediction": 0}),
    case(
        "batch-mixed",
        "POST",
        "/predict",
        200,
        {"instances": [SETOSA, [6.3, 3.3, 6.0, 2.5], [6.4, 3.2, 4.5, 1.5]]},
        expected={"predictions": [0, 2, 1]},
    ),
    case(
        "json-suffix-type",
        "POST",
        "/predict",
        200,
        SETOSA,
        content_type="application/vnd.api+json",
        expected={"prediction": 0},
    ),
    case("leading-double-slash", "POST", "//predict", 200, SETOSA, expected={"prediction": 0}),
    case("not-found", "GET", "/nope", 404),
    case("not-found-case", "POST", "/PREDICT", 404, SETOSA),
    case("not-found-slash", "POST", "/predict/", 404, SETOSA),
    case("inner-double-slash", "GET", "/x//health", 404),
    case("trailing-double-slash", "GET", "/health//", 404),
    case("get-predict", "GET", "/predict", 405, allow="POST"),
    case("get-predict-with-body", "GET", "/predict", 405, SETOSA, allow="POST"),
    case("put-predict", "PUT", "/predict", 405, SETOSA, allow="POST"),
    case("post-health", "POST", "/health", 405, SETOSA, allow="GET, HEAD"),
    case("delete-metadata", "DELETE", "/metadata", 405, allow="GET, HEAD"),
    case("options-predict", "OPTIONS", "/predict", 405, allow="POST"),
    case("no-content-type", "POST", "/predict", 415, SETOSA, content_type=None),
    case("text-plain", "POST", "/predict", 415, SETOSA, content_type="text/plain"),
    case(
        "latin1-charset",
        "POST",
        "/predict",
        415,
        SETOSA,
        content_type="application/json; charset=latin-1",
    ),
    case("empty-body", "POST", "/predict", 400, raw=b""),
    case("malformed", "POST", "/predict", 400, raw=b'{"sepal_length": 5.1,'),
    case("invalid-utf8", "POST", "/predict", 400, raw=b'{"sepal_length": "\xff"}'),
    case("nan-literal", "POST", "/predict", 400, raw=b'{"sepal_length": NaN}'),
    case(
        "duplicate-key",
        "POST",
        "/predict",
        400,
        raw=b'{"sepal_length":5.1,"sepal_length":5.1,"sepal_width":3.5,'
        b'"petal_length":1.4,"petal_width":0.2}',
    ),
    case("deep-nesting", "POST", "/predict", 400, raw=b"[" * 100_000),
    case("top-level-array", "POST", "/predict", 422, [SETOSA]),
    case("string-number", "POST", "/predict", 422, with_(sepal_length="5.1")),
    case("underscore-string", "POST", "/predict", 422, with_(sepal_length="1_0")),
    case("boolean", "POST", "/predict", 422, with_(petal_width=True)),
    case("null", "POST", "/predict", 422, with_(petal_width=None)),
    case("zero", "POST", "/predict", 422, with_(petal_width=0)),
    case("too-large", "POST", "/predict", 422, with_(petal_width=100.5)),
    case("huge-exponent", "POST", "/predict", 422, raw=b'{"sepal_length": 1e400}'),
    case("missing-field", "POST", "/predict", 422, {"sepal_length": 5.1}),
    case("unknown-field", "POST", "/predict", 422, with_(colour=1)),
    case("lone-surrogate-key", "POST", "/predict", 422, raw=b'{"\\ud800": 1}'),
    case("empty-batch", "POST", "/predict", 422, {"instances": []}),
    case("batch-bad-row", "POST", "/predict", 422, {"instances": [SETOSA, [1, 2, 3]]}),
    case("unknown-query", "POST", "/predict?debug=1", 422, SETOSA),
    case("too-large-body", "POST", "/predict", 413, raw=b" " * (2 * 1024 * 1024 + 1)),
]


@pytest.mark.parametrize(
    ("method", "path", "payload", "headers", "status", "expected", "allow"), CASES
)
def test_contract(
    call: Call,
    method: str,
    path: str,
    payload: bytes | None,
    headers: dict[str, str],
    status: int,
    expected: Any,
    allow: str | None,
) -> None:
    got_status, got_headers, got_body = call(method, path, payload, headers)
    assert got_status == status, got_body
    assert got_headers["Content-Type"] == "application/json"
    assert got_headers.get("Allow") == allow
    assert got_headers["Content-Length"] == str(len(got_body))  # not chunked
    assert "Transfer-Encoding" not in got_headers
    document = json.loads(got_body)
    if expected is not None:
        assert got_body == json.dumps(expected, separators=(",", ":")).encode()
    else:
        assert document["code"] == status
        assert set(document) <= {"code", "status", "message", "errors"}
        assert "prediction" not in got_body.decode() or status == 200


@pytest.mark.parametrize("path", ["/health", "/ready", "/metadata"])
def test_head_matches_get(call: Call, path: str) -> None:
    status, headers, payload = call("HEAD", path, None, {})
    assert (status, payload) == (200, b"")
    assert headers["Content-Type"] == "application/json"


def test_metadata_matches_across_targets(call: Call) -> None:
    status, _, payload = call("GET", "/metadata", None, {})
    assert status == 200
    reference = create_app().test_client().get("/metadata").get_json()
    assert json.loads(payload) == reference


def test_probabilities(call: Call) -> None:
    status, _, payload = call("POST", "/predict?probabilities=true", body(SETOSA), JSON)
    assert status == 200
    document = json.loads(payload)
    assert document["prediction"] == 0 and document["label"] == "setosa"
    assert set(document["probabilities"]) == {"setosa", "versicolor", "virginica"}
    assert abs(sum(document["probabilities"].values()) - 1) < 1e-9
