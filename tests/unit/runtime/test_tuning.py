"""Process tuning: the master's warm-up succeeds under any settings, logs nothing, and leaves
other apps alone; large bodies return their heap.

That the warm-up's requests are not counted is tested on real gunicorn workers, in
test_observability.py's exact metric sums; that the collector is frozen and back on in the
workers, in test_servers.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask import Flask

from webapp import create_app
from webapp.runtime.tuning import warm_up

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("max_batch_size", ["1", "1000"])
def test_warm_up_succeeds_quietly(
    iris_model: Path, max_batch_size: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(
        {"MODEL_PATH": str(iris_model), "MAX_BATCH_SIZE": max_batch_size, "ACCESS_LOG": "true"}
    )
    caplog.clear()  # the model's load lines
    with caplog.at_level(logging.DEBUG):
        warm_up(app)
    assert caplog.records == []
    assert logging.root.manager.disable == logging.NOTSET  # logging is back on
    assert app.test_client().post("/predict", json={}).status_code == 422


def test_a_failing_warm_up_is_reported_not_fatal(
    wine_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app({"MODEL_PATH": str(wine_model), "MAX_CONTENT_LENGTH": "64"})
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        warm_up(app)
    assert [r.getMessage() for r in caplog.records] == ["warm-up requests answered [413]"]


def test_another_app_is_left_alone() -> None:
    """gunicorn.conf.py also serves bench/baselines.py: the warm-up must not call it."""
    app = Flask(__name__)
    calls = []
    app.add_url_rule("/predict", "predict", lambda: calls.append(1) or {}, methods=["POST"])
    warm_up(app)
    assert calls == []
