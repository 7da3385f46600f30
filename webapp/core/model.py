"""The model: its manifest, verified files and the engine that answers for it. No Flask here.

The manifest (model.json beside model.pkl, docs/manifest.md) records the sha256 of every
file it names; MODEL_SHA256 pins the manifest's own. So one pin covers everything that is
loaded, and nothing is loaded before its bytes are checked. Two engines answer alike: the
compiled ONNX form, proven equal to the estimator when it was packaged (onnx_engine.py), and
the pickled estimator itself (sklearn_engine.py), the fallback. Only the one chosen is imported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .verification import reverify
from .vocabulary import MANIFEST_FORMAT, ArtifactError, Rows, features_of, one_line

log = logging.getLogger(__name__)

# Probabilities are answered to 12 decimal places. Their last bits depend on the CPU's BLAS
# kernel (the order it sums in): rounded, every host answers the same bytes.
PROBABILITY_DECIMALS = 12


class Engine(Protocol):
    """What answers for a model: the compiled graph or the estimator, indistinguishably."""

    name: str
    tolerance: float  # relative, for regression outputs against those the manifest records

    def predict(self, rows: Rows) -> list[Any]:
        """What the estimator's predict() gives for each row, as JSON values."""

    def predict_array(self, rows: Rows) -> np.ndarray:
        """The same predictions as one array, without a Python value per row where the
        predictions are numbers."""

    def predict_proba(self, rows: Rows) -> Any:
        """What the estimator's predict_proba() gives: a float array, a column per class."""


class Model:
    """A verified manifest and the engine that answers for it."""

    def __init__(self, manifest: dict[str, Any], sha256: str, engine: Engine, why: str) -> None:
        self.manifest = manifest
        self.sha256 = sha256  # the manifest's: what MODEL_SHA256 pins
        self.engine = engine
        self.why = why  # why this engine serves, for the log and /metadata
        self.features = features_of(manifest)
        self.feature_names = tuple(f.name for f in self.features)
        self.numeric = all(f.numeric for f in self.features)
        self.classification = manifest["task"] == "classification"
        classes = manifest.get("classes", []) if self.classification else []
        self.classes = [c["value"] for c in classes]
        self.labels = {c["value"]: str(c["label"]) for c in classes}
        self.probabilities = self.classification and bool(manifest.get("probabilities"))
        if len(set(self.labels.values())) != len(self.labels):
            raise ArtifactError("two classes have the same label")

    def columns(self, instances: Sequence[Any]) -> list[list[Any]]:
        """Instances (objects by feature name, or arrays in feature order) as columns."""
        return [
            [i[name] if isinstance(i, dict) else i[n] for i in instances]
            for n, name in enumerate(self.feature_names)
        ]

    def predict(self, rows: Rows) -> list[Any]:
        """What the estimator predicts for each row, as JSON values (int, float, str, bool)."""
        return self.engine.predict(rows)

    def predict_array(self, rows: Rows) -> np.ndarray:
        """The same predictions as one array (for an output tensor)."""
        return self.engine.predict_array(rows)

    def predict_proba(self, rows: Rows) -> list[dict[str, float]]:
        """Per-class probabilities keyed by label, one mapping per row, to 12 decimal places."""
        labels = [self.labels[c] for c in self.classes]
        # in float64: rounding float32 probabilities (XGBoost's) in float32 moves them a bit
        probabilities = np.asarray(self.engine.predict_proba(rows), dtype=np.float64)
        rounded = np.round(probabilities, PROBABILITY_DECIMALS).tolist()
        return [dict(zip(labels, row, strict=True)) for row in rounded]

    def self_check(self) -> None:
        """Predict the manifest's check rows and compare with the answers recorded for them."""
        check = self.manifest["self_check"]
        got = self.predict(self.columns(check["instances"]))
        expected = list(check["predictions"])
        if self.classification:
            same = got == expected
        else:  # regression outputs: the last bits follow the engine and the CPU's BLAS kernel
            same = len(got) == len(expected) and all(
                math.isclose(g, e, rel_tol=self.engine.tolerance, abs_tol=1e-12)
                for g, e in zip(got, expected, strict=True)
            )
        if not same:
            raise ArtifactError("self-check predictions differ from those recorded for them")

    def describe(self) -> dict[str, Any]:
        """The manifest's public facts, for GET /metadata, and which engine serves."""
        public = "name version task estimator input features classes probabilities metrics versions"
        facts: dict[str, Any] = {k: self.manifest[k] for k in public.split() if k in self.manifest}
        engine = {"name": self.engine.name, "why": self.why}
        return {"sha256": self.sha256, **facts, "engine": engine}


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def load_model(path: Path, pinned_sha256: str | None = None, engine: str = "auto") -> Model:
    """The model whose pickle is at `path`, served by `engine`: its manifest and compiled
    form are beside it, with the same name (MODEL.json, MODEL.onnx).

    "auto" serves the compiled form where the manifest has a verified one for this
    onnxruntime, else the pickle; "onnx" and "sklearn" insist. Raises ArtifactError for a
    missing, unreadable, corrupt, tampered, mis-pinned or version-mismatched file; nothing is
    unpickled or handed to onnxruntime before its sha256 matches.
    """
    manifest_path = path.with_suffix(".json")
    try:
        text = manifest_path.read_bytes()
    except OSError as exc:
        message = f"cannot read {exc.filename}: {exc.strerror}"
        if isinstance(exc, FileNotFoundError) and path.is_file():  # a pickle not packaged yet
            message += f": package the model first, with `sklearn-serve package {path}`"
        raise ArtifactError(message) from None
    digest = check_pin(text, pinned_sha256, str(manifest_path), path.with_suffix(".pkl"))
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise ArtifactError(f"manifest {manifest_path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise ArtifactError(
            f"manifest {manifest_path} has format {found!r}, this service reads format "
            f"{MANIFEST_FORMAT}: write it again with `sklearn-serve package {path} --force`"
        )
    try:
        chosen, why = _engine(path, manifest, engine)
        model = Model(manifest, digest, chosen, why)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"manifest {manifest_path} is malformed: {exc!r}") from None
    log.info(
        "loaded model %s %s (manifest sha256 %s) in pid %d, served by %s: %s",
        manifest["name"],
        manifest["version"],
        digest[:12],
        os.getpid(),
        chosen.name,
        why,
    )
    return model


