"""FixedResponse sent against werkzeug's Response sending the same: status, headers, bytes,
and the close callbacks run, for any response this service could make and any method."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Response
from hypothesis import example, given, settings
from hypothesis import strategies as st

from webapp.http.responses import FixedResponse, Unsized

pytestmark = pytest.mark.unit

HEADERS = [
    ("Allow", "GET, POST"),
    ("Connection", "close"),
    ("X-Request-ID", "0123abcd"),
    ("Location", "/predict"),
    ("Location", "http://example.com/ü"),
    ("Content-Location", "/v2/ä"),
    ("Content-Length", "3"),
    ("Inference-Header-Content-Length", "12"),
]


class Streamed(list[bytes]):
    """A body werkzeug iterates and closes, as it does a generator or a file."""

    def __init__(self, chunks: Any, closed: list[str]) -> None:
        super().__init__(chunks)
        self.closed = closed

    def close(self) -> None:
        self.closed.append("body")


def sent(cls: type[Response], spec: dict[str, Any]) -> Any:
    """What a server gets from the response: status, headers, the body's chunks, and which of
    its close callbacks ran once the server closed what it iterated."""
    response = cls(spec["body"], spec["status"], headers=spec["headers"], mimetype=spec["mimetype"])
    response.direct_passthrough = spec["passthrough"]
    closed: list[str] = []
    if spec["on_close"]:
        response.call_on_close(lambda: closed.append("callback"))
    if spec["body_as"] == "streamed":  # a body werkzeug iterates, and closes once sent
        response.response = Streamed(response.response, closed)
    elif spec["body_as"] == "generated":  # iterable once only
        response.response = (chunk for chunk in list(response.response))
    elif spec["body_as"] == "unsized":  # the function's answers (webapp/http/function.py)
        response.response = Unsized(response.response)
    elif spec["body_as"] == "assigned text":  # not set_data's bytes: encoded as it is sent
        response.response = ["é", *response.response]
    if spec["length_removed"]:
        del response.headers["Content-Length"]
    response.headers.add("X-Request-ID", "added after")  # as observe.finish() adds it
    started: list[Any] = []
    environ = {
        "REQUEST_METHOD": spec["method"],
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "wsgi.url_scheme": "http",
        "HTTP_HOST": "127.0.0.1:8080",
        "PATH_INFO": "/predict",
        "SCRIPT_NAME": "",
    }
    iterable = response(
        environ, lambda status, headers, exc_info=None: started.append((status, headers))
    )
    body = list(iterable)  # as the server gets them: bytes, or whatever else is in there
    if hasattr(iterable, "close"):
        iterable.close()
    return started, body, closed


@settings(max_examples=400, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "body": st.one_of(st.binary(max_size=40), st.text(max_size=20)),
            "status": st.sampled_from([101, 200, 201, 204, 301, 304, 400, 404, 405, 413, 500]),
            "headers": st.lists(st.sampled_from(HEADERS), max_size=4),
            "mimetype": st.sampled_from(["application/json", "application/octet-stream"]),
            "method": st.sampled_from(["GET", "POST", "HEAD", "OPTIONS"]),
            "passthrough": st.booleans(),
            "on_close": st.booleans(),
            "body_as": st.sampled_from(
                ["set", "streamed", "generated", "unsized", "assigned text"]
            ),
            "length_removed": st.booleans(),
        }
    )
)
@example(
    {
        "body": b'{"prediction":0}',
        "status": 200,
        "headers": [],
        "mimetype": "application/json",
        "method": "POST",
        "passthrough": False,
        "on_close": False,
        "body_as": "set",
        "length_removed": False,
    }
)
def test_sent_as_werkzeug_sends_it(spec: dict[str, Any]) -> None:
    assert sent(FixedResponse, spec) == sent(Response, spec)
