"""A route's record: its rule, methods, handler, whether it predicts, and its documentation.

Everything about a route in one place: the protocols' modules list their routes as these
records, routes.py assembles them, and the blueprint, the function and the OpenAPI document all
read the same records. No other project module is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple, TypeVar

from flask import Response
from werkzeug.routing import Rule

Answer = TypeVar("Answer")


class Doc(NamedTuple):
    """How a route is documented in OpenAPI: its answer's schemas (one of), its failures, its
    request body's schemas (one of), the schema of its error bodies, whether it may answer in
    the binary tensor extension, takes the prediction options in its query, and answers a 503
    with its own answer (not ready) rather than an error."""

    answers: tuple[str, ...]
    errors: tuple[int, ...] = ()
    media_type: str = "application/json"
    body: tuple[str, ...] = ()
    error: str = "Error"
    binary: bool = False
    query: bool = False
    not_ready: bool = False


class Route(NamedTuple):
    """A URL rule, its methods, the handler that answers it, whether it answers with
    predictions (its log lines then carry the model version), and its documentation (None:
    not API, such as the docs page's files)."""

    rule: str
    methods: tuple[str, ...]
    handler: Callable[..., Response]  # (request, **URL values) -> Response
    predicts: bool = False
    doc: Doc | None = None

    @property
    def v2(self) -> bool:
        """Whether it is the Open Inference Protocol's, whose errors have a shape of their own."""
        return is_v2(self.rule)


def is_v2(path: str) -> bool:
    """Whether a path is the Open Inference Protocol's (/v2 and below)."""
    return path == "/v2" or path.startswith("/v2/")


def static_answers(
    rules: Iterable[Rule], match: Callable[[str, str], Answer]
) -> dict[tuple[str, str], Answer]:
    """`match`'s own answers for the path of each bound rule without variables, with each of
    its methods (werkzeug's HEAD beside GET): most requests send one of these, and werkzeug's
    state machine took 3.4 µs to find it again. Bound rules only: a rule learns its variables
    (`arguments`) when its Map is made."""
    return {
        (rule.rule, method): match(rule.rule, method)
        for rule in rules
        if not rule.arguments
        for method in rule.methods or ()
    }
