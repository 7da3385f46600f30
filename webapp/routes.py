"""The route table, and the blueprint that serves it: every route, for every target.

Each route names its handler itself (a PredictionService method), so a misspelt handler fails
type checking. The blueprint's views and the Cloud Function (gcf/main.py) both hand a matched
request to dispatch.py; neither has any other path to a handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from flask import Blueprint, Response, request

from .dispatch import dispatch
from .service import PredictionService
from .settings import Settings


class Route(NamedTuple):
    """A URL rule, its methods and the handler that answers it."""

    rule: str
    methods: tuple[str, ...]
    handler: Callable[..., Response]  # (service, request, **URL values) -> Response

    @property
    def predicts(self) -> bool:
        """Whether it answers with predictions (its log lines then carry the model version)."""
        return self.handler is _PREDICT


_PREDICT = PredictionService.predict


ROUTES = (
    Route("/health", ("GET",), PredictionService.health),
    Route("/ready", ("GET",), PredictionService.ready),
    Route("/metadata", ("GET",), PredictionService.metadata),
    Route("/predict", ("POST",), PredictionService.predict),
    Route("/metrics", ("GET",), PredictionService.metrics),
    Route("/openapi.json", ("GET",), PredictionService.openapi),
    Route("/docs", ("GET",), PredictionService.docs),
    Route("/docs/<name>", ("GET",), PredictionService.docs_asset),
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
    for number, route in enumerate(routes_for(service.settings)):
        bp.add_url_rule(
            route.rule,
            endpoint=f"{route.handler.__name__}-{number}",
            view_func=_view(service, route),
            methods=list(route.methods),
            provide_automatic_options=False,
        )
    return bp


def _view(service: PredictionService, route: Route) -> Callable[..., Response]:
    def view(**values: Any) -> Response:
        return dispatch(service, request._get_current_object(), route, values)  # type: ignore[attr-defined]

    return view
