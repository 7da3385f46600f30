"""A WSGI app that answers with the request body as it read it, `?read=` saying how (all at
once, in pieces of a given size, line by line, by iteration). tests/service/test_worker.py
serves it on the project's worker, to hold the body the app reads to the body sent."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs


def _read(stream: Any, how: str) -> bytes:
    kind, _, size = how.partition(":")
    if kind == "all":
        data = stream.read()
    elif kind == "sized":  # read(n) until an empty read
        data = b"".join(iter(lambda: stream.read(int(size)), b""))
    elif kind == "lines":  # readline(n) until an empty line
        data = b"".join(iter(lambda: stream.readline(int(size) if size else -1), b""))
    elif kind == "iterated":
        data = b"".join(stream)
    else:
        raise ValueError(how)
    if stream.read() != b"" or stream.read(1) != b"":
        raise AssertionError("read past the body's end")
    return data


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    how = parse_qs(environ.get("QUERY_STRING", "")).get("read", ["all"])[0]
    body = _read(environ["wsgi.input"], how)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]
