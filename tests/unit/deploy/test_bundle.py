"""The function's upload: its requirements pin what serves the model there, the model's own
scikit-learn where only scikit-learn can serve it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testkit.processes import ROOT
from webapp.deploy.bundle import build, with_versions

pytestmark = pytest.mark.unit
PINS = (ROOT / "requirements.txt").read_text()
ELSEWHERE = {"scikit-learn": "1.4.2", "numpy": "1.26.4", "scipy": "1.11.4", "pandas": "2.2.3"}


def rewrite(artifact: Path, change: Any) -> None:
    path = artifact.with_suffix(".json")
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def trained_elsewhere(manifest: dict[str, Any]) -> None:
    manifest["versions"].update(ELSEWHERE)


def requirements(artifact: Path, folder: Path) -> str:
    build(folder, artifact)
    return (folder / "requirements.txt").read_text()


def test_a_compiled_model_gets_the_repositorys_pins(artifact: Path, tmp_path: Path) -> None:
    rewrite(artifact, trained_elsewhere)  # the compiled form serves, whatever trained it
    assert requirements(artifact, tmp_path / "bundle") == PINS
    assert (tmp_path / "bundle" / "model.verification.json").read_bytes() == (
        artifact.parent / "model.verification.json"
    ).read_bytes()


def test_a_model_only_scikit_learn_serves_gets_its_own_versions(
    artifact: Path, tmp_path: Path
) -> None:
    def uncompiled(manifest: dict[str, Any]) -> None:
        trained_elsewhere(manifest)
        manifest["compiled"] = {"error": "no converter"}
        del manifest["verification"]

    rewrite(artifact, uncompiled)
    written = requirements(artifact, tmp_path / "bundle").splitlines()
    changed = {line for line in written if line not in PINS.splitlines()}
    assert changed == {"scikit-learn==1.4.2", "numpy==1.26.4", "scipy==1.11.4", "pandas==2.2.3"}
    assert len(written) == len(PINS.splitlines())  # in place of the repository's, no more
    assert not (tmp_path / "bundle" / "model.onnx").exists()


def test_a_library_the_models_pickle_needs_is_pinned_too(artifact: Path, tmp_path: Path) -> None:
    """A library the repository does not pin (xgboost, recorded in the manifest's versions
    where the pickle imports it) comes after the repository's pins."""

    def with_xgboost(manifest: dict[str, Any]) -> None:
        manifest["versions"]["xgboost"] = "2.1.4"
        manifest["compiled"] = {"error": "the gblinear booster"}
        del manifest["verification"]

    rewrite(artifact, with_xgboost)
    written = requirements(artifact, tmp_path / "bundle").splitlines()
    assert written[-1] == "xgboost==2.1.4"
    assert written[:-1] == PINS.splitlines()


def test_another_onnxruntimes_form_is_tried_here_first(artifact: Path, tmp_path: Path) -> None:
    """Verified again here, under the onnxruntime the bundle pins: it serves there, so the
    repository's pins; one that fails here would leave only scikit-learn."""

    def verified_with_another(manifest: dict[str, Any]) -> None:
        trained_elsewhere(manifest)
        manifest["compiled"]["versions"]["onnxruntime"] = "1.0.0"

    rewrite(artifact, verified_with_another)
    assert requirements(artifact, tmp_path / "passes") == PINS

    def without_rows(manifest: dict[str, Any]) -> None:
        del manifest["verification"]

    rewrite(artifact, without_rows)
    assert "scikit-learn==1.4.2" in requirements(artifact, tmp_path / "fails").splitlines()


def test_versions_take_their_names_place_or_come_last() -> None:
    text = "# pins\nnumpy==2.4.6\nscikit-learn==1.9.1\n"
    assert with_versions(text, ["scikit-learn==1.4.2", "pandas==2.2.3"]) == (
        "# pins\nnumpy==2.4.6\nscikit-learn==1.4.2\npandas==2.2.3\n"
    )
