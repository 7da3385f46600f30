"""ServiceFlask's URL adapter against Flask's own, for any request the server could hand over."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from hypothesis import example, given, settings
from hypothesis import strategies as st

from testkit.processes import ROOT
from webapp import create_app
from webapp.http.flask_app import ServiceFlask

pytestmark = pytest.mark.unit

APP = create_app({"MODEL_PATH": str(ROOT / "model.pkl")})

# WSGI strings: bytes as latin-1, so any code point up to 255
wsgi_text = st.text(st.characters(max_codepoint=255), max_size=24)
hosts = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "127.0.0.1:8080",
            "LocalHost",
            "example.com:443",
            "example.com:80",
            "[::1]:8080",
            "bücher.example",
            "xn--bcher-kva.example:8443",
            "a..b",
            "x" * 64 + ".example",
            "",
            "host with space",
        ]
    ),
    wsgi_text,
)
paths = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "/predict",
            "/predict/",
            "//predict",
            "/health",
            "/ready",
            "/metadata",
            "/metrics",
            "/v2/health/live",
            "/v2",
            "/v1/models/iris-logistic-regression",
            "/v1/models/iris-logistic-regression:predict",
            "/v2/models/iris-logistic-regression/infer",
            "/v2/models/a%2Fb/infer",
            "/docs",
            "",
        ]
    ),
    wsgi_text.map(lambda text: "/" + text),
)


def environ(
    host: str | None,
    scheme: str,
    server: tuple[str, str],
    script: str | None,
    path: str | None,
    query: str | None,
    method: str,
    upgrade: bool,
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SERVER_NAME": server[0],
        "SERVER_PORT": server[1],
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
    }
    for key, value in [
        ("HTTP_HOST", host),
        ("SCRIPT_NAME", script),
        ("PATH_INFO", path),
        ("QUERY_STRING", query),
    ]:
        if value is not None:
            values[key] = value
    if upgrade:
        values.update(HTTP_CONNECTION="Upgrade", HTTP_UPGRADE="websocket")
    return values


def adapted(create: Any, values: dict[str, Any]) -> Any:
    """What an adapter factory makes of a request, and what it matches, as comparable values."""
    request = APP.request_class(dict(values))
    try:
        adapter = create(APP, request)
    except Exception as exc:
        return ("refused", type(exc), request.host if "host" in request.__dict__ else None)
    fields = (
        adapter.server_name,
        adapter.script_name,
        adapter.subdomain,
        adapter.url_scheme,
        adapter.path_info,
        adapter.default_method,
        adapter.query_args,
        request.host,
    )
    try:
        rule, arguments = adapter.match(return_rule=True)
        matched: Any = (rule.rule, rule.endpoint, arguments)
    except Exception as exc:  # NotFound, MethodNotAllowed, RequestRedirect, ...
        matched = (type(exc), getattr(exc, "valid_methods", None), getattr(exc, "new_url", None))
    return fields, matched


def test_the_factory_builds_the_service_class() -> None:
    assert type(APP) is ServiceFlask
    assert APP.static_routes[("/predict", "POST")][0].rule == "/predict"
    assert ("/health", "HEAD") in APP.static_routes


requests = st.fixed_dictionaries(
    {
        "host": hosts,
        "scheme": st.sampled_from(["http", "https"]),
        "server": st.sampled_from([("127.0.0.1", "8080"), ("localhost", "80"), ("::1", "443")]),
        "script": st.one_of(st.none(), st.just(""), wsgi_text.map(lambda text: "/" + text)),
        "path": paths,
        "query": st.one_of(st.none(), wsgi_text),
        "method": st.sampled_from(["GET", "POST", "HEAD", "OPTIONS", "PUT", "get"]),
        "upgrade": st.booleans(),
    }
)
PLAIN = {"scheme": "http", "server": ("127.0.0.1", "8080"), "upgrade": False}


@settings(max_examples=600, deadline=None)
@given(requests)
@example(
    {
        **PLAIN,
        "host": "bücher.example",
        "script": "",
        "path": "/predict",
        "query": "a=é",
        "method": "POST",
    }
)
@example(
    {
        **PLAIN,
        "host": None,
        "scheme": "https",
        "server": ("::1", "443"),
        "script": None,
        "path": None,
        "query": None,
        "method": "GET",
    }
)
@example(
    {**PLAIN, "host": "a..b", "script": "/app", "path": "/health", "query": "", "method": "GET"}
)
def test_the_url_adapter_is_flasks_own(request: dict[str, Any]) -> None:
    """The same adapter (host, script, subdomain, scheme, path, method, query), the same host
    on the request, the same match or the same refusal, as Flask's create_url_adapter."""
    values = environ(**request)
    assert adapted(ServiceFlask.create_url_adapter, values) == adapted(
        Flask.create_url_adapter, values
    )


def test_settings_that_make_the_host_matter_are_flasks() -> None:
    """With TRUSTED_HOSTS set, an untrusted host is refused as Flask refuses it."""
    values = environ(
        **{
            **PLAIN,
            "host": "evil.example",
            "script": "",
            "path": "/health",
            "query": "",
            "method": "GET",
        }
    )
    APP.config["TRUSTED_HOSTS"] = ["good.example"]
    try:
        ours = adapted(ServiceFlask.create_url_adapter, values)
        assert ours == adapted(Flask.create_url_adapter, values)
        assert ours[0] == "refused"
    finally:
        APP.config["TRUSTED_HOSTS"] = None
