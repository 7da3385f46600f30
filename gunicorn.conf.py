"""`gunicorn -c gunicorn.conf.py` from the repository: the package's own configuration,
webapp/server/gunicorn_config.py (which `python serve.py` and `sklearn-serve serve` load by
module name, so an installed copy needs no file here)."""

from webapp.server.gunicorn_config import *  # noqa: F403
