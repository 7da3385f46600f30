"""The worker's body stream (worker.body_stream) against gunicorn's own body reader.

A request framed by Content-Length reaches the app as a stream over its very bytes instead of
gunicorn's reader. For generated bodies and generated sequences of reads (read, readline,
iteration, readlines, with and without sizes) both must give the same bytes, call for call.
A chunked body, or one shorter than its Content-Length says, stays with gunicorn's reader.
"""

from __future__ import annotations

from typing import Any

import pytest
from gunicorn import http
from gunicorn.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.server.worker import body_stream

pytestmark = pytest.mark.unit

CONFIG = Config()
ADDRESS = ("127.0.0.1", 40000)

bodies = st.one_of(
    st.binary(max_size=3000),
    st.lists(st.sampled_from([b"\n", b"\r\n", b"a", b"line", b"\x00", b"x" * 700])).map(b"".join),
)
sizes = st.one_of(st.none(), st.integers(-2, 3000))
reads = st.lists(
    st.one_of(
        st.tuples(st.just("read"), sizes),
        st.tuples(st.just("readline"), sizes),
        st.tuples(st.just("next"), st.none()),
        st.tuples(st.just("readlines"), st.none()),
    ),
    max_size=12,
)


def parsed(body: bytes, length: int | None = None, chunked: bool = False) -> Any:
    """gunicorn's parse of a POST carrying `body` (its Content-Length `length`, if given)."""
    fields = [b"Host: x"]
    if chunked:
        fields.append(b"Transfer-Encoding: chunked")
        sent = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    else:
        fields.append(b"Content-Length: %d" % (len(body) if length is None else length))
        sent = body
    head = b"\r\n".join([b"POST /predict HTTP/1.1", *fields]) + b"\r\n\r\n"
    return next(http.get_parser(CONFIG, [head, *([sent] if sent else [])], ADDRESS))


def outcomes(stream: Any, calls: list[tuple[str, int | None]]) -> list[Any]:
    """What each call gives, then what is left, read whole."""
    results: list[Any] = []
    for name, size in calls:
        if name == "next":
            results.append(next(stream, None))
        elif name == "readlines":
            results.append(stream.readlines())
        else:
            method = getattr(stream, name)
            results.append(method() if size is None else method(size))
    results.append(stream.read())
    return results


@settings(max_examples=1500, deadline=None)
@given(bodies, reads)
def test_the_body_reads_as_through_gunicorns_reader(
    body: bytes, calls: list[tuple[str, int | None]]
) -> None:
    ours = body_stream(parsed(body), body)
    assert ours is not parsed(body).body  # the request's own bytes, not gunicorn's reader
    assert outcomes(ours, calls) == outcomes(parsed(body).body, calls)


def test_a_whole_read_gives_the_bytes_themselves() -> None:
    """No copy: the very bytes object the worker framed."""
    body = b'{"instances": [[1, 2, 3, 4]]}' * 1000
    assert body_stream(parsed(body), body).read() is body


@pytest.mark.parametrize(
    ("request_", "body"),
    [
        (parsed(b"12345", chunked=True), b"5\r\n12345\r\n0\r\n\r\n"),  # decoded by gunicorn
        (parsed(b"1234", length=5), b"1234"),  # shorter than said: gunicorn's refusal
    ],
    ids=["chunked", "short"],
)
def test_other_framings_stay_with_gunicorns_reader(request_: Any, body: bytes) -> None:
    assert body_stream(request_, body) is request_.body
