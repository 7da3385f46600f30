"""The route table, and the blueprint that serves it: every route, for every target.

Each route names its handler itself (a PredictionService method), so a misspelt handler fails
type checking. The blueprint's views and the Cloud Function (gcf/main.py) both hand a matched
request to dispatch.py; neither has any other path to a handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from flask import Blueprint, Response, request
from werkzeug.routing import BaseConverter

from .dispatch import dispatch, is_v2
from .service import PredictionService
from .settings import Settings


class ModelName(BaseConverter):
    """A model's name in a KServe V1 path: one segment, without the colon `:predict` follows."""

    regex = "[^/:]+"


# The URL converters the rules use, for every Map that matches them (the function's too).
CONVERTERS = {"model": ModelName}


class Route(NamedTuple):
    """A URL rule, its methods and the handler that answers it."""

    rule: str
    methods: tuple[str, ...]
    handler: Callable[..., Response]  # (service, request, **URL values) -> Response

    @property
    def predicts(self) -> bool:
        """Whether it answers with predictions (its log lines then carry the model version)."""
        return self.handler in _PREDICTING

    @property
    def v2(self) -> bool:
        """Whether it is the Open Inference Protocol's, whose errors have a shape of their own."""
        return is_v2(self.rule)


_PREDICTING = (PredictionService.predict, PredictionService.v1_predict, PredictionService.v2_infer)

ROUTES = (
    Route("/health", ("GET",), PredictionService.health),
    Route("/ready", ("GET",), PredictionService.ready),
    Route("/metadata", ("GET",), PredictionService.metadata),
    Route("/predict", ("POST",), PredictionService.predict),
    Route("/metrics", ("GET",), PredictionService.metrics),
    Route("/openapi.json", ("GET",), PredictionService.openapi),
    Route("/docs", ("GET",), PredictionService.docs),
    Route("/docs/<name>", ("GET",), PredictionService.docs_asset),
    # KServe V1 and the Open Inference Protocol (V2): docs/protocols.md
    Route("/v1/models/<model:name>", ("GET",), PredictionService.v1_model),
    Route("/v1/models/<model:name>:predict", ("POST",), PredictionService.v1_predict),
    Route("/v2", ("GET",), PredictionService.v2_server),
    Route("/v2/health/live", ("GET",), PredictionService.v2_live),
    Route("/v2/health/ready", ("GET",), PredictionService.v2_ready),
    Route("/v2/models/<name>", ("GET",), PredictionService.v2_model),
    Route("/v2/models/<name>/ready", ("GET",), PredictionService.v2_model_ready),
    Route("/v2/models/<name>/infer", ("POST",), PredictionService.v2_infer),
    Route("/v2/models/<name>/versions/<version>", ("GET",), PredictionService.v2_model),
    Route("/v2/models/<name>/versions/<version>/ready", ("GET",), PredictionService.v2_model_ready),
    Route("/v2/models/<name>/versions/<version>/infer", ("POST",), PredictionService.v2_infer),
)


def routes_for(settings: Settings) -> tuple[Route, ...]:
    """ROUTES, plus the health and predict routes a Vertex AI deployment names for itself."""
    extra = [
        Route(rule, methods, handler)
        for rule, methods, handler in (
            (settings.vertex_health_route, ("GET",), PredictionService.ready),
            (settings.vertex_predict_route, ("POST",), PredictionService.predict),
        )
        if rule
    ]
    return (*ROUTES, *extra)


def blueprint(service: PredictionService) -> Blueprint:
    """The service's routes as a Flask blueprint; each view is one call to dispatch()."""
    bp = Blueprint("api", __name__)
    bp.record_once(lambda state: state.app.url_map.converters.update(CONVERTERS))  # rules use them
    for number, route in enumerate(routes_for(service.settings)):
        bp.add_url_rule(
            route.rule,
            endpoint=f"{route.handler.__name__}-{number}",
            view_func=_view(service, route),
            methods=list(route.methods),
            provide_automatic_options=False,
            merge_slashes=False,  # a doubled slash is no route: a 404, not a redirect
        )
    return bp


def _view(service: PredictionService, route: Route) -> Callable[..., Response]:
    def view(**values: Any) -> Response:
        return dispatch(service, request._get_current_object(), route, values)  # type: ignore[attr-defined]

    return view
