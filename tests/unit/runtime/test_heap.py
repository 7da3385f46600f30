"""The heap between requests: large buffers kept for the next request, returned after JSON.

tuning.prepare() has glibc keep the free top of its heap (up to a bound) instead of handing
it back after every large request; release() returns it after a large JSON parse, whose
objects are what fragments the heap, and not after a binary tensor's bytes. That this is
faster is measured by bench/tensors.py, not asserted here.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from testkit.processes import ROOT, server_env
from webapp.http.httpio import json_size

pytestmark = pytest.mark.integration

# mallinfo2().keepcost: the free memory at the heap's top, which glibc has not returned.
KEPT_AFTER_FREEING = """
import ctypes
from webapp.runtime import tuning

tuning.prepare()
names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
fields = [(name, ctypes.c_size_t) for name in names.split()]
Info = type("Info", (ctypes.Structure,), {"_fields_": fields})
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
buffers = [bytearray(1_000_000) for _ in range(3)]
del buffers
print(libc.mallinfo2().keepcost)
"""


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="glibc's malloc only")
@pytest.mark.parametrize(
    ("environment", "kept"),
    [({}, True), ({"MALLOC_TRIM_THRESHOLD_": "131072"}, False)],
)
def test_freed_large_buffers_are_kept_unless_the_operator_says_otherwise(
    environment: dict[str, str], kept: bool
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KEPT_AFTER_FREEING],
        cwd=ROOT,
        env=server_env(environment),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert (int(done.stdout) >= 3_000_000) is kept, done.stdout


@pytest.mark.parametrize(
    ("headers", "size"),
    [
        ({"CONTENT_LENGTH": "320250"}, 320_250),
        ({"CONTENT_LENGTH": "320250", "HTTP_INFERENCE_HEADER_CONTENT_LENGTH": "250"}, 250),
        ({"CONTENT_LENGTH": "100", "HTTP_INFERENCE_HEADER_CONTENT_LENGTH": "250"}, 100),
        ({"CONTENT_LENGTH": "320250", "HTTP_INFERENCE_HEADER_CONTENT_LENGTH": "x"}, 320_250),
        ({"HTTP_INFERENCE_HEADER_CONTENT_LENGTH": "250"}, 0),  # chunked: nothing said
        ({}, 0),
    ],
)
def test_only_the_json_part_of_a_body_counts_for_release(
    headers: dict[str, str], size: int
) -> None:
    assert json_size(headers) == size
