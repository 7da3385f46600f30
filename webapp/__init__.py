"""The Flask application factory for the prediction service."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from .api import PredictionService, bp, current_request
from .errors import http_error_response, internal_error_response
from .model import load_model
from .settings import SETTING_NAMES, Settings


def build_service(config: Mapping[str, Any]) -> PredictionService:
    """Validate the settings, load and verify the model once: the start-up both targets share."""
    settings = Settings.from_mapping(config)
    return PredictionService(load_model(settings.model_path, settings.model_sha256), settings)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then `test_config`; load the model eagerly.

    Raises ArtifactError or ConfigError, so a bad artifact or setting stops the boot.
    """
    app = Flask(__name__)
    app.config.update({name: os.environ[name] for name in SETTING_NAMES if name in os.environ})
    if test_config is not None:
        app.config.update(test_config)

    service = build_service(app.config)
    app.extensions["prediction_service"] = service
    # read_body() enforces the body limit itself, the same way in the function: Flask's own
    # limit would also refuse a body of exactly MAX_CONTENT_LENGTH bytes.
    app.config["MAX_CONTENT_LENGTH"] = None
    app.register_blueprint(bp)

    predict_endpoint = f"{bp.name}.predict"

    @app.before_request
    def begin_observation() -> None:
        req = current_request()
        route = req.url_rule.rule if req.url_rule else "unmatched"
        service.observer.begin(req, route, req.endpoint == predict_endpoint)

    @app.after_request
    def finish_observation(response: Response) -> Response:
        return service.observer.finish(current_request(), response)

    settings = service.settings
    for rule, endpoint, methods in (
        (settings.vertex_health_route, "ready", ["GET"]),
        (settings.vertex_predict_route, "predict", ["POST"]),
    ):
        if rule:
            app.add_url_rule(
                rule, f"{bp.name}.{endpoint}", methods=methods, provide_automatic_options=False
            )
    app.register_error_handler(HTTPException, http_error_response)
    if not app.debug:  # `flask run --debug`: Flask's debugger shows what went wrong
        app.register_error_handler(Exception, internal_error_response)
    return app
