"""A raw-socket HTTP/1.1 client for tests and faults that must put exact bytes on the wire.

http.client normalises what it sends (it refuses bad header names, adds Host and
Content-Length, encodes the path); hostile-input tests need the server to see the bytes
unchanged. This client writes what it is given and reads one full response back.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

CRLF = b"\r\n"


class NoResponse(AssertionError):
    """The server closed the connection, or said nothing within the timeout."""


@dataclass
class RawResponse:
    """One parsed response: status, headers in order, the decoded body, whether it closed."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes

    def header(self, name: str) -> str | None:
        """The first header of that name, case-insensitively."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def content_type(self) -> str:
        return (self.header("Content-Type") or "").split(";")[0].strip().lower()

    def json(self) -> Any:
        return json.loads(self.body)

    def __str__(self) -> str:
        return f"{self.status} {self.reason} {self.headers} {self.body[:300]!r}"


def request_bytes(
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Iterable[tuple[str, str]] = (),
    *,
    content_type: str | None = "application/json",
    length: bool = True,
    version: str = "HTTP/1.1",
    close: bool = True,
) -> bytes:
    """A well-formed request with Host and Connection: close, plus the given headers.

    `length=False` leaves Content-Length out (for chunked bodies the caller frames itself);
    `close=False` leaves Connection: close out (the connection is kept alive).
    """
    lines = [f"{method} {path} {version}".encode("latin-1"), b"Host: 127.0.0.1"]
    if body is not None and content_type is not None:
        lines.append(f"Content-Type: {content_type}".encode("latin-1"))
    if body is not None and length:
        lines.append(f"Content-Length: {len(body)}".encode())
    lines.extend(f"{k}: {v}".encode("latin-1") for k, v in headers)
    if close:
        lines.append(b"Connection: close")
    return CRLF.join(lines) + CRLF + CRLF + (body or b"")


def chunked(body: bytes, size: int = 1024) -> bytes:
    """`body` in Transfer-Encoding: chunked framing, with the final zero-size chunk."""
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def exchange(
    port: int,
    data: bytes | Iterable[bytes],
    *,
    timeout: float = 15.0,
    pause: float = 0.0,
    head: bool = False,
    half_close: bool = False,
) -> RawResponse:
    """Send `data` (one buffer, or pieces with `pause` seconds between them), read one response.

    A server may answer and close before the whole request is sent (a 413 does): the send
    error is ignored and the answer read. `half_close` shuts our sending side once all is
    sent, as a client that gives up mid-body does. Raises NoResponse if no answer arrives
    within `timeout`.
    """
    pieces = [data] if isinstance(data, bytes) else list(data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            for i, piece in enumerate(pieces):
                if i and pause:
                    time.sleep(pause)
                sock.sendall(piece)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # EPIPE or ECONNRESET: the server stopped reading; its answer may wait
            pass
        return read_response(sock, timeout=timeout, head=head)


def read_response(sock: socket.socket, *, timeout: float = 15.0, head: bool = False) -> RawResponse:
    """Read one final (non-1xx) response from `sock`, within `timeout` seconds overall."""
    return _read_one(_Reader(sock, time.monotonic() + timeout), head)


def read_responses(
    sock: socket.socket, heads: Sequence[bool], *, timeout: float = 15.0
) -> list[RawResponse]:
    """Read final responses until the server closes, within `timeout` seconds overall; the
    n-th answers a HEAD request (no body) where heads[n] says so."""
    reader = _Reader(sock, time.monotonic() + timeout)
    responses: list[RawResponse] = []
    while True:
        while not reader.buffer and not reader.eof:
            reader._fill()
        if not reader.buffer:
            return responses
        head = len(responses) < len(heads) and heads[len(responses)]
        responses.append(_read_one(reader, head))


def _read_one(reader: _Reader, head: bool) -> RawResponse:
    while True:
        raw_head = reader.until(b"\r\n\r\n")
        status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise NoResponse(f"not an HTTP status line: {status_line!r}")
        status = int(parts[1])
        if 100 <= status < 200:
            continue
        headers = [
            (name.strip(), value.strip())
            for name, _, value in (line.partition(":") for line in header_lines if line)
        ]
        response = RawResponse(status, parts[2] if len(parts) > 2 else "", headers, b"", raw_head)
        break
    if head or status in (204, 304):
        return response
    encoding = (response.header("Transfer-Encoding") or "").lower()
    length = response.header("Content-Length")
    if "chunked" in encoding:
        response.body = _read_chunked(reader)
    elif length is not None:
        response.body = reader.exactly(int(length))
    else:
        response.body = reader.rest()
    return response


def _read_chunked(reader: _Reader) -> bytes:
    body = bytearray()
    while True:
        size = int(reader.until(b"\r\n").split(b";")[0].strip(), 16)
        if size == 0:
            while reader.until(b"\r\n"):  # trailers, up to the empty line
                pass
            return bytes(body)
        body += reader.exactly(size)
        reader.exactly(2)


class _Reader:
    """Buffered reads from a socket against an overall deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = bytearray()
        self.eof = False

    def _fill(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise NoResponse(f"timed out; received so far {bytes(self.buffer[:200])!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise NoResponse(f"timed out; received so far {bytes(self.buffer[:200])!r}") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
        self.buffer += chunk

    def until(self, marker: bytes) -> bytes:
        while (end := self.buffer.find(marker)) < 0:
            if self.eof:
                raise NoResponse(f"connection closed; received {bytes(self.buffer[:200])!r}")
            self._fill()
        data = bytes(self.buffer[:end])
        del self.buffer[: end + len(marker)]
        return data

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if self.eof:
                raise NoResponse(f"closed after {len(self.buffer)} of {size} body bytes")
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def rest(self) -> bytes:
        while not self.eof:
            self._fill()
        data = bytes(self.buffer)
        self.buffer.clear()
        return data
