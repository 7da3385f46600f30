"""HTTP bodies in: reading a request's JSON strictly, within the body limit.

Written for werkzeug's request as both targets hand it over (gunicorn's stream, the function's
stream), so the body limit and every framing refusal are the same everywhere.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Request
from werkzeug import wsgi
from werkzeug.http import parse_set_header

from ..protocol import jsonio
from ..protocol.errors import ApiError

log = logging.getLogger(__name__)

# gunicorn's body reader copies what it holds of the body on every read, so many small reads
# of a large body copy it many times over; this is gunicorn's own largest step.
_READ_CHUNK = 1024 * 1024
# A byte count in a header has at most this many digits (leading zeros aside): more than any
# body read here (MAX_CONTENT_LENGTH is at most 2**30), and few enough to convert in no time.
_COUNT_DIGITS = 12


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The whole body, refused (413) as soon as it is known to exceed `limit` bytes.

    With a Content-Length, exactly that many bytes must arrive; without one (chunked), reading
    stops one byte past the limit. Broken framing is the client's fault: a 400, never a 500.
    With a length, the server's own stream is read, never past it; without one, werkzeug's
    get_input_stream decides, as Request.stream would, whether the stream ends by itself.
    """
    expected = _content_length(environ)
    if expected is not None and expected > limit:
        raise ApiError(413, "Request body too large.")
    if expected is None:
        wanted, stream = limit + 1, wsgi.get_input_stream(environ)
    else:
        wanted, stream = expected, environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    try:
        while size < wanted:
            chunk = stream.read(min(_READ_CHUNK, wanted - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except Exception as exc:  # the server's chunked-encoding parser, a dropped connection
        log.info("unreadable request body: %s", type(exc).__name__)
        raise ApiError(400, "Request body could not be read.") from None
    if size > limit:
        raise ApiError(413, "Request body too large.")
    if expected is not None and size < expected:
        raise ApiError(400, "Request body is shorter than its Content-Length.")
    return b"".join(chunks)


def byte_count(value: str) -> int | None:
    """A header's count of bytes, or None if it is not one: ASCII digits only.

    Bounded: str.isdigit() takes "²", which int() refuses, and int() takes other scripts' digits
    and refuses 4,300 digits or more. A count of more than _COUNT_DIGITS digits is larger than
    any body, and is returned as 10**_COUNT_DIGITS, without converting it.
    """
    digits = value.strip()
    if not (digits.isascii() and digits.isdigit()):
        return None
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _COUNT_DIGITS else 10**_COUNT_DIGITS


def _content_length(environ: dict[str, Any]) -> int | None:
    """The body's length as its Content-Length says, None when it has none (or is chunked).

    As werkzeug's get_content_length decides, but bounded (byte_count), and a value that is
    no count is a 400: werkzeug would call it 0, and leave the body to be read as the next
    request by a server that keeps the connection.
    """
    length = environ.get("CONTENT_LENGTH")
    coding = environ.get("HTTP_TRANSFER_ENCODING")
    if length is None or (coding is not None and "chunked" in parse_set_header(coding)):
        return None
    expected = byte_count(length) if length.strip() else 0
    if expected is None:
        raise ApiError(400, "Content-Length must be the body's length in bytes.")
    return expected


def parse_json(req: Request, limit: int, untyped: bool = False) -> Any:
    """The request's JSON document: 415 for another content type, 413 too big, 400 malformed.

    `untyped`: a body without a Content-Type is JSON too (V2 clients such as tritonclient's
    send none).
    """
    return load_json(request_body(req, limit, untyped))


def parse_infer(req: Request, limit: int) -> tuple[Any, memoryview]:
    """A V2 infer request's JSON document, and the binary tensor data after it: the binary
    tensor extension, when the Inference-Header-Content-Length header says where the JSON ends.
    The tensor data is a view of the body, not a copy of it."""
    header = req.environ.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH")
    if header is None:
        return parse_json(req, limit, untyped=True), memoryview(b"")
    data = request_body(req, limit, untyped=True, binary=True)
    size = byte_count(header)
    if size is None or not 0 < size <= len(data):
        raise ApiError(400, "Inference-Header-Content-Length must be the JSON's length in bytes.")
    return load_json(data[:size]), memoryview(data)[size:]


def json_size(environ: dict[str, Any]) -> int:
    """How many of the request body's bytes are JSON, as its headers say: all of them, or in
    the binary tensor extension as many as Inference-Header-Content-Length says (the rest are
    tensor bytes, which make no Python objects)."""
    body = wsgi.get_content_length(environ) or 0
    header = environ.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH")
    size = None if header is None else byte_count(header)
    return body if size is None else min(size, body)


def request_body(req: Request, limit: int, untyped: bool = False, binary: bool = False) -> bytes:
    """The body of a JSON request, read after its headers' checks (parse_json).

    `binary`: the body may also be application/octet-stream (JSON, then binary tensor data).
    """
    environ = req.environ  # read directly: werkzeug's header views cost more than the checks
    content_type = environ.get("CONTENT_TYPE")
    if content_type != "application/json" and not (untyped and not content_type):
        # else parse it: parameters, case
        charset = req.mimetype_params.get("charset", "utf-8").lower()
        octets = binary and req.mimetype == "application/octet-stream"
        if not (req.is_json or octets) or charset not in ("utf-8", "utf8"):
            raise ApiError(415, "Content-Type must be application/json (UTF-8).")
    encoding = environ.get("HTTP_CONTENT_ENCODING")
    if encoding is not None and encoding.strip().lower() != "identity":
        raise ApiError(415, "Content-Encoding is not supported: send the JSON uncompressed.")
    codings = environ.get("HTTP_TRANSFER_ENCODING")
    if codings is not None and codings.lower().replace(" ", "") not in ("chunked", ""):
        raise ApiError(400, "Transfer-Encoding other than chunked is not supported.")
    return read_body(environ, limit)


def load_json(data: bytes) -> Any:
    """A body's JSON document: 400, saying why, if it is empty or not strict JSON."""
    if not data or data.isspace():
        raise ApiError(400, "Request body is empty.")
    try:
        return jsonio.loads(data)
    except jsonio.JSONDecodeError as exc:
        raise ApiError(400, str(exc)) from None
