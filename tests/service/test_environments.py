"""Models from environments of their own, as users train them: the wheel with its [package]
extra installed beside scikit-learn 1.4 (every range of the distribution at its lowest), 1.6 and
1.8 on Python 3.11, and on Python 3.10 and 3.13. Models are trained (testkit/elsewhere.py) and
packaged there; the project's environment serves them, and so does `sklearn-serve serve` on
3.10 and 3.13, every answer what the estimator answered in its training environment. A model
that does not compile is refused in one line naming both versions, and served where its own
versions are: the function's bundle, installed from the requirements it pins. The venvs are
made with pip from the registry, under a temporary folder (pip's cache is used).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnxruntime
import pytest
import sklearn
from packaging.requirements import Requirement

from testkit.processes import BIN, JSON, ROOT, Server, gunicorn
from testkit.wheel import build_wheel, interpreter, ok, run, virtual_environment
from webapp.core.sklearn_engine import model_requirements
from webapp.extras import install_command

pytestmark = pytest.mark.integration
SLOW = pytest.mark.slow
PIP = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
# Beside the wheel's [package] extra: "lowest" pins every requirement at its range's lower bound.
TRAINED_WITH: dict[str, list[str] | str] = {
    "1.4": "lowest",
    "1.6": ["scikit-learn==1.6.1", "pandas==2.3.3"],
    "1.8": ["scikit-learn==1.8.0"],
}
COMPILED = ("iris", "churn", "prices")  # testkit/elsewhere.py's; "centroids" does not compile
SHIPPED = json.loads((ROOT / "model.json").read_text())


@dataclass
class Trained:
    """A virtual environment where a user trained and packaged testkit/elsewhere.py's models."""

    bin: Path
    models: Path
    expected: dict[str, Any]  # per model: rows, and what the estimator answered for them there


def installed(bin_dir: Path, distribution: str) -> str:
    """The version of `distribution` installed in the environment of `bin_dir`."""
    code = f"from importlib.metadata import version; print(version('{distribution}'))"
    return ok(run([bin_dir / "python", "-c", code], cwd=bin_dir)).strip()


def lowest_bounds(wheel: Path) -> list[str]:
    """Every requirement of the wheel and its [package] extra, pinned at its lower bound."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(name).decode()
    pins = []
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist: "):
            continue
        requirement = Requirement(line.removeprefix("Requires-Dist: "))
        marker = requirement.marker
        if marker is None or marker.evaluate({"extra": "package"}):
            (low,) = [s.version for s in requirement.specifier if s.operator == ">="]
            pins.append(f"{requirement.name}=={low}")
    return pins


def python(version: str) -> Path:
    found = interpreter(version)
    if found is None:
        pytest.skip(f"no Python {version} on this machine (pyenv install {version})")
    return found


def train_and_package(home: Path, bin_dir: Path, names: tuple[str, ...]) -> Trained:
    """testkit/elsewhere.py's models trained with `bin_dir`'s Python, `names` packaged there
    with `sklearn-serve package`, as a user does."""
    models = home / "models"
    models.mkdir(parents=True)
    ok(run([bin_dir / "python", ROOT / "testkit" / "elsewhere.py", models], cwd=home))
    for name in names:
        data = ["--data", "churn.csv"] if name == "churn" else []
        ok(run([bin_dir / "sklearn-serve", "package", f"{name}.pkl", *data], cwd=models))
    return Trained(bin_dir, models, json.loads((models / "expected.json").read_text()))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def trained(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    """Per scikit-learn version, its environment (Python 3.11) and the models packaged there."""
    environments = {}
    for version, requirements in TRAINED_WITH.items():
        home = tmp_path_factory.mktemp(f"scikit-learn-{version}")
        bin_dir = virtual_environment(home / "venv", python("3.11"))
        pins = lowest_bounds(wheel) if requirements == "lowest" else list(requirements)
        package = f"sklearn-serve[package] @ {wheel.as_uri()}"
        ok(run([bin_dir / "python", *PIP, *pins, package], cwd=home, timeout=900))
        environments[version] = train_and_package(home, bin_dir, (*COMPILED, "centroids"))
        assert environments[version].expected["scikit-learn"].startswith(f"{version}.")
    return environments


def assert_answers_as_trained(server: Server, expected: dict[str, Any]) -> None:
    """Every row's answer what the estimator gave in its training environment: classes
    identical, probabilities and regression outputs within the verification's tolerance."""
    query = "?probabilities=true" if "probabilities" in expected else ""
    body = json.dumps({"instances": expected["rows"]}).encode()
    status, _, answer = server.request("POST", f"/predict{query}", body, JSON)
    assert status == 200, answer
    got = json.loads(answer)["predictions"]
    if "probabilities" in expected:
        assert [p["prediction"] for p in got] == expected["predictions"]
        for served, there in zip(got, expected["probabilities"], strict=True):
            assert list(served["probabilities"].values()) == pytest.approx(there, abs=1e-6)
    elif all(isinstance(p, float) for p in expected["predictions"]):
        assert got == pytest.approx(expected["predictions"], rel=1e-6)
    else:
        assert got == expected["predictions"]


