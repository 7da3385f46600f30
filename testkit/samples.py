"""Sample inputs for the Iris model: one known row, one row of each class, and request bodies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
FEATURES = tuple(SETOSA)
# Setosa, virginica and versicolor: the committed model predicts 0, 2 and 1 for them.
ROWS = ([5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5], [6.4, 3.2, 4.5, 1.5])


def iris_rows() -> list[list[float]]:
    """The 150 Iris rows: request bodies cycle through them, so every body differs."""
    from sklearn.datasets import load_iris

    return [[float(x) for x in row] for row in load_iris().data]


def single_bodies(rows: Sequence[Sequence[float]]) -> list[str]:
    """One single-instance body per row."""
    return [json.dumps(dict(zip(FEATURES, row, strict=True))) for row in rows]


def batch_bodies(
    rows: Sequence[Sequence[float]], size: int, shape: str, variants: int = 4
) -> list[str]:
    """`variants` batch bodies of `size` instances, each starting at another row."""
    bodies = []
    for v in range(variants):
        start = v * 37
        chosen = [rows[(start + i) % len(rows)] for i in range(size)]
        if shape == "objects":
            instances: list[Any] = [dict(zip(FEATURES, r, strict=True)) for r in chosen]
        else:
            instances = [list(r) for r in chosen]
        bodies.append(json.dumps({"instances": instances}, separators=(",", ":")))
    return bodies


def write_bodies(folder: Path, name: str, bodies: Sequence[str]) -> Path:
    """The bodies, one per line, as bench/bodies.lua reads them."""
    path = folder / f"{name}.jsonl"
    path.write_text("\n".join(bodies) + "\n", encoding="utf-8")
    return path
