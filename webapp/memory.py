"""Keep the memory a large request used from staying with the worker for good.

glibc serves buffers of 128 KiB and more (a batch's arrays, its body, its answer) with mmap
and unmaps them when freed, but after the first such free it raises that threshold, and the
next large buffers come from the heap and stay resident once freed: a worker that parsed one
10,000-object batch kept about 2 MiB more private memory for good. Fixing the threshold keeps
them out of the heap; malloc_trim(0) returns what the heap freed anyway. Both are glibc's; on
other C libraries they are skipped.
"""

from __future__ import annotations

import ctypes
from typing import Any

LARGE_BODY = 256 * 1024

_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
_MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value

try:
    _libc: Any = ctypes.CDLL(None)
    _malloc_trim = _libc.malloc_trim
    _mallopt = _libc.mallopt
except (AttributeError, OSError):  # musl and others: nothing to do
    _malloc_trim = _mallopt = None


def keep_large_buffers_off_the_heap() -> None:
    """Serve every allocation of 128 KiB or more with its own mmap, for this process's life."""
    if _mallopt is not None:
        _mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


def release_freed_memory() -> None:
    """Return free heap pages to the OS, where the C library can."""
    if _malloc_trim is not None:
        _malloc_trim(0)
