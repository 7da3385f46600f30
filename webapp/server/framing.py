"""HTTP/1.1 request framing (RFC 9112): where a request's head ends, how its body is framed,
where the whole request ends, or why it is refused. No sockets: webapp/server/worker.py feeds it the
bytes a connection has sent so far.

Bounded by design: every size is checked against a limit before it is converted, every search
resumes where the last one stopped (a client trickling a byte at a time costs linear time), and
anything malformed raises Refused with the status to answer. tests/unit/server/test_framing.py
proves the decisions equal those of h11, an independent HTTP/1.1 implementation, on generated and
mutated requests. Where this module is stricter, the test names the rule: obsolete line folding, a
request with both Content-Length and Transfer-Encoding (a request smuggling vector), an HTTP version
other than 1.0 and 1.1, and the size limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") [\x21-\x7e]+ HTTP/([0-9])\.([0-9])")
# A field value: runs of visible bytes (and obs-text) separated by spaces or tabs, as h11 reads
# RFC 9110's field-value; whitespace around it is not part of it.
_FIELD_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*((?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?)[ \t]*")
_BLANK_LINE = re.compile(rb"\n\r?\n")  # the end of a head: lines end in CRLF, or LF alone
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;[^\n]*)?[ \t]*")  # a size, extensions ignored
_DIGITS = re.compile(rb"[0-9]{1,20}")
_CRLF = b"\r\n"

CHUNKED = -1  # Head.length of a chunked body


class Refused(Exception):
    """A request this connection cannot go on from: answer `status`, then close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Limits:
    """The most a request may hold."""

    head: int  # bytes of the request line and fields, the blank line included
    body: int  # bytes of the body, after any chunked encoding is removed
    chunk_line: int = 1024  # bytes of one chunk-size line, extensions included


@dataclass(frozen=True, slots=True)
class Head:
    """What the request line and fields say about framing and the connection."""

    size: int  # where the body starts
    length: int  # the body's length, or CHUNKED
    keep_alive: bool  # HTTP/1.1 and no "Connection: close"
    expect_continue: bool  # the client waits for "100 Continue" before sending its body


