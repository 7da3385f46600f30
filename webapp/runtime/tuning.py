"""Process tuning, in one place: three calls the edges make, each with its reason.

- prepare(), first thing in gunicorn.conf.py and gcf/main.py: one BLAS/OpenMP thread per
  process, no garbage collection while the stack is imported and the model loaded, and
  large buffers kept by glibc for the next request.
- settle(app), once the app is loaded (gunicorn's master before it forks; the function at
  its cold start): serve each request shape once, freeze what loading made out of the
  collector's reach and turn it back on, and hand the heap that loading freed back.
- release(json_size), after a request: the heap a large JSON body's parse freed, back to the
  system.

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

# Left to itself, glibc hands the free top of its heap back to the system whenever it exceeds
# twice the largest buffer freed so far, and serves each buffer larger than that largest one
# from fresh pages of its own: either way, every large request's buffers (a binary tensor's
# bytes, numpy's arrays) are faulted in again, page by page. Buffers below _MMAP_THRESHOLD
# come from the heap, and up to _TRIM_THRESHOLD of free heap is kept for the next request;
# release() still returns it all after a large JSON parse. Set by prepare(), in the process
# that then forks: the workers inherit it.
_MMAP_THRESHOLD = 4 * 1024 * 1024  # more than the largest default body (MAX_CONTENT_LENGTH)
_TRIM_THRESHOLD = 4 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
# What else may tell glibc's malloc how to behave: then the operator's choice stands.
_MALLOC_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")

_malloc_trim: Callable[[int], Any] | None
_mallopt: Callable[[int, int], int] | None
try:  # glibc's; musl and others have neither, and nothing to do here
    _malloc_trim, _mallopt = ctypes.CDLL(None).malloc_trim, ctypes.CDLL(None).mallopt
except (AttributeError, OSError):
    _malloc_trim = _mallopt = None


def prepare() -> None:
    """Before numpy and the model load: one BLAS/OpenMP thread, no collections yet, and
    glibc's large buffers kept for reuse (_MMAP_THRESHOLD, _TRIM_THRESHOLD).

    The processes are the parallelism (one worker per CPU), and oversubscribed thread pools
    only add contention. Importing the stack and loading the model create some 200,000
    objects and almost no garbage: the collector would scan them over and over.
    """
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    if _mallopt is not None and not any(name in os.environ for name in _MALLOC_SETTINGS):
        _mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        _mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
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


def release(json_size: int) -> None:
    """Return freed heap pages to the system after `json_size` bytes of JSON, if that is large.

    The objects a large JSON document parses into leave the heap fragmented. A binary tensor's
    bytes make a few large buffers instead, which the next request reuses: returning them would
    only make it fault fresh pages in again.
    """
    if json_size >= LARGE_BODY and _malloc_trim is not None:
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