def engine(server: Server) -> dict[str, str]:
    status, _, body = server.request("GET", "/metadata")
    assert status == 200
    said: dict[str, str] = json.loads(body)["engine"]
    return said


def why_compiled(packaged_with: str, served_with: str, rows: int) -> str:
    """What /metadata says of a compiled form verified with one onnxruntime, served by one."""
    verified = f"the compiled form, verified on {rows} rows against the estimator"
    if packaged_with == served_with:
        return verified
    return (
        f"{verified} with onnxruntime {packaged_with} at packaging, re-verified here with "
        f"onnxruntime {served_with} on 2000 rows"
    )


def sklearn_serve(trained: Trained | Path, model: Path) -> Server:
    """`sklearn-serve serve MODEL` in an environment, from the model's folder."""
    bin_dir = trained.bin if isinstance(trained, Trained) else trained
    argv = [str(bin_dir / "sklearn-serve"), "serve", str(model), "--port", "{port}"]
    return Server([*argv, "--workers", "1"], cwd=model.parent, name="sklearn-serve serve")


@SLOW
@pytest.mark.parametrize("version", sorted(TRAINED_WITH))
def test_the_projects_environment_serves_them_as_they_were_trained(
    trained: dict[str, Trained], version: str
) -> None:
    there = trained[version]
    packaged_with = installed(there.bin, "onnxruntime")
    for name in COMPILED:
        manifest = json.loads((there.models / f"{name}.json").read_text())
        assert manifest["versions"]["scikit-learn"] == there.expected["scikit-learn"]
        server = gunicorn({"MODEL_PATH": str(there.models / f"{name}.pkl")}, workers=1).start()
        try:
            assert_answers_as_trained(server, there.expected[name])
            rows = manifest["compiled"]["verification"]["rows"]
            why = why_compiled(packaged_with, onnxruntime.__version__, rows)
            assert engine(server) == {"name": "onnx", "why": why}
        finally:
            assert server.stop() == 0, server.output()


@SLOW
@pytest.mark.parametrize("version", sorted(TRAINED_WITH))
def test_a_model_that_does_not_compile_is_refused_in_one_line(
    trained: dict[str, Trained], version: str
) -> None:
    there = trained[version]
    model = there.models / "centroids.pkl"
    manifest = json.loads(model.with_suffix(".json").read_text())
    assert "file" not in manifest["compiled"], "nearest centroids compile now: pick another model"
    refused = run([BIN / "python", "-m", "webapp", "check", model], ROOT)
    assert (refused.returncode, refused.stdout) == (1, "")
    pins = " ".join(model_requirements(manifest))
    assert refused.stderr == (
        f"sklearn-serve check: {model} was trained with scikit-learn "
        f"{there.expected['scikit-learn']}, this environment has {sklearn.__version__}: serve it "
        f"where its own versions are installed: pip install {pins}; the image: docker build "
        f'--build-arg MODEL_REQUIREMENTS="{pins}"; the function: `sklearn-serve bundle` pins '
        "them (docs/models.md)\n"
    )
    assert pins.startswith(f"scikit-learn=={there.expected['scikit-learn']} numpy==")


@SLOW
@pytest.mark.parametrize("version", sorted(TRAINED_WITH))
def test_packaging_where_another_scikit_learn_is_installed_is_refused_in_one_line(
    trained: dict[str, Trained], version: str, tmp_path: Path
) -> None:
    """Not a page of InconsistentVersionWarnings and then whatever unpickling meets."""
    there = trained[version]
    pickle = tmp_path / "churn.pkl"
    pickle.write_bytes((there.models / "churn.pkl").read_bytes())
    command: list[str | Path] = [BIN / "python", "-m", "webapp", "package", pickle]
    refused = run(command, tmp_path, env={"PYTHONPATH": str(ROOT)})
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        f"cannot package {pickle}: {pickle} was pickled by scikit-learn "
        f"{there.expected['scikit-learn']}, this environment has {sklearn.__version__}: "
        f"package it where it was trained, keeping its scikit-learn: {install_command('package')} "
        f"scikit-learn=={there.expected['scikit-learn']} there (docs/models.md)\n"
    )


