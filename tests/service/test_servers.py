"""Real gunicorn and functions-framework processes: boot, refuse bad artifacts, serve, stop."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris, load_wine

from testkit.processes import (
    Server,
    flask_run,
    functions_framework_server,
    gunicorn,
    server_env,
)
from testkit.samples import SETOSA
from webapp.core.model import sha256_hex

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
STARTERS: dict[str, Callable[[Mapping[str, str]], Server]] = {
    "gunicorn": gunicorn,
    "functions-framework": functions_framework_server,
}


# (damage, the engine asked for, what the refusal says). The compiled engine never reads the
# pickle, so the pickle's damages are shown to the engine that does.
DAMAGES = {
    "missing-manifest": ("auto", "cannot read"),
    "missing-compiled": ("auto", "cannot read"),
    "tampered-compiled": ("auto", "the manifest records"),
    "tampered-manifest": ("auto", "MODEL_SHA256 pins"),
    "pin": ("auto", "MODEL_SHA256 pins"),
    "missing": ("sklearn", "cannot read"),
    "tampered": ("sklearn", "the manifest records"),
    "corrupt": ("sklearn", "cannot be unpickled"),
    "wrong-version": ("sklearn", "trained with scikit-learn 1.2.2"),
}


def damaged_copy(iris_model: Path, folder: Path, damage: str) -> Path:
    """A copy of the model broken in one of the ways a deployment can break it."""
    for suffix in (".pkl", ".json", ".onnx", ".verification.json"):
        shutil.copy(iris_model.with_suffix(suffix), folder / f"model{suffix}")
    path = folder / "model.pkl"
    manifest = json.loads(path.with_suffix(".json").read_text())
    if damage == "missing":
        path.unlink()
    elif damage in ("tampered", "tampered-compiled"):
        damaged = path if damage == "tampered" else path.with_suffix(".onnx")
        data = bytearray(damaged.read_bytes())
        data[len(data) // 2] ^= 0x01
        damaged.write_bytes(bytes(data))
    elif damage == "corrupt":
        path.write_bytes(b"garbage")
        manifest["artifact"]["sha256"] = sha256_hex(b"garbage")
    elif damage == "wrong-version":
        manifest["versions"]["scikit-learn"] = "1.2.2"
    elif damage == "tampered-manifest":
        manifest["features"][0]["max"] = 1e9  # pinned below: the pin no longer matches
    elif damage == "missing-compiled":
        path.with_suffix(".onnx").unlink()
    if damage == "missing-manifest":
        path.with_suffix(".json").unlink()
    else:
        path.with_suffix(".json").write_text(json.dumps(manifest))
    return path


def run_to_exit(server: Server, timeout: float = 20.0) -> tuple[int, str, float]:
    """Start a server that should refuse to boot; return its status, output and run time."""
    started = time.monotonic()
    try:
        server.start(deadline=timeout)
    except AssertionError:
        pass
    else:
        server.stop()
        raise AssertionError(f"it served:\n{server.output()}")
    assert server.proc is not None and server.proc.returncode is not None
    return server.proc.returncode, server.output(), time.monotonic() - started


@pytest.mark.parametrize("target", sorted(STARTERS))
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_bad_artifact_stops_the_boot(
    target: str, damage: str, iris_model: Path, tmp_path: Path
) -> None:
    pinned = sha256_hex(iris_model.with_suffix(".json").read_bytes())
    path = damaged_copy(iris_model, tmp_path, damage)
    engine, says = DAMAGES[damage]
    env = {"MODEL_PATH": str(path), "ENGINE": engine}
    if damage == "pin":
        env["MODEL_SHA256"] = "f" * 64
    elif damage == "tampered-manifest":
        env["MODEL_SHA256"] = pinned
    code, output, seconds = run_to_exit(STARTERS[target](env))
    assert code != 0
    assert seconds < 15
    refusals = [line for line in output.splitlines() if "refusing to start" in line]
    assert len(refusals) == 1, output
    assert says in refusals[0], refusals
    assert "Listening at" not in output and "Booting worker" not in output


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT must be a whole number, got 'eighty'"),
        ({"PORT": "70000"}, "PORT must be between 1 and 65535, got 70000"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY must be between 1 and 64, got 0"),
        # gunicorn itself parses WEB_CONCURRENCY on import, before our config: serve.py first
        ({"WEB_CONCURRENCY": "2x"}, "WEB_CONCURRENCY must be a whole number, got '2x'"),
        (
            {"HOST": "local_host"},
            "HOST must be an IP address such as 127.0.0.1 or a host name such as localhost, "
            "got 'local_host'",
        ),
        ({"GUNICORN_HEADER_TIMEOUT": "-1"}, "GUNICORN_HEADER_TIMEOUT must be between 1 and 3600"),
        ({"GUNICORN_BODY_TIMEOUT": "0"}, "GUNICORN_BODY_TIMEOUT must be between 1 and 3600"),
        ({"MAX_BATCH_SIZE": "lots"}, "MAX_BATCH_SIZE must be a whole number"),
    ],
)
def test_bad_setting_stops_gunicorn(env: dict[str, str], message: str) -> None:
    server = gunicorn()
    proc = subprocess.run(
        server.argv, cwd=server.cwd, env={**os.environ, **env}, capture_output=True, timeout=30
    )
    assert proc.returncode != 0
    output = (proc.stdout + proc.stderr).decode()
    assert message in output
    assert "Traceback" not in output


@pytest.mark.parametrize("target", sorted(STARTERS))
def test_wine_model_through_model_path(target: str, wine_model: Path) -> None:
    server = STARTERS[target]({"MODEL_PATH": str(wine_model)}).start()
    try:
        data = load_wine()
        row = dict(zip(data.feature_names, data.data[10].tolist(), strict=True))
        status, _, payload = server.request("POST", "/predict", json.dumps(row).encode(), JSON)
        assert (status, json.loads(payload)) == (200, {"prediction": int(data.target[10])})
        status, _, payload = server.request("GET", "/metadata")
        assert json.loads(payload)["name"] == "wine-logistic-regression"
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("target", ["gunicorn_server", "function_server"])
def test_batch_of_ten_thousand(target: str, request: pytest.FixtureRequest) -> None:
    server: Server = request.getfixturevalue(target)
    X = np.tile(load_iris().data, (67, 1))[:10_000]
    for instances in (X.tolist(), [dict(zip(SETOSA, row, strict=True)) for row in X.tolist()]):
        status, _, payload = server.request(
            "POST", "/predict", json.dumps({"instances": instances}).encode(), JSON
        )
        assert status == 200
        predictions = json.loads(payload)["predictions"]
        assert len(predictions) == 10_000
        assert predictions[:150] == predictions[150:300]


def test_gunicorn_runs_preloaded_workers_and_stops_cleanly() -> None:
    server = gunicorn({"WEB_CONCURRENCY": "2"}).start()
    status, _, payload = server.request("POST", "/predict", json.dumps(SETOSA).encode(), JSON)
    assert (status, payload) == (200, b'{"prediction":0}')
    assert server.stop() == 0
    output = server.output()
    assert output.count("loaded model") == 1, output  # once, in the master, before the fork
    assert output.count("Booting worker") == 2


def test_workers_collect_garbage_and_leave_the_preload_frozen() -> None:
    """gunicorn.conf.py turns the collector off for the start: the workers must have it on."""
    server = gunicorn({"WEB_CONCURRENCY": "2"}, app="tests.service.collector_probe:app").start()
    try:
        states = [json.loads(server.request("GET", "/")[2]) for _ in range(4)]
    finally:
        server.stop()
    assert all(state["enabled"] for state in states)
    # what the master loaded before the fork (gunicorn, the config's imports) is out of the
    # collector's reach, so its pages stay shared; without gc.freeze() this would be 0
    assert min(state["frozen"] for state in states) > 10_000


def test_a_port_in_use_stops_gunicorn_in_one_line() -> None:
    """Not gunicorn's five attempts over five seconds, each an error line (on Google Cloud,
    an Error Reporting event): one line, exit 1, before the model is loaded."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = gunicorn({"WEB_CONCURRENCY": "1"})
        env = server_env({"WEB_CONCURRENCY": "1", "PORT": str(port)})
        proc = subprocess.run(server.argv, cwd=server.cwd, env=env, capture_output=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stdout == b""
    assert proc.stderr.decode().splitlines() == [
        f"cannot listen on 127.0.0.1:{port}: the address is already in use"
    ]


@pytest.mark.parametrize(
    ("host", "listening"),
    [(None, "127.0.0.1"), ("0.0.0.0", "0.0.0.0"), ("localhost", "127.0.0.1")],
)
def test_gunicorn_listens_on_loopback_unless_host_says_otherwise(
    host: str | None, listening: str
) -> None:
    server = gunicorn({"WEB_CONCURRENCY": "1", **({"HOST": host} if host else {})})
    server.start()
    assert server.stop() == 0
    lines = [json.loads(line)["message"] for line in server.output().splitlines()]
    assert f"Listening at: http://{listening}:{server.port} " in "\n".join(lines) + " "


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "no-debug"])
def test_flask_run_shows_its_debugger_only_in_debug_mode(debug: bool) -> None:
    """`make dev` (flask run --debug): an unexpected error is Flask's debugger page; without
    --debug it is the generic JSON 500. Log records are JSON lines either way (Flask's banner
    and the debugger's own traceback are printed, not logged)."""
    options = ["--no-reload", "--debug" if debug else "--no-debug"]
    server = flask_run("tests.service.failing_app", options).start()
    try:
        status, headers, body = server.request(
            "POST", "/predict", json.dumps(SETOSA).encode(), JSON
        )
    finally:
        server.stop()
    assert status == 500
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    (request_line,) = [
        line for line in lines if line["name"] == "werkzeug" and "POST" in line["message"]
    ]
    assert "POST /predict HTTP/1.1" in request_line["message"]
    assert "\x1b" not in request_line["message"]  # no terminal colours inside the JSON
    if debug:
        assert headers["Content-Type"].startswith("text/html")
        assert b"Werkzeug Debugger" in body and b"an injected failure" in body
    else:
        assert json.loads(body) == {
            "code": 500,
            "status": "Internal Server Error",
            "message": "Internal server error.",
        }
        # the traceback in the message, where Error Reporting reads it
        assert any("RuntimeError: an injected failure" in line["message"] for line in lines)
