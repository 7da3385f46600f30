"""WSGI entry point for gunicorn: configure logging, then build the app once.

Under gunicorn's preload_app this runs in the master before any worker is forked, so a bad
artifact or setting stops the boot with one log line and exit status 1, before the port opens.
"""

import logging
import os
import sys

from webapp import create_app
from webapp.cloud import setup_logging
from webapp.settings import ConfigError
from webapp.vocabulary import ArtifactError

setup_logging(os.environ)

try:
    app = create_app()
except (ArtifactError, ConfigError) as exc:
    logging.getLogger("wsgi").critical("refusing to start: %s", exc)
    sys.exit(1)
