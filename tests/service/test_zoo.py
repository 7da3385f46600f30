"""Models unlike the shipped one (testkit/zoo.py), packaged with `python -m webapp.package` and
served from MODEL_PATH by real gunicorn and functions-framework processes, the table gone:
every answer is what scikit-learn itself answers, and every bad value a 422 naming its field.
Each runs on both engines where it has a compiled form, and says which engine served it, why.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from testkit import zoo
from testkit.processes import JSON, Server, children, functions_framework_server, gunicorn

pytestmark = [pytest.mark.integration, pytest.mark.slow]
STARTERS = {"gunicorn": gunicorn, "functions-framework": functions_framework_server}
# What serves each model under ENGINE=auto, and a part of why: nearest neighbours on features
# without a range tie far out, where their tree keeps the rows it meets first (its compiled
# form fails verification there). The trees are exact (trees.py, pandas categories too), and
# the imputers (column-transformer's of strings, the indicator), Nystroem, SVR, the target's
# transform, PolynomialFeatures and the splines are converters.py's.
SERVED_BY = {
    "random-forest": ("onnx", "verified on"),
    "gradient-boosting": ("onnx", "verified on"),
    "hist-gradient-boosting": ("onnx", "verified on"),
    "string-labels": ("onnx", "verified on"),
    "column-transformer": ("onnx", "verified on"),
    "categories": ("onnx", "verified on"),
    "booleans": ("onnx", "verified on"),
    "svc": ("onnx", "verified on"),
    "knn": ("sklearn", "predicted classes differ"),
    "forest-regressor": ("onnx", "verified on"),
    "isolation-forest": ("onnx", "verified on"),
    "k-means": ("onnx", "verified on"),
    "xgboost": ("onnx", "verified on"),
    "lightgbm": ("onnx", "verified on"),
    "xgboost-categories": ("onnx", "verified on"),
    "lightgbm-categories": ("onnx", "verified on"),
    "hist-categories": ("onnx", "verified on"),
    "none-strings": ("onnx", "verified on"),
    "kernel-map": ("onnx", "verified on"),
    "stacking": ("onnx", "verified on"),
    "splines": ("onnx", "verified on"),
    "seasons": ("onnx", "verified on"),
    "rainfall": ("onnx", "verified on"),
    "deliveries": ("sklearn", "the function 'rush_hour'"),
}
SERVINGS = [
    (model, target, engine)
    for model in zoo.BUILDERS
    for target in STARTERS
    for engine in ("auto", "sklearn")
    if engine == "auto" or SERVED_BY[model][0] == "onnx"
]


@pytest.fixture(scope="session")
def specimens(tmp_path_factory: pytest.TempPathFactory) -> dict[str, zoo.Specimen]:
    return {name: zoo.build(name, tmp_path_factory.mktemp(name)) for name in zoo.BUILDERS}


@pytest.fixture(scope="module", params=SERVINGS, ids="-".join)
def served(
    request: pytest.FixtureRequest, specimens: dict[str, zoo.Specimen]
) -> Iterator[tuple[zoo.Specimen, Server]]:
    name, target, engine = request.param
    specimen = specimens[name]
    env = {"MODEL_PATH": str(specimen.path), "WEB_CONCURRENCY": "1", "ENGINE": engine}
    server = STARTERS[target](env).start()
    yield specimen, server
    server.stop()


REFUSED = {"code": 422, "status": "Unprocessable Entity", "message": "Request failed validation."}


def engine_of(server: Server) -> dict[str, str]:
    status, _, body = server.request("GET", "/metadata")
    assert status == 200
    return json.loads(body)["engine"]  # type: ignore[no-any-return]


def post(server: Server, document: Any, query: str = "") -> tuple[int, Any]:
    body = json.dumps(document).encode()
    status, _, body = server.request("POST", f"/predict{query}", body, JSON)
    return status, json.loads(body)


def tolerance(server: Server, specimen: zoo.Specimen) -> float:
    """How far a regression output may be from scikit-learn's here, relative: the compiled
    form's accepted tolerance; scikit-learn's own answers in the server sum with another
    BLAS thread count than this process's, so their last bits may differ (1e-9, as its
    self-check allows)."""
    if engine_of(server)["name"] != "onnx":
        return 1e-9
    manifest = json.loads(specimen.path.with_suffix(".json").read_text())
    return float(manifest["compiled"].get("tolerance", 1e-6))


def same(answers: list[Any], expected: list[Any], rtol: float) -> bool:
    """Classes (and integers) identical; floats within rtol, relative."""
    return len(answers) == len(expected) and all(
        a == e if not isinstance(e, float) else math.isclose(a, e, rel_tol=rtol, abs_tol=0.0)
        for a, e in zip(answers, expected, strict=True)
    )


def test_every_row_answers_as_scikit_learn(served: tuple[zoo.Specimen, Server]) -> None:
    specimen, server = served
    expected = specimen.predict()
    rtol = tolerance(server, specimen)
    answers = [post(server, row) for row in specimen.rows]
    assert [status for status, _ in answers] == [200] * len(expected)
    assert same([document["prediction"] for _, document in answers], expected, rtol), answers
    status, document = post(server, {"instances": specimen.rows})
    assert status == 200 and same(document["predictions"], expected, rtol), document


def test_probabilities_are_scikit_learn_s(served: tuple[zoo.Specimen, Server]) -> None:
    specimen, server = served
    manifest = json.loads(specimen.path.with_suffix(".json").read_text())
    status, document = post(server, {"instances": specimen.rows}, "?probabilities=true")
    if not manifest.get("probabilities"):
        assert status == 422
        assert set(document["errors"]) == {"probabilities"}
        return
    assert status == 200
    labels = [c["label"] for c in manifest["classes"]]
    expected = specimen.predict_proba()
    answers = zip(document["predictions"], specimen.predict(), expected, strict=True)
    for answer, value, row in answers:
        assert answer["prediction"] == value and answer["label"] == str(value)
        assert list(answer["probabilities"]) == labels
        # answered to 12 decimals, within the compiled form's tolerance (relative, or 1e-6
        # absolute for a float32 form)
        rtol = tolerance(server, specimen)
        atol = 1e-11 if rtol <= 1e-9 else 1e-6
        assert np.allclose(list(answer["probabilities"].values()), row, rtol=rtol, atol=atol)


def test_bad_values_are_refused_by_name(served: tuple[zoo.Specimen, Server]) -> None:
    specimen, server = served
    manifest = json.loads(specimen.path.with_suffix(".json").read_text())
    row = specimen.rows[0]
    for feature in manifest["features"]:
        name = feature["name"]
        wrong = 1.5 if feature["type"] == "category" else "1.5"
        missing = {k: v for k, v in row.items() if k != name}
        cases = [{**row, name: wrong}, missing]
        if not feature.get("boolean"):  # a boolean feature takes true and false
            cases.append({**row, name: True})
        if not feature["nullable"]:
            cases.append({**row, name: None})
        if feature.get("categories"):
            cases.append({**row, name: "an unseen category"})
            if "" not in feature["categories"]:  # what the compiled engine takes for null
                cases.append({**row, name: ""})
        if feature.get("max") is not None:
            cases.append({**row, name: feature["max"] * 10 if feature["max"] > 0 else 1})
        for case in cases:
            status, document = post(server, case)
            assert status == 422, (case, document)
            assert set(document["errors"]) == {name}, (case, document)


def test_a_lone_surrogate_is_refused_by_name(served: tuple[zoo.Specimen, Server]) -> None:
    """A category JSON can write but Unicode cannot ("\\ud800", which no UTF-8 encoder takes,
    the compiled engine's among them): refused by name on /predict, in a batch and on V2."""
    specimen, server = served
    manifest = json.loads(specimen.path.with_suffix(".json").read_text())
    lone = "Not valid Unicode text (a lone surrogate)."
    row = specimen.rows[0]
    inputs = json.loads(server.request("GET", f"/v2/models/{specimen.name}")[2])["inputs"]
    for feature in manifest["features"]:
        name = feature["name"]
        if feature["type"] != "category":
            continue
        wrong = {**row, name: "ok\ud800"}
        assert post(server, wrong) == (422, {**REFUSED, "errors": {name: [lone]}})
        batch = {"instances": [row, wrong]}
        assert post(server, batch) == (
            422,
            {**REFUSED, "errors": {"instances": {"1": {name: [lone]}}}},
        )
        tensors = [
            {"name": i["name"], "shape": [1], "datatype": i["datatype"], "data": [wrong[i["name"]]]}
            for i in inputs
        ]
        body = json.dumps({"inputs": tensors}).encode()
        status, _, answer = server.request("POST", f"/v2/models/{specimen.name}/infer", body, JSON)
        assert (status, json.loads(answer)) == (400, {"error": f'input "{name}" row 0: {lone}'})


def test_metadata_and_readiness(served: tuple[zoo.Specimen, Server]) -> None:
    specimen, server = served
    manifest = json.loads(specimen.path.with_suffix(".json").read_text())
    status, _, body = server.request("GET", "/metadata")
    assert status == 200
    facts = json.loads(body)
    assert (facts["name"], facts["task"], facts["input"]) == (
        specimen.name,
        manifest["task"],
        manifest["input"],
    )
    assert server.request("GET", "/ready")[:3:2] == (200, b'{"status":"ready"}')


def test_the_engine_serving_it_and_why(served: tuple[zoo.Specimen, Server]) -> None:
    specimen, server = served
    engine = engine_of(server)
    if "ENGINE=sklearn" in engine["why"]:
        assert engine["name"] == "sklearn"
        return
    expected, reason = SERVED_BY[specimen.name]
    assert engine["name"] == expected
    assert reason in engine["why"], engine


def libraries(server: Server) -> set[str]:
    """The site-packages libraries mapped into the server's processes (its .so files)."""
    assert server.proc is not None
    found = set()
    for pid in [server.proc.pid, *children(server.proc.pid)]:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            _, _, path = line.partition("site-packages/")
            if path:
                found.add(path.split("/")[0])
    return found


@pytest.mark.parametrize("start", [gunicorn, functions_framework_server])
def test_pandas_is_loaded_only_for_a_model_fitted_on_a_dataframe(
    start: Any, specimens: dict[str, zoo.Specimen]
) -> None:
    """The shipped model's processes never map pandas; those of a DataFrame model scikit-learn
    serves do."""
    for model_path, needs_pandas in ((None, False), (specimens["deliveries"].path, True)):
        env = {"WEB_CONCURRENCY": "1", **({"MODEL_PATH": str(model_path)} if model_path else {})}
        server = start(env).start()
        try:
            assert post(server, {"instances": []})[0] == 422  # a request served, by a worker
            assert ("pandas" in libraries(server)) is needs_pandas
        finally:
            server.stop()


NOT_NEEDED = {"sklearn", "scipy", "scipy.libs", "pandas", "xgboost", "xgboost_cpu.libs", "lightgbm"}


@pytest.mark.parametrize("start", [gunicorn, functions_framework_server])
def test_a_compiled_model_is_served_without_scikit_learn(
    start: Any, specimens: dict[str, zoo.Specimen]
) -> None:
    """No process serving a compiled form maps scikit-learn, scipy, pandas, XGBoost or LightGBM,
    nor unpickles: the shipped model, a forest, pipelines fitted on a DataFrame with strings
    (one imputing them), and boosted trees of scikit-learn's, XGBoost's and LightGBM's (on
    pandas categories too)."""
    compiled = (
        *["random-forest", "categories", "column-transformer", "hist-gradient-boosting"],
        *["xgboost", "lightgbm", "lightgbm-categories"],
    )
    for model_path in (None, *(specimens[name].path for name in compiled)):
        env = {"WEB_CONCURRENCY": "2", **({"MODEL_PATH": str(model_path)} if model_path else {})}
        server = start(env).start()
        try:
            assert post(server, {"instances": []})[0] == 422  # a request served, by a worker
            assert server.request("GET", "/ready")[0] == 200
            assert engine_of(server)["name"] == "onnx"
            mapped = libraries(server)
            assert "onnxruntime" in mapped
            assert not mapped & NOT_NEEDED, mapped
        finally:
            server.stop()
