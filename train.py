"""Train a classifier on a dataset bundled with scikit-learn and write the artifact and manifest.

The manifest (model.json beside model.pkl, docs/manifest.md) carries everything the service
needs: feature names, types and valid ranges, class labels, metrics, library versions, the
sha256. It is written by the same code as `python -m webapp.package`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas
from sklearn.datasets import load_iris, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from webapp.package import describe as package

SEED = 42
TEST_SIZE = 0.2


@dataclass(frozen=True)
class Dataset:
    """A bundled dataset and the domain facts the manifest records about it."""

    loader: Callable[..., Any]
    feature_names: tuple[str, ...] | None  # None: use scikit-learn's names
    unit: str | None
    valid_min: float
    min_inclusive: bool
    valid_max: float


DATASETS = {
    # Iris measurements are lengths in cm: strictly positive, and nothing is a metre long.
    "iris": Dataset(
        load_iris,
        ("sepal_length", "sepal_width", "petal_length", "petal_width"),
        "cm",
        0.0,
        False,
        100.0,
    ),
    # Wine features are non-negative chemical measurements; proline reaches 1680 mg/l.
    "wine": Dataset(load_wine, None, None, 0.0, True, 10_000.0),
}


def build_pipeline() -> Pipeline:
    """The estimator we ship: standardise, then multinomial logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=SEED))


def train(dataset_name: str) -> tuple[Pipeline, dict[str, Any], pandas.DataFrame]:
    """Fit on a stratified split; return the model, its manifest (sha256 still unset) and the
    training rows (what the compiled form is verified on, with many more).

    The manifest is what `python -m webapp.package` would write for it, given the training
    rows, plus what only this script knows: the valid ranges and units of the domain, the
    classes' names, held-out metrics, and held-out rows for the self-check.
    """
    dataset = DATASETS[dataset_name]
    bunch = dataset.loader()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target)
    names = list(dataset.feature_names or bunch.feature_names)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_SIZE, stratify=y, random_state=SEED
    )
    model = build_pipeline().fit(X_train, y_train)
    predicted = model.predict(X_test)

    table = pandas.DataFrame(X_train, columns=names)
    manifest = package.describe(model, table, f"{dataset_name}-logistic-regression", "1.0.0")
    for feature in manifest["features"]:
        feature.update(
            unit=dataset.unit,
            min=dataset.valid_min,
            min_inclusive=dataset.min_inclusive,
            max=dataset.valid_max,
            max_inclusive=True,
        )
    for spec in manifest["classes"]:
        spec["label"] = str(bunch.target_names[spec["value"]])
    # One held-out row per class, with the answer this model gives: /ready re-checks it.
    check_rows = [int(np.flatnonzero(y_test == c)[0]) for c in np.unique(y_test)]
    manifest["self_check"] = {
        "instances": [dict(zip(names, X_test[i].tolist(), strict=True)) for i in check_rows],
        "predictions": predicted[check_rows].tolist(),
    }
    manifest["dataset"] = dataset_name
    manifest["metrics"] = {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "macro_f1": float(f1_score(y_test, predicted, average="macro")),
        "train_rows": len(y_train),
        "test_rows": len(y_test),
        "split_seed": SEED,
    }
    return model, manifest, table


def save(
    model: Pipeline, manifest: dict[str, Any], output: Path, table: pandas.DataFrame | None = None
) -> Path:
    """Write the pickle and its verified compiled form, then the manifest that records their
    sha256; return the manifest's path."""
    output.parent.mkdir(parents=True, exist_ok=True)
    package.write_atomically(output, lambda tmp: joblib.dump(model, tmp))
    package.compile_into(model, manifest, table, output)
    return package.write_manifest(manifest, output, replace=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: train, report held-out metrics, write the artifact and manifest."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="iris")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).resolve().parent / "model.pkl"
    )
    args = parser.parse_args(argv)

    model, manifest, table = train(args.dataset)
    manifest_path = save(model, manifest, args.output, table)
    metrics = manifest["metrics"]
    print(
        f"{manifest['name']}: held-out accuracy {metrics['accuracy']:.4f}, "
        f"macro F1 {metrics['macro_f1']:.4f} on {metrics['test_rows']} rows"
    )
    compiled = manifest["compiled"]
    if "file" in compiled:
        print(f"compiled {compiled['file']}: verified on {compiled['verification']['rows']} rows")
    else:
        print(f"not compiled: {compiled['error']}")
    digest = package.sha256_of(manifest_path)
    print(f"wrote {args.output} and {manifest_path} (sha256 {digest}: the MODEL_SHA256 pin)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
