"""The route table, assembled from every protocol's routes, and the blueprint that serves it.

Each protocol's module lists its own routes as records (route.py): predict_api.py,
kserve_v1.py, open_inference.py, docs.py. routes_for() assembles them once per process. The
blueprint's views and the Cloud Function (gcf/main.py) both hand a matched request to
dispatch.py; neither has another path to a handler, and the OpenAPI document is written from
the same records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request
from werkzeug.routing import BaseConverter

from ..protocol.predictor import Predictor
from ..runtime.settings import Settings
from .dispatch import Service, dispatch
from .docs import DocsEndpoints
from .kserve_v1 import KServeV1Endpoints
from .open_inference import OpenInferenceEndpoints
from .predict_api import PredictEndpoints
from .route import Route


class ModelName(BaseConverter):
    """A model's name in a KServe V1 path: one segment, without the colon `:predict` follows."""

    regex = "[^/:]+"


# The URL converters the rules use, for every Map that matches them (the function's too).
CONVERTERS = {"model": ModelName}


def routes_for(predictor: Predictor, settings: Settings) -> tuple[Route, ...]:
    """Every route of the service, in the order the OpenAPI document lists them: its own,
    the docs, KServe V1, the Open Inference Protocol, and the routes a Vertex AI deployment
    names for itself."""
    own = PredictEndpoints(predictor, settings)
    v2 = OpenInferenceEndpoints(predictor, settings)
    table: list[Route] = []
    docs = DocsEndpoints(predictor, lambda: tuple(table), {**own.schemas(), **v2.schemas()})
    table += [
        *own.routes(),
        *docs.routes(),
        *KServeV1Endpoints(predictor, own).routes(),
        *v2.routes(),
        *own.vertex_routes(settings),
    ]
    return tuple(table)


def blueprint(service: Service) -> Blueprint:
    """The service's routes as a Flask blueprint; each view is one call to dispatch()."""
    bp = Blueprint("api", __name__)
    bp.record_once(lambda state: state.app.url_map.converters.update(CONVERTERS))  # rules use them
    for number, route in enumerate(service.routes):
        bp.add_url_rule(
            route.rule,
            endpoint=f"{route.handler.__name__}-{number}",
            view_func=_view(service, route),
            methods=list(route.methods),
            provide_automatic_options=False,
            merge_slashes=False,  # a doubled slash is no route: a 404, not a redirect
        )
    return bp


def _view(service: Service, route: Route) -> Callable[..., Response]:
    def view(**values: Any) -> Response:
        return dispatch(service, request._get_current_object(), route, values)  # type: ignore[attr-defined]

    return view
