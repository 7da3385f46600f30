"""Serve a few requests in gunicorn's master before it forks, so every worker starts warm.

CPython 3.11 rewrites a function's bytecode in place as it specialises it, and first requests
fill caches. Done in each worker, that writes to pages the fork shared, and every worker keeps
private copies of them: about 3 MiB each. Done once in the master, those pages stay shared.
BLAS runs single-threaded (gunicorn.conf.py), so it has no thread pool for the fork to break;
the model's load-time verification already predicts in the master for the same reason.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from . import metrics

log = logging.getLogger(__name__)


def warm_up(app: Flask, rounds: int = 1) -> None:
    """POST the manifest's self-check rows in every request shape, `rounds` times, unlogged.

    One round (~3 ms) left workers as small as sixteen did (6.5 MiB after single rows).

    The requests are not traffic: their request lines are not logged, and the samples they
    added to this process's metrics are discarded afterwards. Any other app (gunicorn.conf.py
    serving bench/baselines.py, say) is left alone.
    """
    service = getattr(app, "extensions", {}).get("prediction_service")
    if service is None:
        return
    model = service.model
    arrays = model.manifest["self_check"]["instances"][: service.settings.max_batch_size]
    objects = [dict(zip(model.feature_names, row, strict=True)) for row in arrays]
    requests: list[tuple[str, Any]] = [
        ("/predict", objects[0]),
        ("/predict", {"instances": objects}),
        ("/predict", {"instances": arrays}),
        ("/predict?probabilities=true", objects[0]),
    ]
    client = app.test_client()
    disabled = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        statuses = {
            client.post(path, json=document).status_code
            for _ in range(rounds)
            for path, document in requests
        }
    finally:
        logging.disable(disabled)
        metrics.discard_own_samples()
    if statuses != {200}:  # an optimisation only: the workers still start, cold
        log.warning("warm-up requests answered %s", sorted(statuses))
