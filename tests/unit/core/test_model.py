"""Loading the artifact: every way it can be wrong stops the load with one clear message."""

from __future__ import annotations

import importlib.abc
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
import onnxruntime
import pytest
import sklearn.base

import train
from webapp.core.model import load_model, sha256_hex
from webapp.core.vocabulary import ArtifactError

pytestmark = pytest.mark.unit


def rewrite_manifest(path: Path, **changes: object) -> None:
    manifest_path = path.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    manifest.update(changes)
    manifest_path.write_text(json.dumps(manifest))


def test_loads_and_predicts(artifact: Path) -> None:
    for engine in ("auto", "onnx", "sklearn"):
        model = load_model(artifact, engine=engine)
        assert model.predict(np.array([[5.1, 3.5, 1.4, 0.2]])) == [0]
        assert model.sha256 == sha256_hex(artifact.with_suffix(".json").read_bytes())
        assert model.engine.name == ("sklearn" if engine == "sklearn" else "onnx")
        model.self_check()


def test_pin_covers_the_manifest(artifact: Path) -> None:
    """MODEL_SHA256 is the manifest's sha256; a pin of the pickle's says what changed."""
    manifest = sha256_hex(artifact.with_suffix(".json").read_bytes())
    assert load_model(artifact, manifest).sha256 == manifest
    with pytest.raises(ArtifactError, match="that is model.pkl's: MODEL_SHA256 now pins"):
        load_model(artifact, sha256_hex(artifact.read_bytes()))


def test_tampered_compiled_form_stops_the_load(artifact: Path) -> None:
    compiled = artifact.with_suffix(".onnx")
    data = bytearray(compiled.read_bytes())
    data[-5] ^= 0x01
    compiled.write_bytes(bytes(data))
    for engine in ("auto", "onnx"):
        with pytest.raises(ArtifactError, match="model.onnx has sha256 .* the manifest records"):
            load_model(artifact, engine=engine)
    assert load_model(artifact, engine="sklearn").engine.name == "sklearn"  # never reads it


def test_missing_compiled_form_stops_the_load(artifact: Path) -> None:
    artifact.with_suffix(".onnx").unlink()
    with pytest.raises(ArtifactError, match="cannot read .*model.onnx"):
        load_model(artifact)


def pretend_verified_with(artifact: Path, version: str, **changes: object) -> None:
    """The manifest as packaging under onnxruntime `version` would have written it."""
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    manifest["compiled"]["versions"]["onnxruntime"] = version
    rewrite_manifest(artifact, compiled=manifest["compiled"], **changes)


