"""Hostile requests, written byte for byte onto a socket, against real gunicorn and the function.

Invariants for every case: never a 5xx, always the JSON error shape, never a prediction for
invalid input. The one exception to the shape: a request the function's own server
(functions-framework's gunicorn) refuses before the function sees it (a malformed request line,
header or framing) gets that server's small HTML page; such cases say so with `by=GUNICORN`,
and must still be 4xx. The service's worker answers every refusal in JSON. The one 5xx allowed
is 501 for a transfer coding not understood, which RFC 9112 section 6.1 asks for.
"""

from __future__ import annotations

import gzip
import json
import re
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from testkit.processes import Server
from testkit.rawhttp import CRLF, NoResponse, RawResponse, chunked, exchange, request_bytes
from testkit.samples import FEATURES, ROWS, SETOSA

APP = "app"  # the service answers, in its JSON error shape
GUNICORN = "gunicorn"  # the function's server may refuse the request itself, with its HTML page
EITHER = "either"  # the server in one target, the app in the other (their limits differ)
TARGETS = ["gunicorn", "functions-framework"]
MiB = 1024 * 1024
SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # what a response may carry as X-Request-ID


@dataclass(frozen=True)
class Case:
    """The bytes to send and what may come back."""

    data: bytes
    status: tuple[int, ...]
    by: str = APP
    half_close: bool = False  # the client stops sending (mid-body, or before a request)
    head: bool = False
    no_answer_ok: bool = False  # nothing that gunicorn can read as a request: it may just close

    @property
    def v2(self) -> bool:
        """Whether it asks for a /v2 path, whose errors are the Open Inference Protocol's."""
        target = self.data.split(b"\r\n", 1)[0].split(b" ")[1:2]
        path = unquote(urlsplit(target[0].decode("latin-1")).path) if target else ""
        return path == "/v2" or path.startswith("/v2/")


def doc(document: Any) -> bytes:
    return json.dumps(document).encode()


def with_(**changes: Any) -> dict[str, Any]:
    return {**SETOSA, **changes}


def post(
    body: bytes,
    path: str = "/predict",
    headers: Iterable[tuple[str, str]] = (),
    content_type: str | None = "application/json",
    **kwargs: Any,
) -> bytes:
    return request_bytes("POST", path, body, headers, content_type=content_type, **kwargs)


def raw(*lines: bytes, body: bytes = b"") -> bytes:
    """A request from literal lines, for framing no well-behaved client would produce."""
    return CRLF.join(lines) + CRLF + CRLF + body


def framed(headers: bytes, body: bytes) -> bytes:
    """POST /predict with JSON type and the given framing headers (CRLF-separated)."""
    return raw(
        b"POST /predict HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Content-Type: application/json",
        headers,
        b"Connection: close",
        body=body,
    )


def case(case_id: str, data: bytes, *status: int, **kwargs: Any) -> Any:
    return pytest.param(Case(data, status, **kwargs), id=case_id)


def raw_field(name: str, literal: bytes) -> bytes:
    """A single-instance body whose `name` is the literal JSON text given."""
    parts = [f'"{f}":{json.dumps(SETOSA[f])}'.encode() for f in FEATURES if f != name]
    return b"{" + b",".join([f'"{name}":'.encode() + literal, *parts]) + b"}"


BODY = doc(SETOSA)
MODEL = "iris-logistic-regression"
TEN_THOUSAND = [ROWS[i % 3] for i in range(10_000)]

WRONG_TYPES = [
    case(f"type-{name}-{kind}", post(doc(with_(**{name: value}))), 422)
    for name in FEATURES
    for kind, value in [
        ("numeric-string", "5.1"),
        ("boolean", True),
        ("null", None),
        ("array", [5.1]),
        ("object", {"value": 5.1}),
        ("empty-string", ""),
    ]
]

