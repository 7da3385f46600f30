"""The WSGI app gunicorn serves (`webapp.wsgi:app`): logging configured, then the app built once.

Under gunicorn's preload_app this runs in the master before any worker is forked, so a bad
artifact or setting stops the boot with one log line and exit status 1, before the port opens.
"""

import logging
import os
import sys

from . import create_app
from .core.vocabulary import ArtifactError
from .runtime.cloud import setup_logging
from .runtime.settings import ConfigError

setup_logging(os.environ)

try:
    app = create_app()
except (ArtifactError, ConfigError) as exc:
    logging.getLogger("wsgi").critical("refusing to start: %s", exc)
    sys.exit(1)
