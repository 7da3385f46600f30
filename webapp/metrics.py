"""Prometheus metrics, correct under several gunicorn workers.

With PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets it before anything imports
prometheus_client), each process writes its samples to files there and GET /metrics sums
them, so counts from every worker add up and a replaced worker's counts are kept. Without
it (the Cloud Function, `flask run`) the process's own registry is served.
"""

from __future__ import annotations

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
)

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


def render() -> tuple[bytes, str]:
    """The exposition text and its content type, summed over processes when there are many."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
