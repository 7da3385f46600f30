"""Shared fixtures: freshly trained artifacts, the app, its clients, real server processes.

Every test carries one tier marker, unit, integration or browser (slow may come on top): see
pyproject.toml. Collection fails on a test without exactly one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings

import train
from testkit.processes import ROOT, Server, functions_framework_server, gunicorn
from webapp import create_app
from webapp.runtime.settings import SETTING_NAMES

TIERS = ("unit", "integration", "browser")
# Settings the tests' own process must not take from the caller's shell either.
PROJECT_SETTINGS = (
    *SETTING_NAMES,
    "HOST",
    "PORT",
    "AIP_HTTP_PORT",
    "WEB_CONCURRENCY",
    "LOG_LEVEL",
    "GOOGLE_CLOUD_PROJECT",
    "GCE_METADATA_HOST",
    "K_SERVICE",
    "K_REVISION",
    "AIP_MODE",
    "STORAGE_EMULATOR_HOST",
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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--base-url",
        default=None,
        help="also run the contract suite against an already running server at this URL "
        "(the container test uses it)",
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects any: every collected test is checked
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail the collection if a test has no tier marker, or more than one."""
    wrong = []
    for item in items:
        tiers = sorted({mark.name for mark in item.iter_markers()} & set(TIERS))
        if len(tiers) != 1:
            wrong.append(f"  {item.nodeid}: {', '.join(tiers) or 'none'}")
    if wrong:
        raise pytest.UsageError(
            f"each test takes exactly one tier marker of {', '.join(TIERS)}:\n" + "\n".join(wrong)
        )


def train_into(folder: Path, dataset: str = "iris") -> Path:
    """Train `dataset` into `folder` and return the artifact's path."""
    model, manifest, table = train.train(dataset)
    path = folder / "model.pkl"
    train.save(model, manifest, path, table)
    return path


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_into(tmp_path_factory.mktemp("iris"))


@pytest.fixture()
def artifact(iris_model: Path, tmp_path: Path) -> Path:
    """A private copy of the freshly trained model (pickle, manifest, compiled form and its
    verification rows), free to damage."""
    for suffix in (".pkl", ".json", ".onnx", ".verification.json"):
        shutil.copy(iris_model.with_suffix(suffix), tmp_path / f"model{suffix}")
    return tmp_path / "model.pkl"


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
