"""Training: held-out quality, a complete manifest, and a reproducible committed artifact."""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path

import joblib
import numpy as np
import pandas
import pytest
import scipy
import sklearn
from sklearn.datasets import load_iris, load_wine

import train
from testkit.processes import ROOT
from webapp.core.model import load_model, sha256_hex

pytestmark = pytest.mark.unit


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[name.strip()] = version.strip()
    return pins


def test_held_out_accuracy(iris_model: Path) -> None:
    manifest = json.loads(iris_model.with_suffix(".json").read_text())
    assert manifest["metrics"]["accuracy"] >= 0.93
    assert manifest["metrics"]["test_rows"] == 30


def test_manifest_describes_the_artifact(iris_model: Path) -> None:
    manifest = json.loads(iris_model.with_suffix(".json").read_text())
    assert [f["name"] for f in manifest["features"]] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert (manifest["format"], manifest["task"], manifest["input"]) == (
        2,
        "classification",
        "array",
    )
    for feature in manifest["features"]:
        assert (feature["type"], feature["nullable"], feature["unit"]) == ("number", False, "cm")
        assert (feature["min"], feature["min_inclusive"]) == (0, False)
        assert (feature["max"], feature["max_inclusive"]) == (100, True)
        assert 0 < feature["train_min"] < feature["train_max"] < 100
    assert manifest["classes"] == [
        {"value": 0, "label": "setosa"},
        {"value": 1, "label": "versicolor"},
        {"value": 2, "label": "virginica"},
    ]
    assert manifest["probabilities"] is True
    assert manifest["artifact"]["sha256"] == sha256_hex(iris_model.read_bytes())
    assert manifest["versions"] == {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pandas.__version__,
        "joblib": joblib.__version__,
    }


def test_manifest_versions_agree_with_requirements() -> None:
    versions = json.loads((ROOT / "model.json").read_text())["versions"]
    pins = requirement_pins()
    for package in ("scikit-learn", "numpy", "scipy", "pandas", "joblib"):
        assert versions[package] == pins[package], package


# Retraining on another CPU or BLAS kernel sums in another order: across OpenBLAS's kernels
# (OPENBLAS_CORETYPE Haswell, SkylakeX, Sandybridge, Prescott, Zen...) the probabilities moved by
# at most 3.3e-14 on the Iris rows and 2.5e-12 on the box below. A real change to training moves
# them by 3e-4 or more (C=0.999, tol=1e-5, one L-BFGS iteration fewer). 1e-9 sits between.
PROBABILITY_TOLERANCE = 1e-9


def test_committed_artifact_is_what_training_produces(iris_model: Path) -> None:
    """Retraining with the pinned requirements gives the committed model's every prediction,
    and its probabilities up to the last bits that the BLAS kernel decides."""
    committed = load_model(ROOT / "model.pkl", engine="sklearn")
    retrained = load_model(iris_model, engine="sklearn")
    box = np.random.default_rng(0).uniform(0.01, 100, size=(100_000, 4))
    for X in (load_iris().data, box):
        assert committed.predict(X) == retrained.predict(X)
        np.testing.assert_allclose(
            retrained.engine.predict_proba(X),
            committed.engine.predict_proba(X),
            rtol=0,
            atol=PROBABILITY_TOLERANCE,
        )


def test_training_twice_gives_identical_bytes(iris_model: Path, tmp_path: Path) -> None:
    again = tmp_path / "model.pkl"
    train.main(["--output", str(again)])
    assert again.read_bytes() == iris_model.read_bytes()


def test_wine_manifest(wine_model: Path) -> None:
    manifest = json.loads(wine_model.with_suffix(".json").read_text())
    assert [f["name"] for f in manifest["features"]] == load_wine().feature_names
    assert len(manifest["classes"]) == 3
    assert manifest["metrics"]["accuracy"] >= 0.9


def test_unknown_dataset_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        train.main(["--dataset", "mnist"])
    assert "invalid choice" in capsys.readouterr().err


def test_every_requirement_is_pinned_exactly() -> None:
    """The supply chain is what the files name: each package at one exact version."""
    for name in ("requirements.txt", "requirements-package.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r "):
                assert re.fullmatch(r"[A-Za-z0-9._-]+(\[[a-z,]+\])?==[0-9][0-9A-Za-z.+-]*", line), (
                    line
                )


def test_the_distributions_ranges_admit_the_pins() -> None:
    """pyproject.toml's ranges, for a pip install, hold the exact versions make and the image
    install: every requirement and extra names a pinned package and admits its pin."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for name in ("requirements.txt", "requirements-package.txt"):
        for line in (ROOT / name).read_text().splitlines():
            match = re.match(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==(\S+)", line)
            if match:
                pins[canonicalize_name(match[1])] = match[2]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = [*project["dependencies"], *sum(project["optional-dependencies"].values(), [])]
    for requirement in map(Requirement, texts):
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement.name} is not pinned in requirements*.txt"
        assert requirement.specifier.contains(pin), f"{requirement} does not admit {pin}"