@SLOW
def test_its_bundle_serves_it_with_the_versions_it_was_trained_with(
    trained: dict[str, Trained], tmp_path: Path
) -> None:
    """The function's upload, from the clone: the repository's pins but the model's own
    scikit-learn, numpy, scipy and pandas; installed from them into a fresh environment, its
    function answers as the estimator did where it was trained."""
    there = trained["1.4"]
    bundle = tmp_path / "function"
    command: list[str | Path] = [BIN / "python", "-m", "webapp", "bundle"]
    ok(run([*command, there.models / "centroids.pkl", "--out", bundle], cwd=ROOT))
    manifest = json.loads((bundle / "model.json").read_text())
    pinned = set((bundle / "requirements.txt").read_text().splitlines())
    repository = set((ROOT / "requirements.txt").read_text().splitlines())
    assert pinned - repository == set(model_requirements(manifest))

    bin_dir = virtual_environment(tmp_path / "venv", python("3.11"))
    requirements = bundle / "requirements.txt"
    ok(run([bin_dir / "python", *PIP, "-r", requirements], cwd=tmp_path, timeout=900))
    argv = [str(bin_dir / "functions-framework"), "--target", "predict"]
    server = Server([*argv, "--host", "127.0.0.1", "--port", "{port}"], cwd=bundle).start()
    try:
        assert_answers_as_trained(server, there.expected["centroids"])
        said = engine(server)
        assert said["name"] == "sklearn" and "has no compiled form" in said["why"]
    finally:
        assert server.stop() == 0, server.output()


@SLOW
@pytest.mark.parametrize("version", ["3.10", "3.13"])
def test_sklearn_serve_on_python(
    version: str, wheel: Path, trained: dict[str, Trained], tmp_path: Path
) -> None:
    """The base install serves the shipped model (verified again under the onnxruntime this
    Python gets) and a model packaged with scikit-learn 1.4; with [package], a model trained
    and packaged on this Python."""
    bin_dir = virtual_environment(tmp_path / "venv", python(version))
    ok(run([bin_dir / "python", *PIP, wheel], cwd=tmp_path, timeout=900))
    here = installed(bin_dir, "onnxruntime")
    absent = "import importlib.util as u; print([m for m in ('sklearn', 'scipy', 'pandas') "
    absent += "if u.find_spec(m)])"  # the base install: onnxruntime serves, nothing else
    assert ok(run([bin_dir / "python", "-c", absent], cwd=tmp_path)).strip() == "[]"

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name in ("model.pkl", "model.json", "model.onnx", "model.verification.json"):
        (shipped / name).write_bytes((ROOT / name).read_bytes())
    estimator = joblib.load(ROOT / "model.pkl")  # where the shipped model was trained
    rows = np.random.default_rng(0).uniform(0.1, 8.0, (50, 4)).round(1)
    expected = {
        "rows": rows.tolist(),
        "predictions": estimator.predict(rows).tolist(),
        "probabilities": estimator.predict_proba(rows).tolist(),
    }
    elsewhere = trained["1.4"]
    for model, answers in (
        (shipped / "model.pkl", expected),
        (elsewhere.models / "churn.pkl", elsewhere.expected["churn"]),
    ):
        compiled = json.loads(model.with_suffix(".json").read_text())["compiled"]
        server = sklearn_serve(bin_dir, model).start(deadline=60)
        try:
            assert_answers_as_trained(server, answers)
            recorded = compiled["versions"]["onnxruntime"]
            why = why_compiled(recorded, here, compiled["verification"]["rows"])
            assert engine(server) == {"name": "onnx", "why": why}
        finally:
            assert server.stop() == 0, server.output()

    ok(run([bin_dir / "python", *PIP, f"sklearn-serve[package] @ {wheel.as_uri()}"], tmp_path))
    mine = train_and_package(tmp_path / "mine", bin_dir, ("churn",))
    server = sklearn_serve(mine, mine.models / "churn.pkl").start(deadline=60)
    try:
        assert_answers_as_trained(server, mine.expected["churn"])
        assert engine(server)["name"] == "onnx"
    finally:
        assert server.stop() == 0, server.output()


def test_make_finds_python_3_11_whatever_python3_is(tmp_path: Path) -> None:
    """make's venv comes from a Python 3.11 where `python3` is another (pyenv's 3.13, here);
    a PYTHON that is not 3.11 is refused in one line, before anything is made."""
    (tmp_path / "Makefile").write_bytes((ROOT / "Makefile").read_bytes())
    other = str(python("3.13"))
    env = {"PYENV_VERSION": Path(other).parent.parent.name}  # what pyenv's python3 runs
    planned = ok(run(["make", "-n", ".venv/bin/python"], tmp_path, env=env)).splitlines()
    (venv_line,) = [line for line in planned if line.endswith(" -m venv .venv")]
    chosen = venv_line.removesuffix(" -m venv .venv")
    said = ok(run([chosen, "-c", "import sys; print(sys.version_info[:2])"], tmp_path))
    assert said.strip() == "(3, 11)"
    refused = run(["make", ".venv/bin/python", f"PYTHON={other}"], tmp_path, env=env)
    assert refused.returncode == 2 and not (tmp_path / ".venv").exists()
    assert refused.stderr.splitlines()[0] == (
        "make: no Python 3.11 (requirements.txt pins for it): install it, or "
        "PYTHON=/path/to/python3.11"
    )
