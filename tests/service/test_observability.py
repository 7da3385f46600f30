"""Logs, request ids, trace context and metrics: multi-worker gunicorn and the function."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from typing import Any

import pytest
from flask.testing import FlaskClient

from testkit.processes import Server, children, functions_framework_server, gunicorn
from testkit.samples import SETOSA
from webapp import create_app

JSON = {"Content-Type": "application/json"}
TRACE_ID = "105445aa7843bc8bf206b12000100000"
SPAN = "b7ad6b7169203331"
# Distinctive feature values: none of them may ever appear in a log line.
SECRET_ROW = {"sepal_length": 5.123457, "sepal_width": 3.234568, "petal_length": 1.345679,
              "petal_width": 0.456789}  # fmt: skip


def log_lines(server: Server) -> list[dict[str, Any]]:
    """Every line the server printed, each parsed as JSON (a non-JSON line fails the test)."""
    return [json.loads(line) for line in server.output().splitlines() if line.strip()]


def sum_samples(exposition: str, name: str, **labels: str) -> float:
    """Sum a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in exposition.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


@pytest.mark.integration
@pytest.mark.parametrize("start", [gunicorn, functions_framework_server])
def test_json_logs_with_trace_and_request_id(start: Any) -> None:
    server = start(
        {"ACCESS_LOG": "true", "GOOGLE_CLOUD_PROJECT": "demo-project", "WEB_CONCURRENCY": "2"}
    ).start()
    try:
        headers = {**JSON, "X-Cloud-Trace-Context": f"{TRACE_ID}/42;o=1", "X-Request-ID": "r-1"}
        status, response_headers, _ = server.request(
            "POST", "/predict", json.dumps(SECRET_ROW).encode(), headers
        )
        assert status == 200 and response_headers["X-Request-ID"] == "r-1"
        bad = json.dumps({**SECRET_ROW, "petal_width": -0.987654}).encode()
        status, response_headers, _ = server.request("POST", "/predict", bad, JSON)
        assert status == 422
        generated = response_headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
    finally:
        server.stop()

    lines = log_lines(server)
    assert all({"severity", "message"} <= set(line) for line in lines)
    (traced,) = [line for line in lines if line.get("requestId") == "r-1"]
    assert traced["logging.googleapis.com/trace"] == f"projects/demo-project/traces/{TRACE_ID}"
    assert traced["logging.googleapis.com/spanId"] == f"{42:016x}"
    assert traced["logging.googleapis.com/trace_sampled"] is True
    assert traced["modelVersion"] == "1.0.0"
    assert traced["httpRequest"]["status"] == 200
    assert traced["httpRequest"]["requestUrl"] == "/predict"
    (refused,) = [line for line in lines if line.get("requestId") == generated]
    assert refused["httpRequest"]["status"] == 422
    text = server.output()
    for value in [*SECRET_ROW.values(), 0.987654]:
        assert str(value) not in text


@pytest.mark.integration
def test_gunicorn_access_log_is_json_too() -> None:
    server = gunicorn({"GUNICORN_ACCESS_LOG": "1", "WEB_CONCURRENCY": "1"}).start()
    server.request("GET", "/health")
    server.stop()
    access = [line for line in log_lines(server) if line["name"] == "gunicorn.access"]
    assert access and access[-1]["httpRequest"]["requestUrl"] == "/health"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("headers", "trace", "span", "sampled"),
    [
        ({"traceparent": f"00-{TRACE_ID}-{SPAN}-01"}, TRACE_ID, SPAN, True),
        ({"traceparent": f"00-{TRACE_ID}-{SPAN}-00"}, TRACE_ID, SPAN, False),
        ({"X-Cloud-Trace-Context": f"{TRACE_ID}/1;o=0"}, TRACE_ID, "0000000000000001", False),
        ({"X-Cloud-Trace-Context": TRACE_ID}, TRACE_ID, None, False),
        ({"traceparent": "00-" + "0" * 32 + f"-{SPAN}-01"}, None, None, False),
        ({"traceparent": "garbage", "X-Cloud-Trace-Context": "zz/1"}, None, None, False),
    ],
)  # fmt: skip
def test_trace_headers(
    headers: dict[str, str], trace: str | None, span: str | None, sampled: bool
) -> None:
    from webapp.http.observe import trace_of

    app = create_app()
    with app.test_request_context("/health", headers=headers):
        from flask import request

        assert trace_of(request.environ) == (trace, span, sampled)


@pytest.mark.unit
@pytest.mark.parametrize("supplied", ["", "x" * 129, "a b", "id;drop", "é"])
def test_unusable_request_ids_are_replaced(client: FlaskClient, supplied: str) -> None:
    response = client.get("/health", headers={"X-Request-ID": supplied} if supplied else {})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


