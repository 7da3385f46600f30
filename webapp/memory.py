"""Give the heap pages a large request freed back to the operating system.

After a large buffer is freed, glibc raises its mmap threshold, so the next large request's
buffers come from the heap and stay resident once freed: a worker that parsed one
10,000-object batch would keep about 8 MB more private memory for good. malloc_trim(0)
returns those pages. It costs about a millisecond, so it runs only after large bodies.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

LARGE_BODY = 256 * 1024

_malloc_trim: Callable[[int], Any] | None
try:  # glibc's; musl and others have no malloc_trim, and nothing to do here
    _malloc_trim = ctypes.CDLL(None).malloc_trim
except (AttributeError, OSError):
    _malloc_trim = None


def release_freed_memory() -> None:
    """Return free heap pages to the OS, where the C library can."""
    if _malloc_trim is not None:
        _malloc_trim(0)
