"""Shared fixtures: freshly trained artifacts, the app, its clients, real server processes."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings

import train
from webapp import create_app
from webapp.settings import SETTING_NAMES

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}

# What a server started here inherits from the caller's environment: nothing that configures
# the project, gunicorn, functions-framework or Python's warnings; only what locates programs
# and files, and the machine's BLAS kernel choice (the suite must pass under any of them).
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "OPENBLAS_CORETYPE")
# Settings the tests' own process must not take from the caller's shell either.
PROJECT_SETTINGS = (
    *SETTING_NAMES,
    "HOST",
    "PORT",
    "AIP_HTTP_PORT",
    "WEB_CONCURRENCY",
    "LOG_LEVEL",
    "GOOGLE_CLOUD_PROJECT",
    "PROMETHEUS_MULTIPROC_DIR",
    "FORWARDED_ALLOW_IPS",
    "GUNICORN_CMD_ARGS",
)

# The same examples on every run and every machine, no example database kept in the
# repository, and no deadline: a busy machine is slow, not wrong.
settings.register_profile("repeatable", derandomize=True, database=None, deadline=None)
settings.load_profile("repeatable")


def pytest_configure(config: pytest.Config) -> None:
    for name in PROJECT_SETTINGS:
        os.environ.pop(name, None)


def server_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment for a server process: the inherited basics, then `extra`."""
    return {**{k: os.environ[k] for k in INHERITED if k in os.environ}, **extra}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--base-url",
        default=None,
        help="also run the contract suite against an already running server at this URL "
        "(the container test uses it)",
    )


def train_into(folder: Path, dataset: str = "iris") -> Path:
    """Train `dataset` into `folder` and return the artifact's path."""
    model, manifest = train.train(dataset)
    path = folder / "model.pkl"
    train.save(model, manifest, path)
    return path


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_into(tmp_path_factory.mktemp("iris"))


@pytest.fixture(scope="session")
def wine_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_into(tmp_path_factory.mktemp("wine"), "wine")


@pytest.fixture()
def app(iris_model: Path) -> Flask:
    return create_app({"MODEL_PATH": str(iris_model)})


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def function_client() -> FlaskClient:
    """The Cloud Function under functions-framework's own app, in process (committed model)."""
    ff_app = functions_framework.create_app("predict", str(ROOT / "gcf" / "main.py"))
    return ff_app.test_client()


class CountingStream:
    """A request body of `size` spaces that counts how much of it is read."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        self.read_bytes += n
        return b" " * n


def send_unsized(client: FlaskClient, method: str, path: str, size: int) -> tuple[Any, int]:
    """Send a JSON body of `size` bytes with no Content-Length (as chunked encoding arrives);
    return the response and how many bytes of the body the app read."""
    stream = CountingStream(size)
    response = client.open(
        path,
        method=method,
        content_type="application/json",
        environ_overrides={"wsgi.input": stream, "wsgi.input_terminated": True},
    )
    return response, stream.read_bytes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A real server process on 127.0.0.1, started by the tests and stopped with SIGTERM."""

    argv: list[str]
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    cwd: Path = ROOT
    proc: subprocess.Popen[bytes] | None = None
    log: Any = None  # a temporary file: a pipe nobody reads would block a chatty server
    _output: str = ""

    @classmethod
    def at(cls, base_url: str) -> Server:
        """A server somebody else started, such as the container, at http://127.0.0.1:PORT."""
        host, _, port = base_url.removeprefix("http://").rstrip("/").rpartition(":")
        assert host in ("127.0.0.1", "localhost"), "tests talk to this machine only"
        return cls([], port=int(port))

    def start(
        self, ready_path: str = "/health", deadline: float = 30.0, attempts: int = 3
    ) -> Server:
        env = server_env({"PORT": str(self.port), **self.env})
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            argv, cwd=self.cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        until = time.monotonic() + deadline
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                code = self.stop()
                taken = "Connection in use" in self.output() or "already in use" in self.output()
                if taken and attempts > 1:  # another process bound it after free_port() chose it
                    self.port = free_port()
                    return self.start(ready_path, deadline, attempts - 1)
                raise AssertionError(f"{argv} exited {code}:\n{self.output()}")
            try:
                if self.request("GET", ready_path)[0] == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"{argv} not ready in {deadline}s:\n{self.output()}")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            try:
                conn.request(method, path, body=body, headers=dict(headers or {}))
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered (a 413, say) and closed before the whole body was sent
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, and keep the output; returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"did not stop on SIGTERM:\n{self.output()}") from None
        finally:
            self.output()
            self.log.close()

    def output(self) -> str:
        """Everything the process has printed so far."""
        if not self.log.closed:
            self.log.seek(0)
            self._output = self.log.read().decode(errors="replace")
        return self._output


def gunicorn(env: Mapping[str, str] | None = None) -> Server:
    """gunicorn exactly as `make run` starts it, with two workers unless `env` says otherwise
    (its default is one per CPU, and the tests must not depend on the machine)."""
    return Server([str(BIN / "python"), "serve.py"], {"WEB_CONCURRENCY": "2", **(env or {})})


def functions_framework_server(env: Mapping[str, str] | None = None) -> Server:
    """The function exactly as Cloud Functions runs it, from a working directory elsewhere."""
    argv = [
        str(BIN / "functions-framework"),
        "--target",
        "predict",
        "--source",
        str(ROOT / "gcf" / "main.py"),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ]
    return Server(argv, env or {}, cwd=Path("/"))


@pytest.fixture(scope="session")
def gunicorn_server() -> Iterator[Server]:
    server = gunicorn({"WEB_CONCURRENCY": "2"}).start()
    yield server
    assert server.stop() == 0, server.output()


@pytest.fixture(scope="session")
def function_server() -> Iterator[Server]:
    server = functions_framework_server().start()
    yield server
    server.stop()
