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
import math
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 2  # docs/manifest.md

# Probabilities are answered to 12 decimal places. Their last bits depend on the CPU's BLAS
# kernel (the order it sums in): rounded, every host answers the same bytes.
PROBABILITY_DECIMALS = 12


class ArtifactError(Exception):
    """The model artifact cannot be served; the message says why in one line."""


TYPES = ("number", "integer", "category")


@dataclass(frozen=True)
class Feature:
    """One input: its name, JSON type, whether it may be null, and the values it may take.

    Numbers and integers: the (closed, half-open or open) range, None for unbounded.
    Categories: the allowed strings, None for any.
    """

    name: str
    type: str = "number"
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True
    categories: tuple[str, ...] | None = None

    @classmethod
    def from_manifest(cls, spec: dict[str, Any]) -> Feature:
        """A feature from its manifest entry; ValueError or KeyError if it is malformed."""
        kind = spec.get("type", "number")
        if kind not in TYPES:
            raise ValueError(f"feature {spec['name']!r} has type {kind!r}, not one of {TYPES}")
        categories = spec.get("categories")
        if categories is not None and not all(isinstance(c, str) for c in categories):
            raise ValueError(f"feature {spec['name']!r}: categories must be strings")
        bounds = [spec.get("min"), spec.get("max")]
        if not all(b is None or isinstance(b, (int, float)) for b in bounds):
            raise ValueError(f"feature {spec['name']!r}: min and max must be numbers or null")
        return cls(
            name=str(spec["name"]),
            type=kind,
            nullable=bool(spec.get("nullable", False)),
            min=bounds[0],
            max=bounds[1],
            min_inclusive=bool(spec.get("min_inclusive", True)),
            max_inclusive=bool(spec.get("max_inclusive", True)),
            categories=None if categories is None else tuple(categories),
        )

    @property
    def numeric(self) -> bool:
        """Whether its values are numbers (number or integer), not strings."""
        return self.type != "category"

    def contains(self, number: float) -> bool:
        """Whether a finite number lies inside this feature's range."""
        if self.min is not None and not (
            number >= self.min if self.min_inclusive else number > self.min
        ):
            return False
        return self.max is None or (number <= self.max if self.max_inclusive else number < self.max)


class LinearPipeline:
    """StandardScaler then LogisticRegression, as plain numpy: the same arithmetic, in order.

    scikit-learn spends far longer validating a one-row input than on its arithmetic; this
    does only the arithmetic, exactly as StandardScaler.transform and
    LogisticRegression.decision_function/predict do it. Model proves it agrees with
    `estimator.predict` before using it, and falls back to scikit-learn for anything else.
    """

    def __init__(self, estimator: Any) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

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


Rows = Any  # a float matrix (numbers only) or one sequence of values per feature (columns)


