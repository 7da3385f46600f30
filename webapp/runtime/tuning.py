"""Process tuning, in one place: three calls the edges make, each with its reason.

- prepare(), first thing in gunicorn.conf.py and gcf/main.py: one BLAS/OpenMP thread per
  process, and no garbage collection while the stack is imported and the model loaded.
- settle(app), once the app is loaded (gunicorn's master before it forks; the function at
  its cold start): serve each request shape once, freeze what loading made out of the
  collector's reach and turn it back on, and hand the heap that loading freed back.
- release(body_size), after a request: the heap a large body's parse freed, back to the system.

The measurements behind each are in docs/performance.md. Nothing here imports numpy, flask or
the model: prepare() must run before they load.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# After a large buffer is freed glibc raises its mmap threshold, so the next large request's
# buffers come from the heap and stay resident once freed; malloc_trim(0) returns them. It
# costs about a millisecond, so only after bodies at least this large.
LARGE_BODY = 256 * 1024

_malloc_trim: Callable[[int], Any] | None
try:  # glibc's; musl and others have no malloc_trim, and nothing to do here
    _malloc_trim = ctypes.CDLL(None).malloc_trim
except (AttributeError, OSError):
    _malloc_trim = None


def prepare() -> None:
    """Before numpy and the model load: one BLAS/OpenMP thread, and no collections yet.

    The processes are the parallelism (one worker per CPU), and oversubscribed thread pools
    only add contention. Importing the stack and loading the model create some 200,000
    objects and almost no garbage: the collector would scan them over and over.
    """
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    gc.disable()


def settle(app: Any = None) -> None:
    """Once loaded: warm `app` up (in a process about to fork), freeze, collect again, trim.

    CPython specialises bytecode in place as it runs, and first requests fill caches: done in
    gunicorn's master, before the fork, those pages stay shared by every worker instead of
    being copied into each. gc.freeze() keeps the collector from writing to what loading
    made, for the same reason, and makes every later collection shorter.
    """
    if app is not None:
        warm_up(app)
    gc.freeze()
    gc.enable()
    release(LARGE_BODY)


def release(body_size: int) -> None:
    """Return freed heap pages to the system after a body of `body_size` bytes, if large."""
    if body_size >= LARGE_BODY and _malloc_trim is not None:
        _malloc_trim(0)


def warm_up(app: Any) -> None:
    """POST the manifest's self-check rows in every request shape once, unlogged, uncounted.

    Any other app (gunicorn.conf.py serving bench/baselines.py, say) is left alone; and a
    failure is an optimisation lost, not a reason to stop.
    """
    from . import metrics  # the service's own stack, loaded by now

    service = getattr(app, "extensions", {}).get("prediction_service")
    if service is None:
        return
    model = service.predictor.model
    objects = model.manifest["self_check"]["instances"][: service.settings.max_batch_size]
    requests: list[tuple[str, Any]] = [("/predict", objects[0])]
    requests.append(("/predict", {"instances": objects}))
    if model.numeric:  # instances may be arrays
        arrays = [[row[name] for name in model.feature_names] for row in objects]
        requests.append(("/predict", {"instances": arrays}))
    if model.probabilities:
        requests.append(("/predict?probabilities=true", objects[0]))
    client = app.test_client()
    disabled = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        statuses = {client.post(path, json=document).status_code for path, document in requests}
    finally:
        logging.disable(disabled)
        metrics.discard_own_samples()
    if statuses != {200}:
        log.warning("warm-up requests answered %s", sorted(statuses))
