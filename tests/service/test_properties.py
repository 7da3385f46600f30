"""Property-based tests: random and perturbed requests against the policy, on both targets.

An oracle written here from the policy docs/api.md states ("Validation"; not from
webapp.protocol.schemas) says whether each request is valid. The service must answer 200 with
the model's predictions exactly when it is, 400 when the body is not strict JSON and 422 when
it is JSON the policy refuses; and the Flask app and the Cloud Function must give
byte-identical answers to every request.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from testkit.samples import SETOSA
from webapp import create_app

pytestmark = pytest.mark.unit

FEATURES = list(SETOSA)
LOW, HIGH = 0.0, 100.0  # the Iris manifest's range, in cm: LOW < x <= HIGH
MAX_BATCH = 10_000
QUERIES = [  # (query string, valid, probabilities)
    ("", True, False),
    ("?probabilities=true", True, True),
    ("?probabilities=false", True, False),
    ("?probabilities=1", True, True),
    ("?probabilities=0", True, False),
    ("?probabilities=maybe", False, False),
    ("?debug=1", False, False),
    ("?probabilities=true&verbose=1", False, False),
]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class NotStrictJSON(ValueError):
    """The oracle's verdict on a body that is not strict JSON."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise NotStrictJSON("duplicate key")
    return dict(pairs)


def _no_constants(name: str) -> Any:
    raise NotStrictJSON(name)


def strict_json(body: bytes) -> Any:
    """The policy's JSON: UTF-8, no NaN/Infinity, no duplicate keys; NotStrictJSON otherwise."""
    try:
        text = body.decode("utf-8")
        if not text.strip():
            raise NotStrictJSON("empty")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise NotStrictJSON(str(exc)) from None


def number(value: Any) -> float | None:
    """A valid feature value as a float: a JSON number (not a bool), finite, in range."""
    if type(value) is not int and type(value) is not float:
        return None
    try:
        x = float(value)
    except OverflowError:
        return None
    return x if math.isfinite(x) and LOW < x <= HIGH else None


def row(instance: Any) -> list[float] | None:
    """An instance (object with exactly the features, or an array in order) as a row."""
    if type(instance) is dict and set(instance) == set(FEATURES):
        values = [number(instance[name]) for name in FEATURES]
    elif type(instance) is list and len(instance) == len(FEATURES):
        values = [number(item) for item in instance]
    else:
        return None
    found = [x for x in values if x is not None]
    return found if len(found) == len(FEATURES) else None


def rows(document: Any) -> tuple[list[list[float]], bool] | None:
    """The rows to predict and whether it is a batch; None when the policy refuses it."""
    if type(document) is not dict:
        return None
    if "instances" not in document:
        single = row(document)
        return None if single is None else ([single], False)
    items = document["instances"]
    if set(document) != {"instances"} or type(items) is not list:
        return None
    if not 1 <= len(items) <= MAX_BATCH:
        return None
    found = [r for r in (row(item) for item in items) if r is not None]
    return (found, True) if len(found) == len(items) else None


@pytest.fixture(scope="module")
def flask_client() -> FlaskClient:
    return create_app().test_client()


@pytest.fixture(scope="module")
def model() -> Any:
    """The artifact served by scikit-learn itself, for the predictions a valid request must get
    (the apps above serve its compiled form)."""
    return create_app({"ENGINE": "sklearn"}).extensions["prediction_service"].predictor.model


def check(
    flask_client: FlaskClient, function_client: FlaskClient, model: Any, body: bytes, query: str
) -> None:
    """Send `body` to both targets; they must agree, and agree with the oracle."""
    answers = []
    for client in (flask_client, function_client):
        response = client.post(
            "/predict" + query, data=body, headers={"Content-Type": "application/json"}
        )
        answers.append((response.status_code, response.mimetype, response.get_data()))
    assert answers[0] == answers[1], f"the targets disagree on {body[:300]!r}"
    status, mimetype, payload = answers[0]
    event(f"status {status}")
    assert mimetype == "application/json"
    answer = json.loads(payload)

    _, query_valid, probabilities = next(q for q in QUERIES if q[0] == query)
    try:
        expected = rows(strict_json(body))
    except NotStrictJSON:
        expected_status = 400 if query_valid else 422  # the query is checked first
        assert (status, answer["code"]) == (expected_status, expected_status), (body, answer)
        return
    if expected is None or not query_valid:
        assert (status, answer["code"]) == (422, 422), (body, answer)
        assert "errors" in answer
        return
    assert status == 200, (body, answer)
    matrix, batch = expected
    predicted = [int(c) for c in model.engine.estimator.predict(np.asarray(matrix))]
    results = answer["predictions"] if batch else [answer]
    assert len(results) == len(predicted)
    if probabilities:
        assert [r["prediction"] for r in results] == predicted
        for result in results:
            assert result["label"] == model.labels[result["prediction"]]
            assert set(result["probabilities"]) == set(model.labels.values())
            assert math.isclose(sum(result["probabilities"].values()), 1.0, rel_tol=1e-9)
    elif batch:
        assert answer == {"predictions": predicted}
    else:
        assert answer == {"prediction": predicted[0]}


