"""The master's warm-up: its requests succeed under any settings and are not logged.

That they are not counted either is tested on real gunicorn workers, in
test_observability.py's exact metric sums.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from webapp import create_app
from webapp.warmup import warm_up


@pytest.mark.parametrize("max_batch_size", ["1", "1000"])
def test_warm_up_succeeds_quietly(
    iris_model: Path, max_batch_size: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(
        {"MODEL_PATH": str(iris_model), "MAX_BATCH_SIZE": max_batch_size, "ACCESS_LOG": "true"}
    )
    caplog.clear()  # the model's load lines
    with caplog.at_level(logging.DEBUG):
        warm_up(app, rounds=2)
    assert caplog.records == []
    assert logging.root.manager.disable == logging.NOTSET  # logging is back on
    assert app.test_client().post("/predict", json={}).status_code == 422


def test_a_failing_warm_up_is_reported_not_fatal(
    wine_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app({"MODEL_PATH": str(wine_model), "MAX_CONTENT_LENGTH": "64"})
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        warm_up(app, rounds=1)
    assert [r.getMessage() for r in caplog.records] == ["warm-up requests answered [413]"]


def test_another_app_is_left_alone() -> None:
    from bench.baselines import app

    warm_up(app)
