"""The WSGI app from the repository (`flask --app wsgi run`, `gunicorn wsgi:app`): the
package's own, webapp/wsgi.py, which gunicorn's configuration names."""

from webapp.wsgi import app

__all__ = ["app"]
