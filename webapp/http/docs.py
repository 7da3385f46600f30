"""The API's documentation: the OpenAPI document, and Swagger UI's page showing it.

The document is written from the route table on first use (openapi.py). Swagger UI is served
from the installed flask-swagger-ui package: nothing is fetched from a CDN, so the page works
offline and under a strict network policy. URLs are relative, so the page also works below a
path prefix such as a function's name.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from flask import Request, Response
from marshmallow import Schema

from ..protocol.errors import ApiError
from ..protocol.predictor import Predictor
from .responses import api_error_response, json_response
from .route import Doc, Route

# Found, not imported: importing the package builds a Flask blueprint this module never uses.
_PACKAGE = find_spec("flask_swagger_ui")
if _PACKAGE is None or _PACKAGE.origin is None:
    raise ImportError("flask-swagger-ui is not installed")
ASSETS_DIR = Path(_PACKAGE.origin).resolve().parent / "dist"
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>sklearn-serve API</title>
  <link rel="stylesheet" href="docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "openapi.json",
      dom_id: "#swagger-ui",
      tryItOutEnabled: true,
      deepLinking: true
    });
  </script>
</body>
</html>
"""


class DocsEndpoints:
    """/openapi.json, /docs and its files, documenting the routes `table()` gives."""

    def __init__(
        self,
        predictor: Predictor,
        table: Callable[[], tuple[Route, ...]],
        schemas: dict[str, Schema],
    ) -> None:
        self.predictor = predictor
        self.table = table
        self.schemas = schemas
        self._spec: dict[str, Any] | None = None

    def routes(self) -> list[Route]:
        """/openapi.json (documented), /docs and /docs/<name> (not API)."""
        return [
            Route("/openapi.json", ("GET",), self.openapi, doc=Doc(("Document",))),
            Route("/docs", ("GET",), self.page),
            Route("/docs/<name>", ("GET",), self.asset),
        ]

    def openapi(self, req: Request) -> Response:
        """This service's OpenAPI document, built from its routes and schemas on first use."""
        if self._spec is None:
            # Imported here: apispec is needed by this route only, not on the cold-start path.
            from .openapi import build_spec

            self._spec = build_spec(self.predictor.model, self.table(), self.schemas)
        return json_response(self._spec)

    def page(self, req: Request) -> Response:
        """The interactive docs page (Swagger UI, served locally)."""
        return Response(PAGE, 200, mimetype="text/html")

    def asset(self, req: Request, name: str) -> Response:
        """Swagger UI's script, stylesheet and icon, from the installed package."""
        found = asset(name)
        if found is None:
            return api_error_response(ApiError(404, "No such route."))
        body, content_type = found
        response = Response(body, 200, content_type=content_type)
        response.cache_control.public = True
        response.cache_control.max_age = 86400
        return response


@cache
def asset(name: str) -> tuple[bytes, str] | None:
    """An allowed asset's bytes and content type; None for any other name."""
    if name not in ASSETS:
        return None
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return (ASSETS_DIR / name).read_bytes(), content_type