NUMBERS = [
    case("nan-literal", post(raw_field("sepal_length", b"NaN")), 400),
    case("infinity-literal", post(raw_field("sepal_width", b"Infinity")), 400),
    case("minus-infinity-literal", post(raw_field("petal_width", b"-Infinity")), 400),
    case("nan-in-batch-row", post(b'{"instances":[[5.1,3.5,NaN,0.2]]}'), 400),
    case("nan-string", post(doc(with_(sepal_length="NaN"))), 422),
    case("infinity-string", post(doc(with_(sepal_length="Infinity"))), 422),
    case("overflow-1e400", post(raw_field("sepal_length", b"1e400")), 422),
    case("overflow-minus-1e400", post(raw_field("sepal_length", b"-1e400")), 422),
    case("underflow-1e-400-is-zero", post(raw_field("petal_width", b"1e-400")), 422),
    case("huge-integer", post(raw_field("sepal_length", b"1" + b"0" * 400)), 422),
    # Python refuses to parse integers of 4,300+ digits: either refusal is fine, never a 5xx.
    case("integer-of-5000-digits", post(raw_field("sepal_length", b"7" * 5000)), 400, 422),
    case("zero", post(doc(with_(petal_width=0))), 422),
    case("negative-zero", post(raw_field("petal_width", b"-0.0")), 422),
    case("negative", post(doc(with_(petal_width=-0.2))), 422),
    case("just-above-max", post(raw_field("sepal_length", b"100.00000000000001")), 422),
    case("above-max-integer", post(doc(with_(sepal_length=101))), 422),
    case("leading-zero", post(raw_field("sepal_length", b"05.1")), 400),
    case("plus-sign", post(raw_field("sepal_length", b"+5.1")), 400),
    case("bare-fraction", post(raw_field("sepal_length", b".5")), 400),
    case("trailing-dot", post(raw_field("sepal_length", b"5.")), 400),
    case("hex-number", post(raw_field("sepal_length", b"0x5")), 400),
    case("underscore-number", post(raw_field("sepal_length", b"1_0")), 400),
    case("decimal-comma", post(raw_field("sepal_length", b"5,1")), 400),
    # Valid extremes: the policy accepts them, so a prediction is the right answer.
    case("max-exactly", post(doc(with_(sepal_length=100))), 200),
    case("max-as-exponent", post(raw_field("sepal_length", b"1E2")), 200),
    case("smallest-subnormal", post(raw_field("petal_width", b"5e-324")), 200),
    case("long-mantissa", post(raw_field("sepal_length", b"5." + b"0" * 5000 + b"1")), 200),
]

SHAPES = [
    *[
        case(f"missing-{name}", post(doc({k: v for k, v in SETOSA.items() if k != name})), 422)
        for name in FEATURES
    ],
    case("empty-object", post(b"{}"), 422),
    case("unknown-field", post(doc(with_(colour="blue"))), 422),
    case("unknown-field-named-prediction", post(doc(with_(prediction=0))), 422),
    case("key-case-differs", post(doc({"Sepal_Length": 5.1, **with_()})), 422),
    case("key-with-space", post(doc({" sepal_length": 5.1, **with_()})), 422),
    case(
        "escaped-key-is-the-same-key",
        post(BODY.replace(b"sepal_length", b"sepal\\u005flength")),
        200,
    ),
    case("lone-surrogate-key", post(doc({**SETOSA, "\ud800": 1})), 422),
    case("nul-key", post(doc({**SETOSA, "\x00": 1})), 422),
    case("lone-surrogate-value", post(raw_field("sepal_length", b'"\\ud800"')), 422),
    case("top-level-array", post(doc([SETOSA])), 422),
    case("top-level-empty-array", post(b"[]"), 422),
    case("top-level-string", post(b'"sepal_length"'), 422),
    case("top-level-number", post(b"5.1"), 422),
    case("top-level-true", post(b"true"), 422),
    case("top-level-null", post(b"null"), 422),
    case("batch-empty", post(doc({"instances": []})), 422),
    case("batch-10001", post(doc({"instances": [ROWS[0]] * 10_001})), 422),
    case("batch-500k-numbers", post(doc({"instances": [1] * 500_000})), 422),
    case(
        "batch-last-of-10000-invalid",
        post(doc({"instances": TEN_THOUSAND[:-1] + [[0, 1, 2, 3]]})),
        422,
    ),
    case("batch-10000-empty-objects", post(doc({"instances": [{}] * 10_000})), 422),
    case("batch-null", post(doc({"instances": None})), 422),
    case("batch-object", post(doc({"instances": SETOSA})), 422),
    case("batch-string", post(doc({"instances": "[[5.1,3.5,1.4,0.2]]"})), 422),
    case("batch-number", post(doc({"instances": 1})), 422),
    case("batch-null-row", post(doc({"instances": [None]})), 422),
    case("batch-empty-row", post(doc({"instances": [[]]})), 422),
    case("batch-row-of-3", post(doc({"instances": [ROWS[0][:3]]})), 422),
    case("batch-row-of-5", post(doc({"instances": [ROWS[0] + [1.0]]})), 422),
    case("batch-nested-rows", post(doc({"instances": [[ROWS[0]]]})), 422),
    case("batch-boolean-in-row", post(doc({"instances": [[True, 3.5, 1.4, 0.2]]})), 422),
    case("batch-string-in-row", post(doc({"instances": [["5.1", 3.5, 1.4, 0.2]]})), 422),
    case("batch-overflow-in-row", post(b'{"instances":[[1e400,3.5,1.4,0.2]]}'), 422),
    case("batch-zero-in-row", post(doc({"instances": [[5.1, 3.5, 1.4, 0]]})), 422),
    case("batch-one-bad-among-good", post(doc({"instances": [*ROWS, [5.1, None, 1.4, 0.2]]})), 422),
    case("batch-row-object-extra-field", post(doc({"instances": [with_(x=1)]})), 422),
    case("batch-plus-extra-key", post(doc({"instances": ROWS, "signature_name": "x"})), 422),
    case(
        "batch-plus-unknown-parameter", post(doc({"instances": ROWS, "parameters": {"k": 1}})), 422
    ),
    case("batch-plus-features", post(doc({"instances": ROWS, **SETOSA})), 422),
    case("batch-in-batch", post(doc({"instances": [{"instances": ROWS}]})), 422),
]

