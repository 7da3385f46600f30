"""The Flask application class: Flask, binding its URL map to a request for less.

Flask binds the map to every request through werkzeug's `bind_to_environ`, which works the
host out twice and encodes it to IDNA each time. Where no setting makes the host matter to
matching (no SERVER_NAME, TRUSTED_HOSTS, host or subdomain matching: this service sets none)
the same adapter is made from the same values, the host worked out once and its IDNA form
kept per host: a single-row /predict took ~9 µs less in process (docs/performance.md).
tests/unit/http/test_flask_app.py proves the adapter equal to Flask's own for any request.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Flask, Request
from werkzeug.routing import MapAdapter
from werkzeug.wsgi import get_host


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
        return MapAdapter(
            self.url_map,
            _bound_host(host),
            _decoded(environ.get("SCRIPT_NAME"), "/"),
            self.url_map.default_subdomain or "",
            environ["wsgi.url_scheme"],
            _decoded(environ.get("PATH_INFO"), "/"),
            environ["REQUEST_METHOD"],
            _decoded(environ.get("QUERY_STRING")),
        )


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
