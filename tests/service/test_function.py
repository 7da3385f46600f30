"""The Cloud Function beyond the shared contract: its root, its cold start, its upload."""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from testkit.processes import BIN, ROOT, Server, free_port, functions_framework_server, gunicorn
from testkit.samples import SETOSA
from tests.conftest import send_unsized

JSON = {"Content-Type": "application/json"}
LIMIT = 2 * 1024 * 1024


@pytest.mark.unit
def test_loading_the_function_leaves_the_collector_on(function_client: FlaskClient) -> None:
    """gcf/main.py turns it off while it loads the model, then freezes what loading made."""
    assert gc.isenabled()
    assert gc.get_freeze_count() > 100_000


@pytest.mark.unit
def test_root_is_the_prediction_endpoint(function_client: FlaskClient) -> None:
    assert function_client.post("/", json=SETOSA).data == b'{"prediction":0}'
    response = function_client.get("/")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


@pytest.mark.unit
def test_unread_body_of_another_route_is_not_read_either(function_client: FlaskClient) -> None:
    response, read = send_unsized(function_client, "GET", "/health", 10**8)
    assert response.data == b'{"status":"ok"}'
    assert read == 0


def raw_post(port: int, declared_length: int, sent: int) -> bytes:
    """POST /predict declaring `declared_length` bytes, send `sent` of them, return the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = (
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared_length}\r\n\r\n"
        )
        sock.sendall(head.encode())
        try:
            sock.sendall(b" " * sent)
        except OSError:
            pass  # the server may answer and close before taking it all
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


@pytest.mark.integration
@pytest.mark.parametrize("target", ["gunicorn_server", "function_server"])
def test_over_limit_body_is_a_413_not_a_500(target: str, request: pytest.FixtureRequest) -> None:
    server: Server = request.getfixturevalue(target)
    answer = raw_post(server.port, 50 * 1024 * 1024, LIMIT + 1)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert json.loads(body)["code"] == 413


@pytest.mark.integration
def test_model_is_loaded_once_per_instance() -> None:
    server = functions_framework_server().start()
    for _ in range(20):
        status, _, _ = server.request("POST", "/", json.dumps(SETOSA).encode(), JSON)
        assert status == 200
    server.stop()
    assert server.output().count("loaded model") == 1, server.output()


@pytest.mark.integration
@pytest.mark.parametrize(
    "setup",
    [
        "import runpy; runpy.run_path('gcf/main.py')",
        "import runpy; runpy.run_path('gunicorn.conf.py'); import wsgi",
    ],
    ids=["function", "gunicorn"],
)
def test_blas_and_openmp_use_one_thread(setup: str) -> None:
    code = (
        f"{setup}\n"
        "from threadpoolctl import threadpool_info\n"
        "print(sorted({p['num_threads'] for p in threadpool_info()}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[1]"


@pytest.mark.integration
def test_vertex_ai_routes_and_port() -> None:
    port = free_port()
    server = gunicorn(
        {
            "AIP_HTTP_PORT": str(port),
            "AIP_HEALTH_ROUTE": "/v1/endpoints/7/deployedModels/9",
            "AIP_PREDICT_ROUTE": "/v1/endpoints/7/deployedModels/9:predict",
            "WEB_CONCURRENCY": "1",
        }
    )
    server.port = port
    server.env = {**server.env, "PORT": "1"}  # AIP_HTTP_PORT wins over PORT
    server.start(ready_path="/v1/endpoints/7/deployedModels/9")
    try:
        status, _, body = server.request(
            "POST",
            "/v1/endpoints/7/deployedModels/9:predict",
            json.dumps({"instances": [SETOSA, [6.3, 3.3, 6.0, 2.5]]}).encode(),
            JSON,
        )
        assert (status, body) == (200, b'{"predictions":[0,2]}')
        assert server.request("GET", "/health")[2] == b'{"status":"ok"}'
    finally:
        assert server.stop() == 0


@pytest.mark.integration
@pytest.mark.slow
def test_deployed_bundle_serves_the_contract_from_a_clean_environment(tmp_path: Path) -> None:
    """Build the upload, install it from its own requirements, serve it, run the contract."""
    bundle = tmp_path / "function"
    subprocess.run(
        [sys.executable, "-m", "webapp", "bundle", "model.pkl", "--out", str(bundle)],
        cwd=ROOT,
        check=True,
    )
    files = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file())
    assert {"main.py", "model.pkl", "model.json", "model.onnx", "requirements.txt"} <= set(files)
    assert not [f for f in files if f.startswith(("tests", "gcf", ".")) or "__pycache__" in f]
    assert "webapp/http/routes.py" in files
    tools = ("webapp/package/", "webapp/deploy/", "webapp/gcf/", "webapp/cli.py", "webapp/__main__")
    assert not [f for f in files if f.startswith(tools)]

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    subprocess.run(
        [env_dir / "bin" / "pip", "install", "--quiet", "-r", bundle / "requirements.txt"],
        check=True,
        timeout=600,
    )
    argv = [str(env_dir / "bin" / "functions-framework"), "--target", "predict"]
    argv += ["--host", "127.0.0.1", "--port", "{port}"]
    server = Server(argv, cwd=bundle).start()
    try:
        proc = subprocess.run(
            [BIN / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/service/test_contract.py", "-k", "base-url",
             "--base-url", f"http://127.0.0.1:{server.port}"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert " passed" in proc.stdout
        status, _, body = server.request("POST", "/", json.dumps(SETOSA).encode(), JSON)
        assert (status, body) == (200, b'{"prediction":0}')
        status, _, body = server.request("GET", "/metadata")
        assert json.loads(body)["engine"]["name"] == "onnx"  # the bundle serves the compiled form
    finally:
        server.stop()