MALFORMED = [
    case("empty-body", post(b""), 400),
    case("whitespace-body", post(b" \r\n\t "), 400),
    case("truncated-json", post(BODY[:-5]), 400),
    case("trailing-garbage", post(BODY + b"x"), 400),
    case("two-documents", post(BODY + BODY), 400),
    case("single-quotes", post(BODY.replace(b'"', b"'")), 400),
    case("comment", post(b"/* hi */" + BODY), 400),
    case("trailing-comma", post(BODY[:-1] + b",}"), 400),
    case("unquoted-keys", post(b"{sepal_length:5.1}"), 400),
    case("utf8-bom", post(b"\xef\xbb\xbf" + BODY), 400),
    case("utf16-body", post(BODY.decode().encode("utf-16")), 400),
    case("nul-byte", post(BODY[:-1] + b"\x00}"), 400),
    case("invalid-utf8-ff", post(raw_field("sepal_length", b'"\xff"')), 400),
    case("invalid-utf8-overlong", post(raw_field("sepal_length", b'"\xc0\xaf"')), 400),
    case("invalid-utf8-surrogate", post(raw_field("sepal_length", b'"\xed\xa0\x80"')), 400),
    case("invalid-utf8-truncated", post(b'{"sepal_length":"\xe2\x82'), 400),
    case("invalid-utf8-continuation", post(b'{"\x80":1}'), 400),
    case("latin1-key", post(doc(SETOSA)[:-1] + b',"caf\xe9":1}'), 400),
    case("deep-arrays-open", post(b"[" * 100_000), 400),
    case("deep-objects-open", post(b'{"a":' * 100_000), 400),
    case("deep-arrays-closed", post(b"[" * 50_000 + b"]" * 50_000), 400),
    case("deep-in-a-field", post(raw_field("sepal_length", b"[" * 5000 + b"]" * 5000)), 400),
    case("nested-500-in-a-field", post(raw_field("sepal_length", b"[" * 500 + b"]" * 500)), 422),
    case("duplicate-feature", post(BODY[:-1] + b',"sepal_length":5.1}'), 400),
    case("duplicate-differing", post(BODY[:-1] + b',"petal_width":99}'), 400),
    case("duplicate-by-escape", post(BODY[:-1] + b',"sepal\\u005flength":5.1}'), 400),
    case("duplicate-instances", post(b'{"instances":[[5.1,3.5,1.4,0.2]],"instances":[]}'), 400),
    case(
        "duplicate-in-batch-row", post(b'{"instances":[' + BODY[:-1] + b',"petal_width":1}]}'), 400
    ),
]

