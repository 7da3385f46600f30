"""The service with a failure injected into its model: `flask --app tests.service.failing_app run`.

Built by wsgi.py, as `make dev` builds it, so its logging is the one `make dev` has.
"""

from typing import Any

from wsgi import app


def _explode(rows: Any) -> list[int]:
    raise RuntimeError("an injected failure")


app.extensions["prediction_service"].predictor.model.predict = _explode
