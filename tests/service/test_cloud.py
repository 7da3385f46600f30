"""Google Cloud observability: the project id from a metadata server on loopback, trace fields
with it, errors as Error Reporting reads them, on real gunicorn and functions-framework."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from testkit.processes import Server, free_port, functions_framework_server, gunicorn
from testkit.samples import SETOSA
from webapp.runtime import cloud
from webapp.runtime.logs import ERROR_EVENT

JSON = {"Content-Type": "application/json"}
TRACE_ID = "105445aa7843bc8bf206b12000100000"
SPAN = "b7ad6b7169203331"
PROJECT = "metadata-project"
STARTERS: dict[str, Callable[[Mapping[str, str]], Server]] = {
    "gunicorn": lambda env: gunicorn(env, workers=2),
    "functions-framework": functions_framework_server,
}
FAILING: dict[str, Callable[[Mapping[str, str]], Server]] = {
    "gunicorn": lambda env: gunicorn(env, workers=2, app="tests.service.failing_app:app"),
    "functions-framework": lambda env: functions_framework_server(
        env, source="tests/service/failing_function.py"
    ),
}


class MetadataServer:
    """A metadata server on 127.0.0.1: the project id, to requests that say Metadata-Flavor."""

    def __init__(self, flavor: str | None = "Google", delay: float = 0.0) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                time.sleep(delay)
                asked = self.headers.get("Metadata-Flavor") == "Google"
                ok = asked and self.path == cloud.PROJECT_ID_PATH
                body = PROJECT.encode() if ok else b"not found"
                self.send_response(200 if ok else 404)
                if flavor:
                    self.send_header("Metadata-Flavor", flavor)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MetadataServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def metadata() -> Iterator[MetadataServer]:
    with MetadataServer() as server:
        yield server


def log_lines(server: Server) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.output().splitlines() if line.strip()]


@pytest.mark.integration
@pytest.mark.parametrize("target", sorted(STARTERS))
def test_trace_fields_carry_the_project_from_the_metadata_server(
    target: str, metadata: MetadataServer
) -> None:
    env = {"K_SERVICE": "iris-predict", "GCE_METADATA_HOST": metadata.host, "ACCESS_LOG": "1"}
    server = STARTERS[target](env).start()
    try:
        body = json.dumps(SETOSA).encode()
        cloud_trace = {**JSON, "X-Cloud-Trace-Context": f"{TRACE_ID}/42;o=1", "X-Request-ID": "a"}
        w3c = {**JSON, "traceparent": f"00-{TRACE_ID}-{SPAN}-01", "X-Request-ID": "b"}
        for headers in (cloud_trace, w3c, cloud_trace):
            assert server.request("POST", "/predict", body, headers)[0] == 200
    finally:
        server.stop()
    # asked once, at start, in the process that forks the workers: not per worker or request
    assert metadata.requests == [cloud.PROJECT_ID_PATH]
    lines = log_lines(server)
    traced = {line["requestId"]: line for line in lines if "requestId" in line}
    for request_id, span in (("a", f"{42:016x}"), ("b", SPAN)):
        line = traced[request_id]
        assert line["logging.googleapis.com/trace"] == f"projects/{PROJECT}/traces/{TRACE_ID}"
        assert line["logging.googleapis.com/spanId"] == span
    assert not [line for line in lines if line["severity"] not in ("INFO", "DEBUG")]


@pytest.mark.integration
def test_without_a_metadata_server_the_logs_go_without_the_trace_field() -> None:
    silent = f"127.0.0.1:{free_port()}"
    server = gunicorn({"K_SERVICE": "iris", "GCE_METADATA_HOST": silent}, workers=1).start()
    try:
        headers = {**JSON, "X-Cloud-Trace-Context": f"{TRACE_ID}/1;o=1"}
        assert server.request("POST", "/predict", b"{}", headers)[0] == 422
    finally:
        assert server.stop() == 0
    lines = log_lines(server)
    warnings = [line for line in lines if line["severity"] == "WARNING"]
    assert len(warnings) == 1 and "no project id from the metadata server" in warnings[0]["message"]
    assert not [line for line in lines if "logging.googleapis.com/trace" in line]


@pytest.mark.unit
def test_the_project_id_is_asked_for_only_on_google_cloud(metadata: MetadataServer) -> None:
    here = {"GCE_METADATA_HOST": metadata.host}
    assert cloud.project_id(here) == (None, None)
    assert cloud.project_id({**here, "K_SERVICE": "s", "GOOGLE_CLOUD_PROJECT": "own"}) == (
        "own",
        None,
    )
    assert metadata.requests == []
    assert cloud.project_id({**here, "AIP_MODE": "PREDICTION"}) == (PROJECT, None)
    assert cloud.project_id({**here, "K_SERVICE": "s"}) == (PROJECT, None)
    assert len(metadata.requests) == 2


@pytest.mark.unit
@pytest.mark.parametrize(
    ("flavor", "delay", "problem"),
    [
        (None, 0.0, "not a metadata server"),
        ("Other", 0.0, "not a metadata server"),
        ("Google", 10.0, "timed out"),
    ],
)
def test_a_doubtful_metadata_server_is_not_believed(
    flavor: str | None, delay: float, problem: str
) -> None:
    with MetadataServer(flavor, delay) as server:
        started = time.monotonic()
        project, why = cloud.project_id({"K_SERVICE": "s", "GCE_METADATA_HOST": server.host})
        assert time.monotonic() - started < 5.0  # the timeout (0.5 s) cut it, not the answer
    assert project is None and why is not None and problem in why


@pytest.mark.unit
def test_service_context_names_the_service_and_its_revision() -> None:
    assert cloud.service_context({"K_SERVICE": "s", "K_REVISION": "s-00002"}) == {
        "service": "s",
        "version": "s-00002",
    }
    assert cloud.service_context({"FUNCTION_TARGET": "predict"}) == {"service": "predict"}
    assert cloud.service_context({}) == {"service": "sklearn-serve"}


@pytest.mark.integration
@pytest.mark.parametrize("target", sorted(FAILING))
def test_an_unhandled_error_is_reported_and_the_client_learns_nothing(target: str) -> None:
    env = {"K_SERVICE": "iris-predict", "K_REVISION": "iris-predict-00007"}
    server = FAILING[target]({**env, "GOOGLE_CLOUD_PROJECT": "demo"}).start()
    try:
        headers = {**JSON, "X-Cloud-Trace-Context": f"{TRACE_ID}/1;o=1"}
        status, _, body = server.request("POST", "/predict", json.dumps(SETOSA).encode(), headers)
    finally:
        server.stop()
    assert status == 500
    assert (
        body == b'{"code":500,"status":"Internal Server Error","message":"Internal server error."}'
    )
    # gunicorn's master warms the app up with requests of its own, which fail too: the
    # client's request is the one with the trace
    events = [line for line in log_lines(server) if line.get("@type") == ERROR_EVENT]
    (event,) = [line for line in events if "logging.googleapis.com/trace" in line]
    assert event["severity"] == "ERROR"
    assert event["serviceContext"] == {"service": "iris-predict", "version": "iris-predict-00007"}
    assert event["message"].startswith("unhandled RuntimeError\nTraceback (most recent call last):")
    assert event["message"].endswith("RuntimeError: an injected failure")
    assert "exc_info" not in event
    assert event["logging.googleapis.com/trace"] == f"projects/demo/traces/{TRACE_ID}"
    assert b"Traceback" not in body and b"injected" not in body


@pytest.mark.integration
def test_a_killed_worker_is_reported_where_gunicorn_noticed_it() -> None:
    server = gunicorn({"K_SERVICE": "iris-predict", "GOOGLE_CLOUD_PROJECT": "demo"}).start()
    try:
        master, workers = server.pids()
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 15
        while "was sent SIGKILL" not in server.output():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
    finally:
        server.stop()
    (event,) = [line for line in log_lines(server) if "was sent SIGKILL" in line["message"]]
    assert event["@type"] == ERROR_EVENT and event["severity"] == "ERROR"
    assert event["serviceContext"] == {"service": "iris-predict"}
    location = event["context"]["reportLocation"]
    assert location["filePath"].endswith("gunicorn/arbiter.py") and location["lineNumber"] > 0