_S = len(BODY)
FRAMING = [
    case("chunked", framed(b"Transfer-Encoding: chunked", chunked(BODY, 7)), 200),
    case(
        "chunked-extension",
        framed(b"Transfer-Encoding: chunked", b"%x;name=value\r\n%s\r\n0\r\n\r\n" % (_S, BODY)),
        200,
    ),
    case(
        "chunked-trailer",
        framed(b"Transfer-Encoding: chunked", chunked(BODY)[:-2] + b"X-Trailer: 1\r\n\r\n"),
        200,
    ),
    case(
        "chunked-oversized",
        framed(b"Transfer-Encoding: chunked", chunked(b" " * (2 * MiB + 10), 64 * 1024)),
        413,
    ),
    case(
        "chunk-size-not-hex",
        framed(b"Transfer-Encoding: chunked", b"zz\r\n" + BODY + b"\r\n0\r\n\r\n"),
        400,
    ),
    case(
        "chunk-size-negative", framed(b"Transfer-Encoding: chunked", b"-5\r\nabc\r\n0\r\n\r\n"), 400
    ),
    case(
        "chunk-missing-crlf",
        framed(b"Transfer-Encoding: chunked", b"%x\r\n%sXX0\r\n\r\n" % (_S, BODY)),
        400,
    ),
    case(
        "chunk-trailer-forbidden",
        framed(b"Transfer-Encoding: chunked", chunked(BODY)[:-2] + b"Content-Length: 5\r\n\r\n"),
        400,
    ),
    case(
        "chunked-truncated-then-eof",
        framed(b"Transfer-Encoding: chunked", b"100\r\n" + BODY),
        400,
        half_close=True,
    ),
    case(
        "chunk-size-huge-then-eof",
        framed(b"Transfer-Encoding: chunked", b"ffffffffffffffffffff\r\n" + BODY),
        400,
        413,
        half_close=True,
    ),
    case(
        "content-length-short-then-eof",
        framed(b"Content-Length: %d" % (_S + 100), BODY),
        400,
        half_close=True,
    ),
    case("content-length-smaller-than-body", framed(b"Content-Length: 10", BODY), 400),
    case("no-length-then-eof", framed(b"X-Nothing: 1", BODY), 400, half_close=True),
    case("oversized-3MiB", post(b" " * (3 * MiB)), 413),
    case("oversized-announced-not-sent", framed(b"Content-Length: 99999999999", b""), 413),
    case("oversized-by-one", post(b" " * (2 * MiB - _S + 1) + BODY), 413),
    case("two-MiB-exactly-is-fine", post(b" " * (2 * MiB - _S) + BODY), 200),
    # gunicorn owns HTTP framing: ambiguous or broken framing never reaches the app.
    case(
        "chunked-and-content-length",
        post(chunked(BODY), headers=[("Transfer-Encoding", "chunked")]),
        400,
        by=GUNICORN,
    ),
    case(
        "chunked-twice",
        framed(b"Transfer-Encoding: chunked, chunked", chunked(BODY)),
        400,
        501,
        by=GUNICORN,
    ),
    case(
        "chunked-in-http-1.0",
        post(
            chunked(BODY),
            headers=[("Transfer-Encoding", "chunked")],
            length=False,
            version="HTTP/1.0",
        ),
        400,
        by=GUNICORN,
    ),
    case(
        "transfer-encoding-identity",
        framed(b"Transfer-Encoding: identity\r\nContent-Length: %d" % _S, BODY),
        400,
        by=GUNICORN,
    ),
    case(
        "transfer-encoding-unknown",
        framed(b"Transfer-Encoding: xchunked", chunked(BODY)),
        400,
        501,
        by=GUNICORN,
    ),
    case(
        "transfer-encoding-br",
        framed(b"Transfer-Encoding: br, chunked", chunked(BODY)),
        400,
        501,
        by=GUNICORN,
    ),
    case(
        "content-length-twice",
        framed(b"Content-Length: %d\r\nContent-Length: %d" % (_S, _S), BODY),
        400,
        by=GUNICORN,
    ),
    case("content-length-negative", framed(b"Content-Length: -1", BODY), 400, by=GUNICORN),
    case("content-length-plus", framed(b"Content-Length: +%d" % _S, BODY), 400, by=GUNICORN),
    case("content-length-hex", framed(b"Content-Length: 0x10", BODY), 400, by=GUNICORN),
    # Python's int() refuses 4,300+ digits: once, inside the framing loop, that killed a worker.
    case(
        "content-length-5000-digits",
        framed(b"Content-Length: " + b"9" * 5000, b"{}"),
        400,
        413,
        by=GUNICORN,
    ),
    case(
        "content-length-zero-padded-5000-digits",
        framed(b"Content-Length: " + b"0" * 4998 + b"%d" % _S, BODY),
        400,
        by=GUNICORN,
    ),
    case(
        "content-length-list", framed(b"Content-Length: %d, %d" % (_S, _S), BODY), 400, by=GUNICORN
    ),
]

