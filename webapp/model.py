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
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

log = logging.getLogger(__name__)

# Probabilities are answered to 12 decimal places. Their last bits depend on the CPU's BLAS
# kernel (the order it sums in): rounded, every host answers the same bytes.
PROBABILITY_DECIMALS = 12


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

    def contains(self, number: float) -> bool:
        """Whether a finite float lies inside this feature's range."""
        above = number >= self.min if self.min_inclusive else number > self.min
        below = number <= self.max if self.max_inclusive else number < self.max
        return above and below


class LinearPipeline:
    """StandardScaler then LogisticRegression, as plain numpy: the same arithmetic, in order.

    scikit-learn spends far longer validating a one-row input than on its arithmetic; this
    does only the arithmetic, exactly as StandardScaler.transform and
    LogisticRegression.decision_function/predict do it. Model proves it agrees with
    `estimator.predict` before using it, and falls back to scikit-learn for anything else.
    """

    def __init__(self, estimator: Any) -> None:
        if not isinstance(estimator, Pipeline) or len(estimator.steps) != 2:
            raise TypeError("not a two-step pipeline")
        scaler, classifier = (step for _, step in estimator.steps)
        if type(scaler) is not StandardScaler or type(classifier) is not LogisticRegression:
            raise TypeError("not StandardScaler -> LogisticRegression")
        if classifier.coef_.shape[0] < 2:
            raise TypeError("binary logistic regression thresholds differently")
        self.mean = scaler.mean_ if scaler.with_mean else None
        self.scale = scaler.scale_ if scaler.with_std else None
        self.coef_t = classifier.coef_.T
        self.intercept = classifier.intercept_
        self.classes = classifier.classes_

    def predict(self, rows: np.ndarray) -> np.ndarray:
        if self.mean is not None:
            rows = rows - self.mean
        if self.scale is not None:
            rows = rows / self.scale
        return self.classes[(rows @ self.coef_t + self.intercept).argmax(axis=1)]


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
        self._predict = self._fastest_exact_predict()

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

    def _fastest_exact_predict(self) -> Any:
        """The numpy fast path if it gives `estimator.predict`'s answers, else scikit-learn's."""
        try:
            fast = LinearPipeline(self.estimator)
        except TypeError:
            return self.estimator.predict
        probe = self.verification_rows()
        if np.array_equal(fast.predict(probe), self.estimator.predict(probe)):
            log.info("using the numpy fast path, verified on %d rows", len(probe))
            return fast.predict
        log.warning("numpy fast path disagrees with scikit-learn; using scikit-learn")
        return self.estimator.predict

    def verification_rows(self, count: int = 5_000, seed: int = 0) -> np.ndarray:
        """Rows to compare two predictors on: the training box, its surroundings, the extremes.

        Random points across each feature's training range widened threefold, the self-check
        rows, and points on the valid range's bounds, where rounding is most likely to differ.
        """
        rng = np.random.default_rng(seed)
        spec = self.manifest["features"]
        low = np.array([f["train_min"] for f in spec])
        high = np.array([f["train_max"] for f in spec])
        width = high - low
        lo = np.maximum(low - width, [f["min"] for f in spec])
        hi = np.minimum(high + width, [f["max"] for f in spec])
        box = rng.uniform(lo, hi, size=(count, len(spec)))
        valid = rng.uniform([f["min"] for f in spec], [f["max"] for f in spec], (count, len(spec)))
        checks = np.asarray(self.manifest["self_check"]["instances"], dtype=np.float64)
        return np.vstack([box, valid, checks, [f["max"] for f in spec]])

    def predict(self, rows: np.ndarray) -> list[int]:
        """Class ids for a 2-D float array in manifest feature order."""
        return list(map(int, self._predict(rows).tolist()))

    def predict_proba(self, rows: np.ndarray) -> list[dict[str, float]]:
        """Per-class probabilities keyed by label, one mapping per row, to 12 decimal places."""
        labels = [self.labels[int(c)] for c in self.estimator.classes_]
        probabilities = np.round(self.estimator.predict_proba(rows), PROBABILITY_DECIMALS)
        return [dict(zip(labels, row, strict=True)) for row in probabilities.tolist()]

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
