"""WSGI entry point for gunicorn: configure logging, then build the app once.

Under gunicorn's preload_app this runs in the master before any worker is forked, so a bad
artifact or setting stops the boot with one log line and exit status 1, before the port opens.
"""

import logging
import os
import sys

from webapp import create_app
from webapp.logs import configure_logging
from webapp.model import ArtifactError
from webapp.settings import ConfigError

configure_logging(os.environ.get("LOG_LEVEL", "INFO"), os.environ.get("GOOGLE_CLOUD_PROJECT"))

try:
    app = create_app()
except (ArtifactError, ConfigError) as exc:
    logging.getLogger("wsgi").critical("refusing to start: %s", exc)
    sys.exit(1)