# The service does not inflate bodies: a content coding is refused, never decoded or ignored.
COMPRESSED = [
    case("gzip-body", post(gzip.compress(BODY), headers=[("Content-Encoding", "gzip")]), 400, 415),
    case(
        "deflate-body",
        post(zlib.compress(BODY), headers=[("Content-Encoding", "deflate")]),
        400,
        415,
    ),
    case("gzip-label-on-plain-json", post(BODY, headers=[("Content-Encoding", "gzip")]), 400, 415),
    case("br-label-on-plain-json", post(BODY, headers=[("Content-Encoding", "br")]), 400, 415),
    case(
        "gzip-bomb-16MiB",
        post(gzip.compress(b" " * (16 * MiB)), headers=[("Content-Encoding", "gzip")]),
        400,
        415,
    ),
    case("content-encoding-identity", post(BODY, headers=[("Content-Encoding", "identity")]), 200),
    case(
        "gzip-transfer-coding",
        framed(b"Transfer-Encoding: gzip, chunked", chunked(gzip.compress(BODY))),
        400,
        415,
        501,
    ),
    case(
        "gzip-transfer-coding-on-plain-json",
        framed(b"Transfer-Encoding: gzip, chunked", chunked(BODY)),
        400,
        415,
        501,
    ),
]

CONTENT_TYPES = [
    case("no-content-type", post(BODY, content_type=None), 415),
    case("empty-content-type", post(BODY, content_type=""), 415),
    case("text-plain", post(BODY, content_type="text/plain"), 415),
    case("text-json", post(BODY, content_type="text/json"), 415),
    case(
        "form-urlencoded",
        post(b"sepal_length=5.1", content_type="application/x-www-form-urlencoded"),
        415,
    ),
    case("multipart", post(BODY, content_type="multipart/form-data; boundary=x"), 415),
    case("wildcard", post(BODY, content_type="*/*"), 415),
    case("json-prefix-trick", post(BODY, content_type="application/jsonx"), 415),
    case("two-types-in-one", post(BODY, content_type="text/plain, application/json"), 415),
    case("latin1-charset", post(BODY, content_type="application/json; charset=latin-1"), 415),
    case("utf16-charset", post(BODY, content_type="application/json; charset=utf-16"), 415),
    case("quoted-utf8-charset", post(BODY, content_type='application/json; charset="UTF-8"'), 200),
    case("upper-case-type", post(BODY, content_type="APPLICATION/JSON"), 200),
    case("plus-json-type", post(BODY, content_type="application/merge-patch+json"), 200),
    case(
        "content-type-twice", post(BODY, headers=[("Content-Type", "text/plain")]), 400, by=GUNICORN
    ),
]

METHODS = [
    *[
        case(f"{m.lower()}-predict", request_bytes(m, "/predict", BODY), 405)
        for m in ("GET", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "BREW", "PROPFIND")
    ],
    case("head-predict", request_bytes("HEAD", "/predict"), 405, head=True),
    case("post-health", post(BODY, "/health"), 405),
    case("post-metadata", post(BODY, "/metadata"), 405),
    case(
        "connect-authority",
        raw(b"CONNECT 127.0.0.1:22 HTTP/1.1", b"Host: 127.0.0.1:22"),
        400,
        404,
        405,
        by=EITHER,
    ),
    case("lower-case-method", request_bytes("post", "/predict", BODY), 400, by=GUNICORN),
    case("method-of-40-letters", request_bytes("P" * 40, "/predict", BODY), 400, 405, by=EITHER),
    # Method overrides are not honoured: the request line's method is the method.
    case(
        "override-get-to-post",
        request_bytes("GET", "/predict", BODY, [("X-HTTP-Method-Override", "POST")]),
        405,
    ),
    case("override-post-to-get", post(BODY, "/health", [("X-HTTP-Method-Override", "GET")]), 405),
    case(
        "override-header-variants",
        post(BODY, "/metadata", [("X-HTTP-Method", "GET"), ("X-Method-Override", "GET")]),
        405,
    ),
    case(
        "override-ignored-on-predict",
        post(BODY, headers=[("X-HTTP-Method-Override", "DELETE")]),
        200,
    ),
    case("override-query-param", post(BODY, "/predict?_method=PUT"), 422),
    case("override-query-on-get", request_bytes("GET", "/predict?_method=POST", BODY), 405),
]

