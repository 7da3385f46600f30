"""The installable distribution, as a pip user gets it: the wheel built from the repository,
installed into a fresh virtual environment outside the clone, used from folders of its own.

The base install serves a compiled model with no scikit-learn, scipy or pandas present; with
[package] and [function] it packages a model of its own, checks it, serves it with gunicorn and
as the function, and writes the function's upload. Every answer is compared with the
estimator's own. The versions installed are held to the repository's pins (a constraints
file), so the resolver also proves that the ranges in pyproject.toml admit them.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from testkit.processes import ROOT, Server
from testkit.samples import ROWS
from testkit.wheel import build_wheel, ok, repository_pins, run, virtual_environment

pytestmark = [pytest.mark.integration, pytest.mark.slow]
JSON = {"Content-Type": "application/json"}
PIN_LINE = re.compile(r"^MODEL_SHA256=([0-9a-f]{64})$", re.M)


def folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment outside the clone, and a constraints file of the pins."""
    home = tmp_path_factory.mktemp("installed")
    virtual_environment(home / "venv")
    (home / "constraints.txt").write_text("\n".join(repository_pins()) + "\n")
    return home


def test_the_wheel_holds_the_package_and_the_command(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"webapp"}
    for module in ("cli.py", "wsgi.py", "gcf/main.py", "server/gunicorn_config.py"):
        assert f"webapp/{module}" in names
    assert "sklearn-serve = webapp.cli:main" in scripts
    assert not [n for n in names if n.endswith((".pkl", ".onnx", ".pyc"))]


def canonical(requirement: str) -> str:
    """name==version with the name as PEP 503 spells it (pip freeze keeps the project's)."""
    name, _, version = requirement.partition("==")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"


