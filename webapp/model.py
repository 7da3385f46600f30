"""The model artifact: load and verify it, describe it, predict with it. No Flask here.

A pickle is code: loading one runs whatever it says. So the bytes are hashed and compared
with the manifest and the deploy-time pin before anything is unpickled, and an artifact from
another scikit-learn version is refused rather than trusted to behave the same.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.exceptions import InconsistentVersionWarning

log = logging.getLogger(__name__)


class ArtifactError(Exception):
    """The model artifact cannot be served; the message says why in one line."""


@dataclass(frozen=True)
class Feature:
    """One input column: its name and the closed or half-open range the service accepts."""

    name: str
    min: float
    min_inclusive: bool
    max: float
    max_inclusive: bool


class Model:
    """A verified estimator with its manifest: the only object that calls into scikit-learn."""

    def __init__(self, estimator: Any, manifest: dict[str, Any], sha256: str) -> None:
        self.estimator = estimator
        self.manifest = manifest
        self.sha256 = sha256
        self.features = tuple(
            Feature(f["name"], f["min"], f["min_inclusive"], f["max"], f["max_inclusive"])
            for f in manifest["features"]
        )
        self.feature_names = tuple(f.name for f in self.features)
        self.labels = {int(c["id"]): str(c["label"]) for c in manifest["classes"]}
        self._check_consistency()

    def _check_consistency(self) -> None:
        """The estimator must take the manifest's features and predict its classes."""
        for method in ("predict", "predict_proba"):
            if not callable(getattr(self.estimator, method, None)):
                raise ArtifactError(f"the estimator has no {method}() method")
        n_features = getattr(self.estimator, "n_features_in_", None)
        if n_features != len(self.features):
            raise ArtifactError(
                f"the estimator takes {n_features} features, the manifest lists "
                f"{len(self.features)}"
            )
        classes = [int(c) for c in getattr(self.estimator, "classes_", [])]
        if classes != list(self.labels):
            raise ArtifactError(
                f"the estimator's classes {classes} differ from the manifest's {list(self.labels)}"
            )

    def predict(self, rows: np.ndarray) -> list[int]:
        """Class ids for a 2-D float array in manifest feature order."""
        return [int(c) for c in self.estimator.predict(rows)]

    def predict_proba(self, rows: np.ndarray) -> list[dict[str, float]]:
        """Per-class probabilities keyed by label, one mapping per row."""
        labels = [self.labels[int(c)] for c in self.estimator.classes_]
        return [
            dict(zip(labels, (float(p) for p in row), strict=True))
            for row in self.estimator.predict_proba(rows)
        ]

    def self_check(self) -> None:
        """Predict the manifest's check rows and compare with the answers recorded at training."""
        check = self.manifest["self_check"]
        rows = np.asarray(check["instances"], dtype=np.float64)
        if self.predict(rows) != list(check["predictions"]):
            raise ArtifactError("self-check predictions differ from those recorded at training")

    def describe(self) -> dict[str, Any]:
        """The manifest's public facts, for GET /metadata."""
        m = self.manifest
        return {
            "name": m["name"],
            "version": m["version"],
            "sha256": self.sha256,
            "estimator": m["estimator"],
            "features": m["features"],
            "classes": m["classes"],
            "metrics": m["metrics"],
            "versions": m["versions"],
        }


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def load_model(path: Path, pinned_sha256: str | None = None) -> Model:
    """Read, verify and unpickle the artifact at `path`, with its manifest beside it.

    Raises ArtifactError for a missing, unreadable, corrupt, tampered, mis-pinned or
    version-mismatched artifact; nothing is unpickled before the hash checks pass.
    """
    manifest_path = path.with_suffix(".json")
    try:
        data = path.read_bytes()
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ArtifactError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except ValueError as exc:
        raise ArtifactError(f"manifest {manifest_path} is not valid JSON: {exc}") from None

    digest = sha256_hex(data)
    try:
        recorded = manifest["artifact"]["sha256"]
        trained_with = manifest["versions"]["scikit-learn"]
    except (KeyError, TypeError):
        raise ArtifactError(f"manifest {manifest_path} lacks artifact.sha256 or versions") from None
    if digest != recorded:
        raise ArtifactError(f"{path} has sha256 {digest}, the manifest records {recorded}")
    if pinned_sha256 is not None and digest != pinned_sha256:
        raise ArtifactError(f"{path} has sha256 {digest}, MODEL_SHA256 pins {pinned_sha256}")
    if trained_with != sklearn.__version__:
        raise ArtifactError(
            f"{path} was trained with scikit-learn {trained_with}, "
            f"this environment has {sklearn.__version__}"
        )

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            estimator = joblib.load(io.BytesIO(data))
    except InconsistentVersionWarning as exc:
        raise ArtifactError(f"{path} was pickled by another scikit-learn version: {exc}") from None
    except Exception as exc:  # a corrupt pickle can raise almost anything
        raise ArtifactError(f"{path} cannot be unpickled: {type(exc).__name__}") from None

    try:
        model = Model(estimator, manifest, digest)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"manifest {manifest_path} is malformed: {exc!r}") from None
    log.info(
        "loaded model %s %s (sha256 %s) in pid %d",
        model.manifest["name"],
        model.manifest["version"],
        digest[:12],
        os.getpid(),
    )
    return model