PATHS = [
    case("trailing-slash", post(BODY, "/predict/"), 404),
    case("upper-case", post(BODY, "/PREDICT"), 404),
    case("dot-segments", post(BODY, "/x/../predict"), 404),
    case("encoded-dot-segments", request_bytes("GET", "/%2e%2e/%2e%2e/etc/passwd"), 404),
    case("encoded-slash", post(BODY, "/predict%2F"), 404),
    case("encoded-slash-first", request_bytes("GET", "/%2Fhealth"), 404),
    case("encoded-slash-v1", post(BODY, f"/v1/models/{MODEL}%2F:predict"), 404),
    case("encoded-slash-lower-case-v1", post(BODY, f"/v1/models%2f{MODEL}:predict"), 404),
    case("double-slash-v1", post(BODY, f"/v1/models//{MODEL}:predict"), 404),
    case("encoded-slash-in-query-is-no-path", post(BODY, "/predict?probabilities=%2F"), 422),
    case("encoded-nul", post(BODY, "/predict%00"), 404),
    case("matrix-parameter", post(BODY, "/predict;x=1"), 404),
    case("invalid-percent", post(BODY, "/pre%zzdict"), 404),
    case("backslash", request_bytes("GET", "/\\health"), 404),
    case("robots-txt", request_bytes("GET", "/robots.txt"), 404),
    case("favicon", request_bytes("GET", "/favicon.ico"), 404),
    case("dotenv", request_bytes("GET", "/.env"), 404),
    case("model-file", request_bytes("GET", "/model.pkl"), 404),
    case("asterisk", request_bytes("OPTIONS", "*"), 404),
    case("path-of-8KiB", request_bytes("GET", "/" + "a" * 8192), 404, 414, by=EITHER),
    case("query-probabilities-invalid", post(BODY, "/predict?probabilities=maybe"), 422),
    case("query-probabilities-empty", post(BODY, "/predict?probabilities="), 422),
    case("query-unknown", post(BODY, "/predict?debug=1"), 422),
    case("query-unknown-case", post(BODY, "/predict?PROBABILITIES=true"), 422),
    case("query-invalid-percent", post(BODY, "/predict?%ff=1"), 422),
    # A repeated parameter is as ambiguous as a repeated JSON key: refuse it, do not pick one.
    case("query-repeated", post(BODY, "/predict?probabilities=true&probabilities=false"), 422),
]

HEADERS = [
    case(
        "header-of-20KiB",
        request_bytes("GET", "/health", None, [("X-Long", "a" * 20_000)]),
        431,
        by=GUNICORN,
    ),
    case(
        "header-count-200",
        request_bytes("GET", "/health", None, [(f"X-H{i}", "1") for i in range(200)]),
        431,
        by=GUNICORN,
    ),
    case(
        "cookie-of-20KiB", post(BODY, headers=[("Cookie", "a=" + "b" * 20_000)]), 431, by=GUNICORN
    ),
    case(
        "nul-in-header",
        request_bytes("GET", "/health", None, [("X-A", "a\x00b")]),
        400,
        by=GUNICORN,
    ),
    case(
        "header-without-colon",
        raw(b"GET /health HTTP/1.1", b"Host: x", b"NoColon"),
        400,
        by=GUNICORN,
    ),
    case(
        "space-in-header-name",
        raw(b"GET /health HTTP/1.1", b"Host: x", b"Bad Name: 1"),
        400,
        by=GUNICORN,
    ),
    case(
        "space-before-colon", raw(b"GET /health HTTP/1.1", b"Host: x", b"X-A : 1"), 400, by=GUNICORN
    ),
    case(
        "obsolete-line-folding",
        raw(b"GET /health HTTP/1.1", b"Host: x", b"X-A: 1", b"  folded"),
        400,
        by=GUNICORN,
    ),
    case("host-twice", raw(b"GET /health HTTP/1.1", b"Host: a", b"Host: b"), 400, by=GUNICORN),
    case(
        "contradicting-forwarded-proto",
        request_bytes(
            "GET", "/health", None, [("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "off")]
        ),
        200,  # the service trusts no forwarding headers (gunicorn refuses them where it does)
        400,
        by=EITHER,
    ),
    case("expectation-unknown", post(BODY, headers=[("Expect", "200-ok")]), 417, by=GUNICORN),
    case("expect-100-continue", post(BODY, headers=[("Expect", "100-continue")]), 200),
    case("underscore-header-dropped", post(BODY, headers=[("X_Forwarded_For", "1.2.3.4")]), 200),
    case(
        "forwarded-for-spoof", post(BODY, headers=[("X-Forwarded-For", "10.0.0.1, 127.0.0.1")]), 200
    ),
    case(
        "request-id-hostile", post(BODY, headers=[("X-Request-ID", "<script>" + "x" * 5000)]), 200
    ),
    case(
        "trace-headers-garbage",
        post(
            BODY,
            headers=[
                ("traceparent", "zz-" * 100),
                ("X-Cloud-Trace-Context", "0/99999999999999999999999;o=9"),
            ],
        ),
        200,
    ),
    case(
        "non-ascii-header-value",
        raw(b"GET /health HTTP/1.1", b"Host: x", b"X-A: \xff\xfe"),
        200,
        400,
        by=EITHER,
    ),
    case("host-with-spaces", raw(b"GET /health HTTP/1.1", b"Host: a b c"), 200, 400),
    case("host-of-8000", raw(b"GET /health HTTP/1.1", b"Host: " + b"a" * 8000), 200, 400),
    case(
        "upgrade-websocket",
        request_bytes(
            "GET",
            "/health",
            None,
            [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
            ],
        ),
        200,
        400,
    ),
    case(
        "upgrade-h2c",
        request_bytes(
            "GET",
            "/health",
            None,
            [("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")],
        ),
        200,
        400,
    ),
    # SCRIPT_NAME is a header gunicorn trusts from forwarded_allow_ips (127.0.0.1 by default).
    case(
        "script-name-header",
        post(BODY, headers=[("SCRIPT_NAME", "/api")]),
        200,
        400,
        404,
        by=EITHER,
    ),
    case("http-0.9", b"GET /health\r\n\r\n", 400, by=GUNICORN),
    case("http-2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, by=GUNICORN),
    case("http-version-3", raw(b"GET /health HTTP/3.0", b"Host: x"), 400, 505, by=GUNICORN),
    case("http-version-garbage", raw(b"GET /health HTTPS/1.1", b"Host: x"), 400, by=GUNICORN),
    case("bare-lf", b"GET /health HTTP/1.1\nHost: x\n\n", 400, by=GUNICORN),
    case("control-char-in-path", raw(b"GET /hea\x01lth HTTP/1.1", b"Host: x"), 400, by=GUNICORN),
    case("space-in-path", raw(b"GET /hea lth HTTP/1.1", b"Host: x"), 400, by=GUNICORN),
    case(
        "raw-utf8-in-path", raw("GET /h\u00e9alth HTTP/1.1".encode(), b"Host: x"), 400, by=GUNICORN
    ),
    case("blank-lines-only", b"\r\n\r\n\r\n", 400, by=GUNICORN, half_close=True, no_answer_ok=True),
    case("nothing-then-eof", b"", 400, by=GUNICORN, half_close=True, no_answer_ok=True),
    case(
        "tls-client-hello",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),
        400,
        by=GUNICORN,
        half_close=True,
        no_answer_ok=True,
    ),
]

INFER = f"/v2/models/{MODEL}/infer"
V2_BODY = doc({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ROWS[0]}]})


