"""Prometheus metrics, correct under several gunicorn workers.

With PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets it before anything imports
prometheus_client), each process writes its samples to files there and GET /metrics sums
them, so counts from every worker add up and a replaced worker's counts are kept. Without
it (the Cloud Function, `flask run`) the process's own registry is served.
"""

from __future__ import annotations

import contextlib
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if MULTIPROCESS_DIR:
    # Every increment asks for the process id, to notice that it runs in a forked child: a
    # system call, six times per prediction. The id is kept here instead, renewed at a fork.
    _pid = os.getpid()

    def _renew_pid() -> None:
        global _pid
        _pid = os.getpid()

    os.register_at_fork(after_in_child=_renew_pid)
    values.ValueClass = values.MultiProcessValue(lambda: _pid)

REQUESTS = Counter("http_requests_total", "HTTP requests answered.", ["route", "method", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from the request reaching the app to its response.",
    ["route", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
PREDICTIONS = Counter("predictions_total", "Instances predicted, by class.", ["label"])
BATCH_SIZE = Histogram(
    "prediction_batch_size",
    "Instances per prediction request.",
    buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000),
)
VALIDATION_FAILURES = Counter(
    "validation_failures_total", "Prediction requests refused, by status.", ["status"]
)
MODEL_INFO = Gauge(
    "model_info",
    "The model being served (always 1).",
    ["name", "version", "sha256"],
    multiprocess_mode="max",
)


def discard_own_samples() -> None:
    """Forget this process's counts and timings (gunicorn's master, after its warm-up).

    Only in multiprocess mode: the process's counter and histogram files are deleted (the
    names prometheus_client gives them), and the model_info gauge's file is kept. The master
    counts nothing afterwards, and each forked worker writes files of its own.
    """
    if not MULTIPROCESS_DIR:
        return
    for kind in ("counter", "histogram"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(MULTIPROCESS_DIR, f"{kind}_{os.getpid()}.db"))


def render() -> tuple[bytes, str]:
    """The exposition text and its content type, summed over processes when there are many."""
    if MULTIPROCESS_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