def test_a_pip_user_packages_checks_serves_and_bundles_a_model(
    wheel: Path, environment: Path
) -> None:
    bin_dir = environment / "venv" / "bin"
    command = bin_dir / "sklearn-serve"
    constraints = environment / "constraints.txt"
    elsewhere = folder(environment / "elsewhere")  # where the user runs the command from
    pip = [bin_dir / "python", "-m", "pip", "install", "--quiet", "-c", constraints]

    # The base install: the server and onnxruntime, no scikit-learn, scipy or pandas.
    ok(run([*pip, wheel], cwd=elsewhere))
    missing = "import importlib.util as u; print([m for m in ('sklearn', 'scipy', 'pandas', "
    missing += "'skl2onnx', 'functions_framework') if u.find_spec(m)])"
    assert ok(run([bin_dir / "python", "-c", missing], cwd=elsewhere)).strip() == "[]"
    where = ok(run([bin_dir / "python", "-c", "import webapp; print(webapp.__file__)"], elsewhere))
    assert where.startswith(str(environment / "venv" / "lib"))
    for sub in ("", "package", "check", "serve", "function", "bundle", "deploy", "deploy vertex"):
        assert "usage: sklearn-serve" in ok(run([command, *sub.split(), "--help"], elsewhere))

    shipped = folder(environment / "shipped")
    for suffix in (".pkl", ".json", ".onnx", ".verification.json"):
        shutil.copy(ROOT / f"model{suffix}", shipped / f"model{suffix}")
    said = ok(run([command, "check", shipped], cwd=elsewhere))
    assert "served here by onnx" in said
    (pin,) = PIN_LINE.findall(said)
    estimator = joblib.load(ROOT / "model.pkl")  # scikit-learn's answers, in this process
    rows = np.array(ROWS)
    server = Server(
        [str(command), "serve", str(shipped / "model.pkl"), "--port", "{port}", "--workers", "1"]
        + ["--sha256", pin],
        cwd=elsewhere,
        name="sklearn-serve serve (base install)",
    ).start()
    try:
        body = json.dumps({"instances": list(map(list, ROWS))}).encode()
        status, _, answer = server.request("POST", "/predict?probabilities=true", body, JSON)
        assert status == 200
        predictions = json.loads(answer)["predictions"]
        assert [p["prediction"] for p in predictions] == estimator.predict(rows).tolist()
        probabilities = estimator.predict_proba(rows)
        for got, expected in zip(predictions, probabilities, strict=True):
            assert list(got["probabilities"].values()) == pytest.approx(expected, abs=1e-6)
        engine = json.loads(server.request("GET", "/metadata")[2])["engine"]["name"]
        assert engine == "onnx"
    finally:
        assert server.stop() == 0, server.output()

    # A model with no compiled form needs the fallback engine, which the base install lacks.
    uncompiled = folder(environment / "uncompiled")
    for suffix in (".pkl", ".verification.json"):
        shutil.copy(shipped / f"model{suffix}", uncompiled / f"model{suffix}")
    manifest = json.loads((shipped / "model.json").read_text())
    manifest["compiled"] = {"error": "not compiled"}
    (uncompiled / "model.json").write_text(json.dumps(manifest))
    refused = run([command, "check", uncompiled / "model.pkl"], cwd=elsewhere)
    assert refused.returncode == 1 and refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1
    # It says how to add that engine to this install, made from the wheel, not from an index
    # (which has no sklearn-serve here); what it says works.
    advice = shlex.split(refused.stderr[refused.stderr.rindex(": pip install ") + 2 :])
    assert advice == ["pip", "install", f"{wheel}[sklearn]"]
    ok(run([*pip, *advice[2:]], cwd=elsewhere))
    ok(run([command, "check", uncompiled / "model.pkl"], cwd=elsewhere))

    # With [package] and [function]: a model of the user's own, in a folder of its own.
    ok(run([*pip, f"sklearn-serve[package,function] @ {wheel.as_uri()}"], cwd=elsewhere))
    mine = folder(environment / "mine")
    shutil.copy(ROOT / "docs" / "examples" / "churn.py", mine / "train.py")
    ok(run([bin_dir / "python", "train.py", "."], cwd=mine))
    packaged = ok(
        run([command, "package", "model.pkl", "--data", "customers.csv"], cwd=mine)
    )  # named after its folder: "mine"
    (pin,) = PIN_LINE.findall(packaged)
    assert packaged.splitlines()[-1] == f"MODEL_SHA256={pin}"
    said = ok(run([command, "check", mine, "--sha256", pin], cwd=elsewhere))
    assert PIN_LINE.findall(said) == [pin] and "verified model.json, model.pkl" in said

    table = pd.read_csv(mine / "customers.csv").drop(columns=["churned"]).head(40)
    instances = json.loads(table.to_json(orient="records"))
    expected = joblib.load(mine / "model.pkl").predict(table).tolist()
    body = json.dumps({"instances": instances}).encode()
    servers = [
        Server(
            [str(command), "serve", str(mine / "model.pkl"), "--port", "{port}", "--workers", "1"],
            cwd=elsewhere,
            name="sklearn-serve serve",
        ),
        Server(
            [str(command), "function", str(mine / "model.pkl"), "--port", "{port}"],
            cwd=elsewhere,
            name="sklearn-serve function",
        ),
    ]
    for server in servers:
        server.start(deadline=60)
        try:
            status, _, answer = server.request("POST", "/predict", body, JSON)
            assert (status, json.loads(answer)) == (200, {"predictions": expected})
            status, _, answer = server.request("GET", "/v1/models/mine")
            assert (status, json.loads(answer)) == (200, {"name": "mine", "ready": True})
        finally:
            assert server.stop() == 0, server.output()

    bundle = environment / "bundle"
    listed = ok(run([command, "bundle", mine, "--out", bundle], cwd=elsewhere))
    assert PIN_LINE.findall(listed) == [pin]
    requirements = (bundle / "requirements.txt").read_text().split()
    frozen = ok(run([bin_dir / "python", "-m", "pip", "freeze"], cwd=elsewhere)).split()
    installed = {canonical(line) for line in frozen if "==" in line}
    assert set(requirements) <= set(installed)  # this environment's versions, checked here
    names = {line.partition("==")[0] for line in requirements}
    assert {"functions-framework", "onnxruntime", "flask"} <= names
    assert not names & {"sklearn-serve", "skl2onnx", "onnx"}  # served from source; packaging
    assert not names & {"scikit-learn", "pandas"}  # its compiled form serves it
    assert (bundle / "main.py").read_bytes() == (ROOT / "webapp" / "gcf" / "main.py").read_bytes()

    # A model only scikit-learn serves (no compiled form, no rows to verify one): its upload
    # installs scikit-learn too, at the version it was packaged with, and a library its pickle
    # imports (as packaging records XGBoost's), which the distribution does not require.
    fallback = folder(environment / "fallback")
    shutil.copy(shipped / "model.pkl", fallback / "model.pkl")
    manifest = json.loads((shipped / "model.json").read_text())
    manifest["compiled"] = {"error": "not compiled"}
    manifest["versions"]["xgboost"] = "2.1.4"
    del manifest["verification"]
    (fallback / "model.json").write_text(json.dumps(manifest))
    ok(run([command, "bundle", fallback, "--out", environment / "fallback-bundle"], elsewhere))
    requirements = (environment / "fallback-bundle" / "requirements.txt").read_text().split()
    assert f"scikit-learn=={manifest['versions']['scikit-learn']}" in requirements
    assert "xgboost==2.1.4" in requirements
    assert {"functions-framework", "onnxruntime", "flask"} <= {
        line.partition("==")[0] for line in requirements
    }