class Model:
    """A verified estimator with its manifest: the only object that calls into scikit-learn."""

    def __init__(self, estimator: Any, manifest: dict[str, Any], sha256: str) -> None:
        self.estimator = estimator
        self.manifest = manifest
        self.sha256 = sha256
        self.features = tuple(Feature.from_manifest(f) for f in manifest["features"])
        self.feature_names = tuple(f.name for f in self.features)
        self.numeric = all(f.numeric for f in self.features)
        self.dataframe = manifest["input"] == "dataframe"
        self.classification = manifest["task"] == "classification"
        classes = manifest.get("classes", []) if self.classification else []
        self.classes = [c["value"] for c in classes]
        self.labels = {c["value"]: str(c["label"]) for c in classes}
        self.probabilities = self.classification and bool(manifest.get("probabilities"))
        self._check_consistency()
        self._predict = self._fastest_exact_predict()

    def _check_consistency(self) -> None:
        """The estimator must take the manifest's features and predict its classes."""
        methods = ["predict", "predict_proba"] if self.probabilities else ["predict"]
        for method in methods:
            if not callable(getattr(self.estimator, method, None)):
                raise ArtifactError(f"the estimator has no {method}() method")
        n_features = getattr(self.estimator, "n_features_in_", len(self.features))
        if n_features != len(self.features):
            raise ArtifactError(
                f"the estimator takes {n_features} features, the manifest lists "
                f"{len(self.features)}"
            )
        names = getattr(self.estimator, "feature_names_in_", None)
        if self.dataframe and (names is None or list(names) != list(self.feature_names)):
            raise ArtifactError("the estimator was not fitted on the manifest's columns")
        if self.classification:
            classes = np.asarray(getattr(self.estimator, "classes_", [])).tolist()
            if classes != self.classes or [type(c) for c in classes] != [
                type(c) for c in self.classes
            ]:
                raise ArtifactError(
                    f"the estimator's classes {classes} differ from the manifest's {self.classes}"
                )
            if len(set(self.labels.values())) != len(self.labels):
                raise ArtifactError("two classes have the same label")

    def _fastest_exact_predict(self) -> Any:
        """The numpy fast path if it gives `estimator.predict`'s answers, else scikit-learn's."""
        if self.dataframe or not self.numeric:
            return self.estimator.predict
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
        Numbers only.
        """
        rng = np.random.default_rng(seed)
        spec = self.manifest["features"]
        low = np.array([f.get("train_min", -1.0) for f in spec], dtype=np.float64)
        high = np.array([f.get("train_max", 1.0) for f in spec], dtype=np.float64)
        width = np.maximum(high - low, 1.0)
        valid_low = np.array([-np.inf if f.min is None else f.min for f in self.features])
        valid_high = np.array([np.inf if f.max is None else f.max for f in self.features])
        lo = np.maximum(low - width, valid_low)
        hi = np.minimum(high + width, valid_high)
        box = rng.uniform(lo, hi, size=(count, len(spec)))
        checks = self.matrix(self.columns(self.manifest["self_check"]["instances"]))
        edges = np.where(np.isfinite(valid_high), valid_high, hi)
        return np.vstack([box, checks, edges])

    def columns(self, instances: Sequence[Any]) -> list[list[Any]]:
        """Instances (objects by feature name, or arrays in feature order) as columns."""
        return [
            [i[name] if isinstance(i, dict) else i[n] for i in instances]
            for n, name in enumerate(self.feature_names)
        ]

    def matrix(self, columns: Sequence[Sequence[Any]]) -> np.ndarray:
        """Numeric columns as a float matrix, null as NaN."""
        return np.array(columns, dtype=np.float64).T.reshape(-1, len(self.features))

    def estimator_input(self, rows: Rows) -> Any:
        """What the estimator takes: a DataFrame with its columns' dtypes, or a 2-D array."""
        if isinstance(rows, np.ndarray) and not self.dataframe:
            return rows
        return estimator_input(self.features, self.dataframe, rows)

    def predict(self, rows: Rows) -> list[Any]:
        """What the estimator predicts for each row, as JSON values (int, float, str, bool)."""
        predicted: list[Any] = np.asarray(self._predict(self.estimator_input(rows))).tolist()
        return predicted

    def predict_proba(self, rows: Rows) -> list[dict[str, float]]:
        """Per-class probabilities keyed by label, one mapping per row, to 12 decimal places."""
        labels = [self.labels[c] for c in self.classes]
        proba = self.estimator.predict_proba(self.estimator_input(rows))
        rounded = np.round(proba, PROBABILITY_DECIMALS).tolist()
        return [dict(zip(labels, row, strict=True)) for row in rounded]

    def self_check(self) -> None:
        """Predict the manifest's check rows and compare with the answers recorded for them."""
        check = self.manifest["self_check"]
        got = self.predict(self.columns(check["instances"]))
        expected = list(check["predictions"])
        if self.classification:
            same = got == expected
        else:  # regression outputs: the last bits may follow the CPU's BLAS kernel
            same = len(got) == len(expected) and all(
                math.isclose(g, e, rel_tol=1e-9, abs_tol=1e-12)
                for g, e in zip(got, expected, strict=True)
            )
        if not same:
            raise ArtifactError("self-check predictions differ from those recorded for them")

    def describe(self) -> dict[str, Any]:
        """The manifest's public facts, for GET /metadata."""
        public = "name version task estimator input features classes probabilities metrics versions"
        facts: dict[str, Any] = {k: self.manifest[k] for k in public.split() if k in self.manifest}
        return {"sha256": self.sha256, **facts}


def estimator_input(features: Sequence[Feature], dataframe: bool, rows: Rows) -> Any:
    """Rows (a float matrix, or one sequence per feature) as the estimator takes them: a
    pandas DataFrame with its columns' dtypes when it was fitted on one, else a 2-D array."""
    columns = list(rows.T) if isinstance(rows, np.ndarray) else rows
    typed = {f.name: _column(f, c) for f, c in zip(features, columns, strict=True)}
    if dataframe:
        import pandas

        return pandas.DataFrame(typed, columns=[f.name for f in features])
    kind = np.float64 if all(f.numeric for f in features) else object
    return np.array(list(typed.values()), dtype=kind).T.reshape(-1, len(features))


def _column(feature: Feature, values: Sequence[Any]) -> np.ndarray:
    """One feature's values as the estimator's training data had them: floats with NaN for
    numbers, int64 for integers without nulls, objects with NaN for categories."""
    missing = None in values  # (a list's own search: no value equals None but None)
    if feature.type == "category":
        # NaN, as pandas reads a missing string: scikit-learn's imputers look for NaN, not None
        return np.array(
            [np.nan if v is None else v for v in values] if missing else values, dtype=object
        )
    if feature.type == "integer" and not missing:
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=np.float64)


@contextmanager
def _pandas_kept_out(keep_out: bool) -> Iterator[None]:
    """scikit-learn imports pandas whenever it is installed, though only a model fitted on a
    DataFrame needs it: for any other, pandas stays out while scikit-learn is first imported
    (a part of the cold start and of every worker's memory, docs/performance.md)."""
    blocked = keep_out and "pandas" not in sys.modules and "sklearn" not in sys.modules
    if blocked:
        sys.modules["pandas"] = None  # type: ignore[assignment]  # import pandas: ImportError
    try:
        yield
    finally:
        if blocked and sys.modules.get("pandas", False) is None:
            del sys.modules["pandas"]


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

    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise ArtifactError(
            f"manifest {manifest_path} has format {found!r}, this service reads format "
            f"{MANIFEST_FORMAT}: write it again with `python -m webapp.package {path}`"
        )
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
    with _pandas_kept_out(manifest.get("input") != "dataframe"):
        import joblib
        import sklearn
        from sklearn.exceptions import InconsistentVersionWarning
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