def rewrite_rows(artifact: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """The verification rows changed, and recorded as they now are, as a packaging tool
    that wrote them so would record them."""
    path = artifact.parent / "model.verification.json"
    rows = json.loads(path.read_text())
    change(rows)
    path.write_text(json.dumps(rows))
    entry = json.loads(artifact.with_suffix(".json").read_text())["verification"]
    data = path.read_bytes()
    entry.update(sha256=sha256_hex(data), size=len(data))
    rewrite_manifest(artifact, verification=entry)


def test_compiled_under_another_onnxruntime_is_verified_again(artifact: Path) -> None:
    """Served once it answers the rows kept with the model as the estimator did, saying so."""
    pretend_verified_with(artifact, "1.0.0")
    for engine in ("auto", "onnx"):
        model = load_model(artifact, engine=engine)
        assert model.engine.name == "onnx"
        assert model.why == (
            "the compiled form, verified on 100137 rows against the estimator with onnxruntime "
            f"1.0.0 at packaging, re-verified here with onnxruntime {onnxruntime.__version__} "
            "on 2000 rows"
        )
        assert model.predict(np.array([[5.1, 3.5, 1.4, 0.2]])) == [0]
        model.self_check()


def test_compiled_form_that_answers_otherwise_is_not_served(artifact: Path) -> None:
    """One recorded class changed: the form no longer agrees with the record, so scikit-learn
    serves it (auto), or the boot stops (onnx)."""

    def one_class_changed(rows: dict[str, Any]) -> None:
        rows["predictions"][7] = (rows["predictions"][7] + 1) % 3

    rewrite_rows(artifact, one_class_changed)
    pretend_verified_with(artifact, "1.0.0")
    model = load_model(artifact)
    assert model.engine.name == "sklearn"
    assert model.why == (
        "the compiled form, verified with onnxruntime 1.0.0, does not answer as the estimator "
        f"with onnxruntime {onnxruntime.__version__} here: 1 of 2000 predicted classes differ"
    )
    with pytest.raises(ArtifactError, match="ENGINE=onnx, but the compiled form, verified wi"):
        load_model(artifact, engine="onnx")


def test_probabilities_are_verified_again_too(artifact: Path) -> None:
    def one_probability_moved(rows: dict[str, Any]) -> None:
        rows["probabilities"][3][0] += 2e-6

    rewrite_rows(artifact, one_probability_moved)
    pretend_verified_with(artifact, "1.0.0")
    assert "probabilities differ by up to" in load_model(artifact).why
    rewrite_rows(artifact, one_probability_moved)  # no more than the tolerance recorded
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    loose = 1.0  # relative: any probability within it
    rewrite_manifest(artifact, verification={**manifest["verification"], "tolerance": loose})
    assert load_model(artifact).engine.name == "onnx"


def test_the_rows_are_read_only_where_another_onnxruntime_serves(artifact: Path) -> None:
    rows = artifact.parent / "model.verification.json"
    rows.write_bytes(rows.read_bytes().replace(b'"predictions":[', b'"predictions":[ '))
    assert load_model(artifact).engine.name == "onnx"  # the same onnxruntime: not read
    pretend_verified_with(artifact, "1.0.0")
    with pytest.raises(ArtifactError, match="model.verification.json has sha256 .* records"):
        load_model(artifact)
    rows.unlink()
    with pytest.raises(ArtifactError, match="cannot read .*model.verification.json"):
        load_model(artifact)


def test_compiled_under_another_onnxruntime_without_rows_is_not_served(artifact: Path) -> None:
    """A manifest written before the rows were kept: never served blindly."""
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    del manifest["verification"]
    artifact.with_suffix(".json").write_text(json.dumps(manifest))
    pretend_verified_with(artifact, "1.0.0")
    model = load_model(artifact)
    assert model.engine.name == "sklearn"
    assert model.why == (
        "the compiled form was verified with onnxruntime 1.0.0, this environment has "
        f"{onnxruntime.__version__}, and the model records no rows to verify it with here: "
        "package the model again"
    )
    with pytest.raises(ArtifactError, match="ENGINE=onnx, but .*onnxruntime 1.0.0"):
        load_model(artifact, engine="onnx")


def test_a_refused_fallback_says_why_the_compiled_form_did_not_serve(artifact: Path) -> None:
    """One line: why scikit-learn cannot serve it here, and why its compiled form did not."""
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    del manifest["verification"]
    manifest["versions"]["scikit-learn"] = "1.4.2"
    artifact.with_suffix(".json").write_text(json.dumps(manifest))
    pretend_verified_with(artifact, "1.0.0")
    with pytest.raises(ArtifactError) as refused:
        load_model(artifact)
    said = str(refused.value)
    assert said.startswith(f"{artifact} was trained with scikit-learn 1.4.2, this environment has ")
    assert said.endswith(
        "(docs/models.md) (the compiled form was verified with onnxruntime 1.0.0, this "
        f"environment has {onnxruntime.__version__}, and the model records no rows to verify it "
        "with here: package the model again)"
    )
    assert "\n" not in said


def test_a_graph_this_onnxruntime_cannot_load_falls_back(artifact: Path) -> None:
    """An opset newer than this onnxruntime knows, as an older one meets a newer graph."""
    graph = onnx.load(artifact.with_suffix(".onnx"))
    for opset in graph.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = 99
    data = graph.SerializeToString()
    artifact.with_suffix(".onnx").write_bytes(data)
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    rewrite_manifest(artifact, compiled={**manifest["compiled"], "sha256": sha256_hex(data)})
    pretend_verified_with(artifact, "99.0.0")
    model = load_model(artifact)
    assert model.engine.name == "sklearn"
    assert model.why.startswith(
        "the compiled form, verified with onnxruntime 99.0.0, does not load with onnxruntime "
        f"{onnxruntime.__version__} here (onnxruntime cannot load the compiled model: "
    )
    assert "\n" not in model.why


def test_model_without_compiled_form_is_served_by_scikit_learn(artifact: Path) -> None:
    rewrite_manifest(artifact, compiled={"error": "skl2onnx cannot convert it"})
    model = load_model(artifact)
    assert model.engine.name == "sklearn"
    assert "no compiled form (skl2onnx cannot convert it)" in model.why
    assert model.describe()["engine"] == {"name": "sklearn", "why": model.why}
    with pytest.raises(ArtifactError, match="ENGINE=onnx, but the model has no compiled form"):
        load_model(artifact, engine="onnx")


def test_missing_artifact(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="cannot read"):
        load_model(tmp_path / "model.pkl")


def test_missing_manifest(artifact: Path) -> None:
    artifact.with_suffix(".json").unlink()
    with pytest.raises(ArtifactError, match="cannot read .*model.json"):
        load_model(artifact)


def test_unreadable_artifact(artifact: Path) -> None:
    artifact.unlink()
    artifact.mkdir()
    with pytest.raises(ArtifactError, match="cannot read"):
        load_model(artifact, engine="sklearn")


def test_tampered_artifact(artifact: Path) -> None:
    data = bytearray(artifact.read_bytes())
    data[-10] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="the manifest records"):
        load_model(artifact, engine="sklearn")


