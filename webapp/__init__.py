"""The prediction service, assembled: the Flask application factory, and the Cloud Function's
handler. Both share build_service(): the settings, the model, the route table.

The factory imports the stack itself, so that importing the package does not:
webapp.runtime.tuning sets BLAS thread limits that hold only if they are set before numpy is
loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from .http.dispatch import Service
    from .http.function import Function


def build_service(config: Mapping[str, Any], debug: bool = False) -> Service:
    """Validate the settings, load and verify the model once, assemble the routes: the
    start-up both targets share."""
    from .core.model import load_model
    from .http.dispatch import Service
    from .http.observe import Observer
    from .http.routes import routes_for
    from .protocol.predictor import Predictor
    from .runtime.settings import Settings

    settings = Settings.from_mapping(config)
    path = settings.model_path
    if settings.model_url:  # in Cloud Storage: fetched once, then verified as a local one
        from .core.storage import fetch

        path = fetch(settings.model_url, settings.model_sha256)
    predictor = Predictor(load_model(path, settings.model_sha256, settings.engine))
    routes = routes_for(predictor, settings)
    observer = Observer(predictor.version, settings.access_log)
    return Service(predictor, settings, routes, observer, debug)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then `test_config`; load the model eagerly.

    Raises ArtifactError or ConfigError, so a bad artifact or setting stops the boot.
    """
    from flask import request
    from werkzeug.exceptions import HTTPException

    from .http.dispatch import refuse
    from .http.flask_app import ServiceFlask
    from .http.responses import internal_error_response
    from .http.routes import blueprint
    from .runtime.settings import SETTING_NAMES

    app = ServiceFlask(__name__)
    app.config.update({name: os.environ[name] for name in SETTING_NAMES if name in os.environ})
    if test_config is not None:
        app.config.update(test_config)

    service = build_service(app.config, debug=app.debug)
    app.extensions["prediction_service"] = service
    # read_body() enforces the body limit itself, the same way in the function: Flask's own
    # limit would also refuse a body of exactly MAX_CONTENT_LENGTH bytes.
    app.config["MAX_CONTENT_LENGTH"] = None
    app.register_blueprint(blueprint(service))
    # Requests no route takes (404, 405): answered in JSON and observed, as in the function.
    app.register_error_handler(
        HTTPException,
        lambda exc: refuse(service, request._get_current_object(), exc),  # type: ignore[attr-defined]
    )
    if not app.debug:  # `flask run --debug`: Flask's debugger shows what went wrong
        app.register_error_handler(Exception, internal_error_response)
    return app


def function_handler(config: Mapping[str, Any]) -> Function:
    """The Cloud Function's handler (gcf/main.py): logging set up, the service built and the
    process settled; a bad artifact or setting ends the instance with one log line, exit 1."""
    import logging

    from .core.vocabulary import ArtifactError
    from .http.function import Function
    from .runtime import tuning
    from .runtime.cloud import setup_logging
    from .runtime.settings import ConfigError

    setup_logging(config)
    try:
        service = build_service(config)
    except (ArtifactError, ConfigError) as exc:
        logging.getLogger("gcf.main").critical("refusing to start: %s", exc)
        raise SystemExit(1) from None
    tuning.settle()
    return Function(service)
