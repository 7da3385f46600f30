"""The function's routing: its table of the paths without variables answers as werkzeug's
matcher does, for any path and method."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from testkit.processes import ROOT
from webapp import build_service
from webapp.http.function import Function

pytestmark = pytest.mark.unit

CONFIG = {
    "MODEL_PATH": str(ROOT / "model.pkl"),
    "AIP_HEALTH_ROUTE": "/vertex/health",
    "AIP_PREDICT_ROUTE": "/vertex/predict/",
}
FUNCTION = Function(build_service(CONFIG))
PATHS = sorted({route.rule for route in FUNCTION.routes})
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "BREW"]


def outcome(find: Any, path: str, method: str) -> Any:
    """What routing gives: the route and its values, or the refusal's class, code and
    headers (Allow for a 405, Location for a redirect)."""
    try:
        return find(path, method)
    except RequestRedirect as exc:
        return type(exc), exc.new_url
    except HTTPException as exc:
        return type(exc), exc.code, sorted(exc.get_headers())


def test_every_path_without_variables_is_in_the_table() -> None:
    assert ("/predict", "POST") in FUNCTION.static
    assert ("/", "POST") in FUNCTION.static
    assert ("/health", "HEAD") in FUNCTION.static  # werkzeug's HEAD beside GET
    assert ("/vertex/predict/", "POST") in FUNCTION.static
    assert all("<" not in path for path, _ in FUNCTION.static)


paths = st.one_of(
    st.sampled_from(PATHS),
    st.builds(
        lambda path, edit: edit(path),
        st.sampled_from(PATHS),
        st.sampled_from(
            [
                lambda p: p + "/",
                lambda p: p.rstrip("/"),
                lambda p: p.upper(),
                lambda p: "/" + p,
                lambda p: p.replace("<model:name>", "iris-logistic-regression"),
                lambda p: p.replace("<model:name>", "other"),
                lambda p: p.replace("<model:name>", "iris-logistic-regression/versions/1.0.0"),
            ]
        ),
    ),
    st.text(st.sampled_from("/abcdehlpritv2x.-%"), max_size=30).map(lambda p: "/" + p),
)


@settings(max_examples=600, deadline=None)
@given(paths, st.sampled_from(METHODS))
def test_route_of_answers_as_the_matcher(path: str, method: str) -> None:
    assert outcome(FUNCTION.route_of, path, method) == outcome(FUNCTION.matcher.match, path, method)
