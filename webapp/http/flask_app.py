"""The Flask application class: Flask, binding its URL map to a request for less.

Flask binds the map to every request through werkzeug's `bind_to_environ`, which works the
host out twice and encodes it to IDNA each time. Where no setting makes the host matter to
matching (no SERVER_NAME, TRUSTED_HOSTS, host or subdomain matching: this service sets none)
the same adapter is made from the same values, the host worked out once and its IDNA form
kept per host: a single-row /predict took ~9 µs less in process (docs/performance.md). And
the adapter answers a path without variables (/predict, /health, ...) from a table of
werkzeug's own answers, taken once. tests/unit/http/test_flask_app.py proves the adapter and
its match equal to Flask's own for any request.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from flask import Flask, Request
from werkzeug.routing import MapAdapter, Rule
from werkzeug.wsgi import get_host

from .route import static_answers

# (path, method) -> werkzeug's rule and URL values for it
StaticRoutes = dict[tuple[str, str], tuple[Rule, Mapping[str, Any]]]


class ServiceFlask(Flask):
    """Flask, with `create_url_adapter` (documented as overridable) made cheaper."""

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        """Flask's adapter for `request`: the same values, worked out once (module docstring).
        A websocket upgrade (werkzeug then matches with another scheme), or any setting that
        makes the host matter, goes to Flask's own."""
        if (
            request is None
            or "HTTP_UPGRADE" in request.environ
            or self.config["SERVER_NAME"] is not None
            or self.config["TRUSTED_HOSTS"] is not None
            or self.url_map.host_matching
            or self.subdomain_matching
        ):
            return super().create_url_adapter(request)
        environ = request.environ
        host = get_host(environ)
        request.host = host  # as Flask's sets it: read from here on
        return StaticFirstAdapter(
            self.static_routes,
            self.url_map,
            _bound_host(host),
            _decoded(environ.get("SCRIPT_NAME"), "/"),
            self.url_map.default_subdomain or "",
            environ["wsgi.url_scheme"],
            _decoded(environ.get("PATH_INFO"), "/"),
            environ["REQUEST_METHOD"],
            _decoded(environ.get("QUERY_STRING")),
        )

    @functools.cached_property
    def static_routes(self) -> StaticRoutes:
        """werkzeug's match for each path without variables and method, taken at the first
        request, once Flask takes no more rules. It depends on nothing else here: the host
        matters to matching only where Flask's own adapter is made (above)."""
        adapter = self.url_map.bind("localhost")
        return static_answers(
            self.url_map.iter_rules(),
            lambda path, method: adapter.match(path, method, return_rule=True),
        )


class StaticFirstAdapter(MapAdapter):
    """werkzeug's adapter, which answers Flask's match of a path without variables from the
    table of werkzeug's own answers (ServiceFlask.static_routes)."""

    def __init__(self, answers: StaticRoutes, *args: Any) -> None:
        super().__init__(*args)
        self.answers = answers

    def match(
        self,
        path_info: str | None = None,
        method: str | None = None,
        return_rule: bool = False,
        query_args: Any = None,
        websocket: bool | None = None,
    ) -> tuple[Any, Mapping[str, Any]]:
        if path_info is None and method is None and websocket is None and not self.websocket:
            found = self.answers.get((self.path_info, self.default_method))
            if found is not None:
                rule, values = found
                return (rule if return_rule else rule.endpoint), dict(values)
        return super().match(path_info, method, return_rule, query_args, websocket)  # type: ignore[call-overload]


@functools.lru_cache(maxsize=64)
def _bound_host(host: str) -> str:
    """The host as werkzeug's Map.bind keeps it: lower case, the name in IDNA, the port as
    sent; BadHost (a 400) where IDNA cannot encode it, as there (and not kept)."""
    from werkzeug.exceptions import BadHost

    name, colon, port = host.lower().partition(":")
    try:
        return f"{name.encode('idna').decode('ascii')}{colon}{port}"
    except UnicodeError as exc:
        raise BadHost() from exc


def _decoded(value: str | None, missing: str | None = None) -> Any:
    """A WSGI string as werkzeug decodes it (latin-1 bytes read as UTF-8), or `missing`."""
    return missing if value is None else value.encode("latin1").decode(errors="replace")