def infer(body: bytes, *headers: tuple[str, str]) -> bytes:
    return post(body, INFER, headers)


def infer_at(rest: str, models: str = "/v2/models/") -> bytes:
    return post(V2_BODY, models + rest)


def header_length(value: str) -> bytes:
    """An infer request whose Inference-Header-Content-Length is `value` (binary extension)."""
    return infer(V2_BODY, ("Inference-Header-Content-Length", value))


V2 = [
    case("v2-valid", infer(V2_BODY), 200),
    case("v2-header-length-exact", header_length(str(len(V2_BODY))), 200),
    # "\xb2", "\xb3" and "\xb9" (latin-1 superscripts) pass str.isdigit(), not int()
    case("v2-header-length-superscript-two", header_length("\xb2"), 400),
    case("v2-header-length-superscript-one", header_length("1\xb9"), 400),
    case("v2-header-length-4301-digits", header_length("1" * 4301), 400),
    case("v2-header-length-20-digits", header_length("9" * 20), 400),
    case("v2-header-length-leading-zeros", header_length("0" * 4300 + str(len(V2_BODY))), 200),
    case("v2-header-length-plus", header_length(f"+{len(V2_BODY)}"), 400),
    case("v2-header-length-underscore", header_length("4_2"), 400),
    case("v2-header-length-zero", header_length("0"), 400),
    case("v2-header-length-empty", header_length(""), 400),
    # Servers decode %2F before routing: a path sent with one is no route's, whatever it decodes
    # to (SECURITY.md), and a doubled slash is not merged into a route's either.
    case("v2-encoded-slash-infer", infer_at(f"{MODEL}%2Finfer"), 404),
    case("v2-encoded-slash-lower-case", infer_at(f"{MODEL}%2finfer"), 404),
    case("v2-encoded-slash-in-version", infer_at(f"{MODEL}/versions%2F1.0.0/infer"), 404),
    case("v2-encoded-slash-after-v2", infer_at(f"{MODEL}/infer", "/v2%2Fmodels/"), 404),
    case("v2-encoded-slash-then-slash", infer_at(f"{MODEL}%2F/infer"), 404),
    case("v2-encoded-slash-get-infer", request_bytes("GET", f"/v2/models/{MODEL}%2Finfer"), 404),
    case("v2-encoded-slash-ready", request_bytes("GET", f"/v2/models/{MODEL}%2Fready"), 404),
    case(
        "v2-encoded-slash-absolute-form", infer_at(f"{MODEL}%2Finfer", "http://x/v2/models/"), 404
    ),
    case("v2-double-slash", request_bytes("GET", f"/v2/models/{MODEL}//ready"), 404),
    case("v2-encoded-slash-in-query-is-no-path", infer_at(f"{MODEL}/infer?x=%2F"), 200),
]