def _engine(path: Path, manifest: dict[str, Any], choice: str) -> tuple[Engine, str]:
    """The engine to serve with, and why: the compiled form if it may, else the pickle."""
    if choice != "sklearn":
        compiled, why = _compiled_engine(path, manifest)
        if compiled is not None:
            return compiled, why
        if choice == "onnx":
            raise ArtifactError(f"ENGINE=onnx, but {why}")
        log.warning("serving with scikit-learn: %s", why)
    else:
        why = "ENGINE=sklearn"
    from .sklearn_engine import SklearnEngine

    pickle = verified_bytes(path, manifest["artifact"]["sha256"])
    try:
        return SklearnEngine.load(pickle, path, manifest), why
    except ArtifactError as exc:
        if choice == "sklearn" or "file" not in (manifest.get("compiled") or {}):
            raise
        # one line says it all: why not scikit-learn, and why not the compiled form it has
        raise ArtifactError(f"{exc} ({why})") from None


def _compiled_engine(path: Path, manifest: dict[str, Any]) -> tuple[Engine | None, str]:
    """The compiled form's engine and why it may serve, or None and why it may not.

    It serves under the onnxruntime it was verified with; under another, only once it has
    answered the verification rows recorded with the model as the estimator did (those rows
    and answers are checked against the manifest's sha256 first, like every file).
    """
    compiled = manifest.get("compiled") or {}
    if "file" not in compiled:
        return None, f"the model has no compiled form ({compiled.get('error', 'not compiled')})"
    try:
        from .onnx_engine import OnnxEngine, runtime_version
    except ImportError:
        return None, "onnxruntime is not installed"
    recorded, installed = compiled["versions"]["onnxruntime"], runtime_version()
    verified = f"verified on {compiled['verification']['rows']} rows against the estimator"
    rows = manifest.get("verification") or {}
    if recorded != installed and "file" not in rows:
        return None, (
            f"the compiled form was verified with onnxruntime {recorded}, this environment has "
            f"{installed}, and the model records no rows to verify it with here: package the "
            "model again"
        )
    graph = verified_bytes(path.with_suffix(".onnx"), compiled["sha256"])
    features, classes = features_of(manifest), _classes(manifest)
    probabilities = bool(manifest.get("probabilities"))
    if recorded == installed:
        engine = OnnxEngine(graph, compiled, features, classes, probabilities)
        return engine, f"the compiled form, {verified}"
    data = verified_bytes(path.parent / rows["file"], rows["sha256"])
    try:
        engine = OnnxEngine(graph, compiled, features, classes, probabilities)
    except Exception as exc:  # an opset it lacks: onnxruntime raises its own types
        reason = str(exc) if isinstance(exc, ArtifactError) else one_line(exc)
        return None, (
            f"the compiled form, verified with onnxruntime {recorded}, does not load with "
            f"onnxruntime {installed} here ({reason})"
        )
    verdict, count = reverify(engine, data, features, classes is not None, rows.get("tolerance"))
    if verdict is not None:
        return None, (
            f"the compiled form, verified with onnxruntime {recorded}, does not answer as the "
            f"estimator with onnxruntime {installed} here: {verdict}"
        )
    return engine, (
        f"the compiled form, {verified} with onnxruntime {recorded} at packaging, re-verified "
        f"here with onnxruntime {installed} on {count} rows"
    )


def _classes(manifest: dict[str, Any]) -> list[Any] | None:
    if manifest["task"] != "classification":
        return None
    return [c["value"] for c in manifest["classes"]]


def verified_bytes(path: Path, recorded: str) -> bytes:
    """A file read whole and checked against the sha256 the manifest records for it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {exc.filename}: {exc.strerror}") from None
    digest = sha256_hex(data)
    if digest != recorded:
        raise ArtifactError(f"{path} has sha256 {digest}, the manifest records {recorded}")
    return data


def check_pin(text: bytes, pinned: str | None, where: str, pickle: Path | None = None) -> str:
    """The manifest's sha256, from its bytes; ArtifactError if MODEL_SHA256 pins another.

    Checked before anything the manifest names is read (or fetched, webapp/storage.py).
    `where` names the manifest in the refusal; `pickle`, a local one beside it, whose sha256
    the refusal recognises: MODEL_SHA256's meaning before the manifest covered every file.
    """
    digest = sha256_hex(text)
    if pinned is None or digest == pinned:
        return digest
    message = f"{where} has sha256 {digest}, MODEL_SHA256 pins {pinned}"
    try:
        if pickle is not None and sha256_hex(pickle.read_bytes()) == pinned:
            message += f" (that is {pickle.name}'s: MODEL_SHA256 now pins the manifest)"
    except OSError:
        pass
    raise ArtifactError(message)
