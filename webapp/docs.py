"""The interactive API docs page: Swagger UI, served from the installed flask-swagger-ui package.

Nothing is fetched from a CDN, so the page works offline and under a strict network policy.
URLs are relative, so the page also works below a path prefix such as a function's name.
"""

from __future__ import annotations

import mimetypes
from functools import cache
from importlib.util import find_spec
from pathlib import Path

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


@cache
def asset(name: str) -> tuple[bytes, str] | None:
    """An allowed asset's bytes and content type; None for any other name."""
    if name not in ASSETS:
        return None
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return (ASSETS_DIR / name).read_bytes(), content_type