@pytest.mark.integration
def test_metrics_add_up_over_workers_and_survive_a_restart() -> None:
    server = gunicorn({"WEB_CONCURRENCY": "2"}).start()
    try:
        body = json.dumps(SETOSA).encode()
        for _ in range(40):
            assert server.request("POST", "/predict", body, JSON)[0] == 200
        workers = wait_for_workers(server, lambda pids: len(pids) == 2)
        os.kill(workers[0], signal.SIGTERM)  # the master replaces it
        wait_for_workers(server, lambda pids: len(pids) == 2 and workers[0] not in pids)
        for _ in range(10):
            assert server.request("POST", "/predict", body, JSON)[0] == 200
        assert server.request("POST", "/predict", b"{}", JSON)[0] == 422
        exposition = server.request("GET", "/metrics")[2].decode()
    finally:
        server.stop()
    assert worker_pids_seen(server) >= 3  # two workers, then a replacement
    requests = sum_samples(exposition, "http_requests_total", route="/predict", status="200")
    assert requests == 50
    assert sum_samples(exposition, "predictions_total", label="setosa") == 50
    assert sum_samples(exposition, "prediction_batch_size_count") == 50
    assert sum_samples(exposition, "validation_failures_total", status="422") == 1
    assert sum_samples(exposition, "http_request_duration_seconds_count", route="/predict") == 51
    assert sum_samples(exposition, "model_info", version="1.0.0") == 1


def wait_for_workers(server: Server, done: Any, deadline: float = 15.0) -> list[int]:
    """The master's children once `done(pids)` holds (a worker forks a little after /health)."""
    assert server.proc is not None
    until = time.monotonic() + deadline
    while not done(pids := children(server.proc.pid)):
        assert time.monotonic() < until, f"workers: {pids}"
        time.sleep(0.05)
    return pids


def worker_pids_seen(server: Server) -> int:
    return len(
        {line["message"] for line in log_lines(server) if "Booting worker" in line["message"]}
    )


@pytest.mark.unit
def test_function_serves_its_own_metrics(function_client: FlaskClient) -> None:
    before = sum_samples(function_client.get("/metrics").get_data(as_text=True),
                         "http_requests_total", route="/", status="200")  # fmt: skip
    assert function_client.post("/", json=SETOSA).status_code == 200
    response = function_client.get("/metrics")
    assert response.content_type.startswith("text/plain")
    after = sum_samples(
        response.get_data(as_text=True), "http_requests_total", route="/", status="200"
    )
    assert after == before + 1


def process_samples(exposition: str) -> dict[str, dict[int, float]]:
    """The process_* samples by metric name and pid."""
    samples: dict[str, dict[int, float]] = {}
    for match in re.finditer(r'^(process_\w+)\{pid="(\d+)"\} (\S+)$', exposition, re.M):
        samples.setdefault(match.group(1), {})[int(match.group(2))] = float(match.group(3))
    return samples


@pytest.mark.integration
def test_process_metrics_for_the_master_and_every_live_worker() -> None:
    server = gunicorn({"WEB_CONCURRENCY": "2"}).start()
    try:
        master, _ = server.pids()
        workers = wait_for_workers(server, lambda pids: len(pids) == 2)
        first = process_samples(server.request("GET", "/metrics")[2].decode())
        os.kill(workers[0], signal.SIGTERM)  # its files stay for its counts; its pid goes
        replaced = wait_for_workers(server, lambda pids: len(pids) == 2 and workers[0] not in pids)
        second = process_samples(server.request("GET", "/metrics")[2].decode())
    finally:
        server.stop()
    now = time.time()
    names = ("cpu_seconds_total", "resident_memory_bytes", "open_fds", "start_time_seconds")
    for samples, pids in ((first, {master, *workers}), (second, {master, *replaced})):
        assert sorted(samples) == sorted(f"process_{name}" for name in names)
        for by_pid in samples.values():
            assert set(by_pid) == pids
        cpu = samples["process_cpu_seconds_total"]  # a fresh worker may not have used a tick yet
        assert cpu[master] > 0 and all(0 <= seconds < 600 for seconds in cpu.values())
        assert all(
            20 * 2**20 < rss < 2**31 for rss in samples["process_resident_memory_bytes"].values()
        )
        assert all(3 <= fds < 1000 for fds in samples["process_open_fds"].values())
        started = samples["process_start_time_seconds"]
        assert all(now - 300 < t <= now + 1 for t in started.values())
        assert all(started[pid] >= started[master] - 0.02 for pid in pids)