SPECIAL_NUMBERS = st.sampled_from(
    [0, -0.0, -1, 1e-320, 5e-324, 100, 100.00000000000001, 101, 1e308, 10**400, -(10**400)]
)
VALID_NUMBERS = st.floats(min_value=LOW, max_value=HIGH, exclude_min=True) | st.integers(1, 100)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["5.1", "NaN", "Infinity", "", "1_0"])
    | SPECIAL_NUMBERS
    | VALID_NUMBERS
)
KEYS = st.sampled_from([*FEATURES, "instances", "Sepal_Length", "x"]) | st.text(max_size=6)
DOCUMENTS = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=25,
)
QUERY = st.sampled_from([q for q, _, _ in QUERIES])


@st.composite
def instances(draw: st.DrawFn) -> Any:
    values = draw(st.lists(VALID_NUMBERS, min_size=4, max_size=4))
    if draw(st.booleans()):
        return values
    return dict(zip(FEATURES, values, strict=True))


@st.composite
def valid_documents(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        single = draw(instances())
        return single if type(single) is dict else dict(zip(FEATURES, single, strict=True))
    return {"instances": draw(st.lists(instances(), min_size=1, max_size=8))}


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every container's path in a document, the root first."""
    found = [path]
    if type(node) is dict:
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif type(node) is list:
        for i, value in enumerate(node):
            found += _paths(value, (*path, i))
    return found


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


@st.composite
def perturbed_documents(draw: st.DrawFn) -> Any:
    """A valid document with up to three structural changes, each somewhere random."""
    document = draw(valid_documents())
    for _ in range(draw(st.integers(0, 3))):
        containers = [p for p in _paths(document) if type(_at(document, p)) in (dict, list)]
        path = draw(st.sampled_from(containers))
        node = _at(document, path)
        change = draw(st.sampled_from(["replace", "drop", "add", "wrap", "empty", "grow", "nest"]))
        keys = list(node) if type(node) is dict else list(range(len(node)))
        if change == "replace" and keys:
            node[draw(st.sampled_from(keys))] = draw(LEAVES | DOCUMENTS)
        elif change == "drop" and keys:
            del node[draw(st.sampled_from(keys))]
        elif change == "add":
            if type(node) is dict:
                node[draw(KEYS)] = draw(LEAVES)
            else:
                node.append(draw(LEAVES | instances()))
        elif change == "wrap":
            document = [document] if draw(st.booleans()) else {"instances": document}
        elif change == "empty":
            node.clear()
        elif change == "grow" and type(node) is list:
            node.extend(node * draw(st.integers(1, 3)))
        elif change == "nest" and keys:
            key = draw(st.sampled_from(keys))
            for _ in range(draw(st.sampled_from([1, 2, 10, 500]))):
                node[key] = [node[key]]
    return document


@st.composite
def perturbed_bodies(draw: st.DrawFn) -> bytes:
    """A valid document's bytes with a textual change: the kind that breaks strict JSON."""
    body = bytearray(json.dumps(draw(valid_documents())).encode())
    change = draw(
        st.sampled_from(
            ["delete", "insert", "replace", "truncate", "duplicate", "literal", "prefix", "deep"]
        )
    )
    at = draw(st.integers(0, len(body) - 1))
    if change == "delete":
        del body[at]
    elif change == "insert":
        body[at:at] = draw(st.binary(min_size=1, max_size=3))
    elif change == "replace":
        body[at] = draw(st.integers(0, 255))
    elif change == "truncate":
        del body[at:]
    elif change == "duplicate":  # repeat the first member: a duplicate key when it is one
        first = body.index(b",") if b"," in body else len(body) - 1
        body[first:first] = b"," + bytes(body[1:first])
    elif change == "literal":
        number_at = [i for i, c in enumerate(body) if chr(c).isdigit() and body[i - 1] in b":[, "]
        if number_at:
            start = draw(st.sampled_from(number_at))
            end = start
            while end < len(body) and body[end] in b"0123456789.eE+-":
                end += 1
            body[start:end] = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999"]))
    elif change == "prefix":
        body[0:0] = draw(st.sampled_from([b"\xef\xbb\xbf", b" ", b"\x00", b"\xff", b"//"]))
    elif change == "deep":
        depth = draw(st.sampled_from([1, 50, 150, 500, 5000, 50_000]))
        body = bytearray(b"[" * depth) + body + b"]" * depth
    return bytes(body)


@SETTINGS
@given(document=DOCUMENTS, query=QUERY)
def test_random_json_documents(
    flask_client: FlaskClient, function_client: FlaskClient, model: Any, document: Any, query: str
) -> None:
    check(flask_client, function_client, model, json.dumps(document).encode(), query)


@SETTINGS
@given(document=valid_documents(), query=QUERY)
def test_valid_documents_predict(
    flask_client: FlaskClient, function_client: FlaskClient, model: Any, document: Any, query: str
) -> None:
    check(flask_client, function_client, model, json.dumps(document).encode(), query)


@settings(SETTINGS, max_examples=300)
@given(document=perturbed_documents(), query=QUERY)
def test_perturbed_documents(
    flask_client: FlaskClient, function_client: FlaskClient, model: Any, document: Any, query: str
) -> None:
    check(flask_client, function_client, model, json.dumps(document).encode(), query)


@settings(SETTINGS, max_examples=300)
@given(body=perturbed_bodies())
def test_perturbed_bytes(
    flask_client: FlaskClient, function_client: FlaskClient, model: Any, body: bytes
) -> None:
    check(flask_client, function_client, model, body, "")