CASES = (
    WRONG_TYPES
    + NUMBERS
    + SHAPES
    + MALFORMED
    + FRAMING
    + COMPRESSED
    + CONTENT_TYPES
    + METHODS
    + PATHS
    + HEADERS
    + V2
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test taking `target` runs on both servers, plus --base-url when one is given."""
    if "target" in metafunc.fixturenames:
        extra = ["base-url"] if metafunc.config.getoption("--base-url") else []
        metafunc.parametrize("target", TARGETS + extra, indirect=True)


@pytest.fixture()
def target(request: pytest.FixtureRequest) -> Server:
    """The real server named by the parameter."""
    if request.param == "base-url":
        return Server.at(request.config.getoption("--base-url"))
    fixture = "gunicorn_server" if request.param == "gunicorn" else "function_server"
    server: Server = request.getfixturevalue(fixture)
    return server


def check_invariants(case: Case, response: RawResponse, function: bool) -> None:
    """No 5xx, the JSON error shape (or the function's server's refusal), no prediction unless
    valid."""
    status = response.status
    assert status in case.status, f"expected {case.status}, got {response}"
    assert status < 500 or status == 501, response
    if response.content_type != "application/json":
        # Only the function's server refusing a malformed request may answer other than JSON.
        assert function and case.by in (GUNICORN, EITHER), f"not JSON: {response}"
        assert response.content_type == "text/html" and status >= 400, response
        assert b"prediction" not in response.body
        return
    request_id = response.header("X-Request-ID")
    assert request_id is None or SAFE_ID.fullmatch(request_id), response
    if status == 405:
        assert response.header("Allow"), response
    if status == 413:
        assert (response.header("Connection") or "").lower() == "close", response
    if case.head:
        assert response.body == b""
        return
    document = json.loads(response.body)
    if status == 200:
        return
    if case.v2:
        assert set(document) == {"error"} and isinstance(document["error"], str), response
        assert document["error"], response
        return
    assert isinstance(document, dict) and "prediction" not in document, response
    assert "predictions" not in document, response
    assert set(document) <= {"code", "status", "message", "errors"}, response
    assert document["code"] == status
    assert document["status"] == HTTPStatus(status).phrase
    assert isinstance(document["message"], str) and document["message"]
    assert ("errors" in document) == (status == 422), response


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES)
def test_hostile_request(target: Server, case: Case) -> None:
    try:
        response = exchange(
            target.port, case.data, timeout=20, half_close=case.half_close, head=case.head
        )
    except NoResponse as exc:
        assert case.no_answer_ok and "closed" in str(exc), f"no answer: {exc}"
        return
    check_invariants(case, response, function=target.label == "functions-framework")


@pytest.mark.unit
def test_hostile_cases_are_many_and_distinct() -> None:
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 60


@pytest.mark.integration
def test_no_request_data_in_errors_or_logs(target: Server) -> None:
    """Values from the body, query and headers never come back in an error or go to the log.

    Field names may: `errors` names the offending field, by design.
    """
    canary = f"CANARY{uuid.uuid4().hex}"
    requests = [
        post(doc(with_(sepal_length=canary))),
        post(doc({"instances": [[canary, 3.5, 1.4, 0.2]]})),
        post(b'{"sepal_length": ' + canary.encode()),
        post(b'{"' + canary.encode() + b'": "\xff"}'),
        post(BODY, f"/predict?probabilities={canary}"),
        post(BODY, f"/predict?debug={canary}"),
        post(BODY, content_type=f"text/{canary}"),
        post(doc({"sepal_length": 5.1}), headers=[("X-Anything", canary)]),
        framed(b"Transfer-Encoding: chunked", canary.encode() + b"\r\n" + BODY + b"\r\n0\r\n\r\n"),
    ]
    responses = [exchange(target.port, data, timeout=20) for data in requests]
    for response in responses:
        assert canary.encode() not in response.body + response.raw_head, response
    if target.proc is not None:  # a server this session started: its log is ours to read
        log = target.output()
        at = log.find(canary)
        assert at < 0, f"request data in the log: ...{log[max(0, at - 300) : at + 60]}..."
    assert all(400 <= r.status < 500 for r in responses), [str(r) for r in responses]
    assert exchange(target.port, request_bytes("GET", "/health")).status == 200