class Framer:
    """The requests of one connection, framed one after another as their bytes arrive."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.reset()

    def reset(self) -> None:
        """Forget the request just framed: the next one starts at the buffer's start."""
        self.head: Head | None = None
        self._searched = 0  # bytes already searched for the end of the head or trailers
        self._chunk_at = 0  # where the next chunk-size line starts
        self._body = 0  # body bytes the chunks announced so far
        self._trailers = False  # the last chunk is in: trailer fields follow

    @property
    def body_size(self) -> int:
        """The body's length (without chunked encoding), once end() has found the end."""
        assert self.head is not None
        return self._body if self.head.length == CHUNKED else self.head.length

    def end(self, data: bytes | bytearray) -> int | None:
        """Where the request at the start of `data` ends once all of it is there, else None.

        Raises Refused as soon as the bytes so far cannot begin a valid request.
        """
        if self.head is None:
            self.head = self._read_head(data)
            if self.head is None:
                return None
            self._chunk_at = self._searched = self.head.size
        if self.head.length != CHUNKED:
            end = self.head.size + self.head.length
            return end if len(data) >= end else None
        return self._chunks_end(data)

    def _read_head(self, data: bytes | bytearray) -> Head | None:
        if data[:1] and data[0] < 0x21:  # no request line starts so (TLS, a blank line)
            raise Refused(400, "The request line is malformed.")
        found = _BLANK_LINE.search(data, max(0, self._searched - 2))
        if found is None:
            self._searched = len(data)
            if len(data) > self.limits.head:
                raise Refused(431, "The request's header fields are too large.")
            return None
        size = found.end()
        if size > self.limits.head:
            raise Refused(431, "The request's header fields are too large.")
        lines = bytes(data[: found.start()]).split(b"\n")
        line = _REQUEST_LINE.fullmatch(_strip_cr(lines[0]))
        if line is None:
            raise Refused(400, "The request line is malformed.")
        version = (line[2], line[3])
        if version not in ((b"1", b"1"), (b"1", b"0")):
            raise Refused(400, "Only HTTP/1.1 and HTTP/1.0 are served.")
        fields = _fields(lines[1:])
        hosts = fields.get(b"host", ())
        if len(hosts) > 1 or (version == (b"1", b"1") and not hosts):
            raise Refused(400, "An HTTP/1.1 request must have exactly one Host field.")
        length = _body_length(fields, self.limits.body)
        http11 = version == (b"1", b"1")
        return Head(
            size=size,
            length=length,
            keep_alive=http11 and b"close" not in _tokens(fields, b"connection"),
            expect_continue=http11 and _tokens(fields, b"expect") == [b"100-continue"],
        )

    def _chunks_end(self, data: bytes | bytearray) -> int | None:
        """Where the chunked body and its trailer fields end, reading on from the last call."""
        while not self._trailers:
            at = self._chunk_at
            line_end = data.find(_CRLF, at, at + self.limits.chunk_line + 2)
            if line_end < 0:
                if len(data) - at > self.limits.chunk_line:
                    raise Refused(400, "A chunk-size line is malformed.")
                return None
            size = _CHUNK_LINE.fullmatch(data, at, line_end)
            if size is None:
                raise Refused(400, "A chunk-size line is malformed.")
            length = int(size[1], 16)  # at most 20 hex digits: a bounded conversion
            self._chunk_at = line_end + 2
            if length == 0:
                self._trailers = True
                self._searched = self._chunk_at
                break
            self._body += length
            if self._body > self.limits.body:
                raise Refused(413, "Request body too large.")
            data_end = self._chunk_at + length
            if len(data) < data_end + 2:
                self._chunk_at = at  # read this chunk's line again once the chunk is in
                self._body -= length
                return None
            if data[data_end : data_end + 2] != _CRLF:
                raise Refused(400, "A chunk does not end where its size says.")
            self._chunk_at = data_end + 2
        return self._trailers_end(data)

    def _trailers_end(self, data: bytes | bytearray) -> int | None:
        at = self._chunk_at
        if data[at : at + 1] == b"\n":
            return at + 1
        if data[at : at + 2] == _CRLF:
            return at + 2
        found = _BLANK_LINE.search(data, max(at, self._searched - 2))
        if found is None:
            self._searched = len(data)
            if len(data) - at > self.limits.head:
                raise Refused(431, "The request's trailer fields are too large.")
            return None
        if found.end() - at > self.limits.head:
            raise Refused(431, "The request's trailer fields are too large.")
        _fields(bytes(data[at : found.start()]).split(b"\n"))  # checked, then left to gunicorn
        return found.end()


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


def _fields(lines: list[bytes]) -> dict[bytes, list[bytes]]:
    """Field lines as lists of values by lower-case name; a malformed line is refused.

    A line starting with a space or tab would continue the one before (obsolete line folding):
    refused, as RFC 9112 section 5.2 allows, so that no two readers can disagree on a field.
    """
    fields: dict[bytes, list[bytes]] = {}
    for raw in lines:
        field = _FIELD_LINE.fullmatch(_strip_cr(raw))
        if field is None:
            raise Refused(400, "A header field is malformed.")
        fields.setdefault(field[1].lower(), []).append(field[2])
    return fields


def _tokens(fields: dict[bytes, list[bytes]], name: bytes) -> list[bytes]:
    """A list-valued field's members, lower-case, from every line that gives it."""
    return [
        member.strip()
        for value in fields.get(name, ())
        for member in value.lower().split(b",")
        if member.strip()
    ]


def _body_length(fields: dict[bytes, list[bytes]], limit: int) -> int:
    """The body's length from Content-Length, or CHUNKED; refused when ambiguous or too large."""
    codings = fields.get(b"transfer-encoding", [])
    lengths = {member.strip() for value in fields.get(b"content-length", ()) for member in
               value.split(b",")}  # fmt: skip
    if codings:
        if lengths:
            raise Refused(400, "A request cannot have both Content-Length and Transfer-Encoding.")
        if len(codings) > 1 or codings[0].lower() != b"chunked":
            raise Refused(501, "Transfer-Encoding other than chunked is not supported.")
        return CHUNKED
    if not lengths:
        return 0
    if len(lengths) > 1:
        raise Refused(400, "Content-Length is given more than once, differently.")
    (digits,) = lengths
    if _DIGITS.fullmatch(digits) is None:  # at most 20 digits: a bounded conversion
        raise Refused(400, "Content-Length is not a length.")
    length = int(digits)
    if length > limit:
        raise Refused(413, "Request body too large.")
    return length
