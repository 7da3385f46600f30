"""Start gunicorn in this process with the project's configuration, as every server here starts:
`sklearn-serve serve`, `python serve.py` (`make run`) and the image.

gunicorn reads WEB_CONCURRENCY itself as it is imported, before any configuration runs, and a
value that is not a number ends in its traceback. It is checked here first, so it gets one
clear line like every other setting; the configuration (gunicorn_config.py) checks the rest,
and its range.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

CONFIG = "python:webapp.server.gunicorn_config"  # a module: found from any folder


def run(options: Sequence[str] = ()) -> None:
    """Check what gunicorn reads on import, then run gunicorn here with `options` on top of
    the configuration (a positional app replaces its wsgi_app). Returns only on exit."""
    workers = os.environ.get("WEB_CONCURRENCY", "").strip()
    if workers and not re.fullmatch(r"[0-9]+", workers):
        sys.exit(f"WEB_CONCURRENCY must be a whole number, got {workers!r}")
    from gunicorn.app.wsgiapp import run as gunicorn

    sys.argv = ["gunicorn", "-c", CONFIG, *options]
    gunicorn()