def test_mis_pinned_artifact(artifact: Path) -> None:
    with pytest.raises(ArtifactError, match="MODEL_SHA256 pins"):
        load_model(artifact, "0" * 64)


def test_corrupt_artifact_with_matching_manifest(artifact: Path) -> None:
    """A sidecar rewritten to match garbage: the hash passes, unpickling fails cleanly."""
    artifact.write_bytes(b"\x80\x05 this is not a pickle")
    rewrite_manifest(
        artifact, artifact={"file": "model.pkl", "sha256": sha256_hex(artifact.read_bytes())}
    )
    with pytest.raises(ArtifactError, match="cannot be unpickled"):
        load_model(artifact, engine="sklearn")


def test_manifest_not_json(artifact: Path) -> None:
    artifact.with_suffix(".json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_model(artifact)


def test_manifest_from_another_sklearn(artifact: Path) -> None:
    """Refused before unpickling, in one line: both versions, and what to do."""
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    elsewhere = {"scikit-learn": "1.4.2", "numpy": "1.26.4", "scipy": "1.11.4", "pandas": "2.2.3"}
    rewrite_manifest(artifact, versions={**manifest["versions"], **elsewhere})
    with pytest.raises(ArtifactError) as refused:
        load_model(artifact, engine="sklearn")
    pins = "scikit-learn==1.4.2 numpy==1.26.4 scipy==1.11.4 pandas==2.2.3"
    assert str(refused.value) == (
        f"{artifact} was trained with scikit-learn 1.4.2, this environment has "
        f"{sklearn.__version__}: serve it where its own versions are installed: pip install "
        f'{pins}; the image: docker build --build-arg MODEL_REQUIREMENTS="{pins}"; the '
        "function: `sklearn-serve bundle` pins them (docs/models.md)"
    )


def test_a_model_packaged_on_another_python_is_to_be_served_on_that_one(artifact: Path) -> None:
    """Its versions may not install on the image's Python (numpy 2.5 needs 3.12 or later): the
    advice names the Python it was packaged on, and the image's base for it."""
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    elsewhere = {"scikit-learn": "1.5.2", "numpy": "2.5.5", "python": "3.12.1"}
    rewrite_manifest(artifact, versions={**manifest["versions"], **elsewhere})
    with pytest.raises(ArtifactError) as refused:
        load_model(artifact, engine="sklearn")
    pins = f"scikit-learn==1.5.2 numpy==2.5.5 scipy=={manifest['versions']['scipy']}"
    assert str(refused.value).startswith(
        f"{artifact} was trained with scikit-learn 1.5.2, this environment has "
        f"{sklearn.__version__}: serve it where its own versions are installed, on Python 3.12 "
        f"as it was packaged (they may not install on another): pip install {pins}"
    )
    assert "--build-arg BASE_IMAGE=python:3.12-slim" in str(refused.value)


def test_pickle_from_another_sklearn(artifact: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """InconsistentVersionWarning is an error here, even if the manifest was made to agree."""
    model, manifest, _ = train.train("iris")
    monkeypatch.setattr(sklearn.base, "__version__", "1.0.0")
    joblib.dump(model, artifact)
    monkeypatch.undo()
    rewrite_manifest(
        artifact, artifact={"file": "model.pkl", "sha256": sha256_hex(artifact.read_bytes())}
    )
    with pytest.raises(ArtifactError) as refused:
        load_model(artifact, engine="sklearn")
    assert str(refused.value).startswith(
        f"{artifact} was pickled by scikit-learn 1.0.0, this environment has "
        f"{sklearn.__version__}: serve it where its own versions are installed: pip install "
        f"scikit-learn=={sklearn.__version__} numpy=="
    )


def test_manifest_features_must_match_estimator(artifact: Path) -> None:
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    rewrite_manifest(artifact, features=manifest["features"][:3])
    with pytest.raises(ArtifactError, match="takes 4 features, the manifest lists 3"):
        load_model(artifact, engine="sklearn")


def test_manifest_classes_must_match_estimator(artifact: Path) -> None:
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    rewrite_manifest(artifact, classes=manifest["classes"][:2])
    with pytest.raises(ArtifactError, match="classes"):
        load_model(artifact, engine="sklearn")


def test_self_check_catches_a_model_that_changed(artifact: Path) -> None:
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    check = manifest["self_check"]
    rewrite_manifest(
        artifact, self_check={**check, "predictions": [(p + 1) % 3 for p in check["predictions"]]}
    )
    with pytest.raises(ArtifactError, match="self-check"):
        load_model(artifact).self_check()


def test_probabilities_are_keyed_by_label(artifact: Path) -> None:
    (proba,) = load_model(artifact).predict_proba(np.array([[5.1, 3.5, 1.4, 0.2]]))
    assert list(proba) == ["setosa", "versicolor", "virginica"]
    assert max(proba, key=proba.__getitem__) == "setosa"


def test_float32_probabilities_are_answered_as_the_estimator_gives_them(tmp_path: Path) -> None:
    """XGBoost's probabilities are float32: rounded to 12 decimals in float32 they moved by a
    float32 step; in float64 they stay the estimator's, on either engine."""
    from xgboost import XGBClassifier

    from webapp.package import command

    X = np.random.default_rng(0).normal(size=(300, 4))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    model = XGBClassifier(n_estimators=20, max_depth=3).fit(X, y)
    artifact = tmp_path / "xgb.pkl"
    joblib.dump(model, artifact)
    assert command.main([str(artifact)]) == 0
    rows = np.random.default_rng(1).normal(size=(200, 4))
    expected = model.predict_proba(rows)
    assert expected.dtype == np.float32
    for engine in ("onnx", "sklearn"):
        answers = load_model(artifact, engine=engine).predict_proba(rows)
        got = np.array([list(answer.values()) for answer in answers])
        assert np.abs(got - expected.astype(np.float64)).max() < 1e-12, engine


def test_a_library_its_pickle_needs_is_named_where_it_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """XGBoost's gblinear booster has no compiled form, so scikit-learn serves the model, and
    unpickling it imports xgboost. Packaging records xgboost's distribution with its version;
    where xgboost is not installed, the refusal names it with the versions to install."""
    from importlib import metadata

    from xgboost import XGBRegressor

    from webapp.core.sklearn_engine import model_requirements
    from webapp.package import command

    X = np.random.default_rng(0).normal(size=(200, 3))
    model = XGBRegressor(booster="gblinear", n_estimators=5).fit(X, X @ [1.0, 2.0, 3.0])
    artifact = tmp_path / "linear.pkl"
    joblib.dump(model, artifact)
    assert command.main([str(artifact)]) == 0
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    assert "file" not in manifest["compiled"]
    pins = [f"{d}=={metadata.version(d)}" for d in metadata.packages_distributions()["xgboost"]]
    assert set(pins) <= set(model_requirements(manifest))

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, *args: Any) -> None:
            if name.partition(".")[0] == "xgboost":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    for name in [m for m in sys.modules if m.partition(".")[0] == "xgboost"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [NotInstalled(), *sys.meta_path])
    with pytest.raises(ArtifactError) as refused:
        load_model(artifact, engine="sklearn")
    message = str(refused.value)
    assert "it needs the module 'xgboost', which is not importable here: a library's, " in message
    assert all(pin in message for pin in pins), message
