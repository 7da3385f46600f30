"""Estimators of one feature fitted on 1-D input, which do not say how many features they take:
a text pipeline fitted on a plain list of strings and an IsotonicRegression. Packaged with the
command (with and without --data), served in process by whichever engine serves them: the
manifest records the 1-D input ("vector") and every answer is the estimator's own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.isotonic import IsotonicRegression
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from testkit.zoo import ROOT
from webapp import create_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # it packages with the command
WORDS = ["good", "bad", "great", "awful", "plot", "acting", "film", "boring", "fun", "slow"]


def text_pipeline() -> tuple[Any, list[str], list[str]]:
    """Reviews as a plain list of strings; held-out ones with unseen words and other letters."""
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, 4)) for _ in range(200)]
    labels = [
        "up" if t.count("good") + t.count("great") > t.count("bad") else "down" for t in texts
    ]
    held_out = [" ".join(rng.choice([*WORDS, "Unseen", "été"], 3)) for _ in range(30)] + [""]
    return make_pipeline(TfidfVectorizer(), LinearSVC()).fit(texts, labels), texts, held_out


def isotonic() -> tuple[Any, list[float], list[float]]:
    """A monotone fit of x, clipped outside the training range."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, 200)
    y = np.sqrt(x) + rng.normal(0, 0.1, 200)
    held_out = [-5.0, 0.0, 0.5, 2.25, 7.0, 10.0, 12.5, 1e6]
    return IsotonicRegression(out_of_bounds="clip").fit(x, y), x.tolist(), held_out


def package(estimator: Any, folder: Path, column: str | None, values: list[Any]) -> Path:
    """Save and package it with `python -m webapp package`, with a one-column table if named."""
    path = folder / "model.pkl"
    joblib.dump(estimator, path)
    command = [sys.executable, "-m", "webapp", "package", str(path), "--force"]
    if column is not None:
        pd.DataFrame({column: values}).to_csv(folder / "table.csv", index=False)
        command += ["--data", str(folder / "table.csv")]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return path


@pytest.mark.parametrize("column", [None, "given"])
@pytest.mark.parametrize("build", [text_pipeline, isotonic])
def test_a_one_d_estimator_packages_and_answers_as_itself(
    build: Any, column: str | None, tmp_path: Path
) -> None:
    estimator, training, held_out = build()
    path = package(estimator, tmp_path, column, training)
    manifest = json.loads(path.with_suffix(".json").read_text())
    (feature,) = manifest["features"]
    name = column or "x0"
    assert (manifest["input"], feature["name"]) == ("vector", name)
    assert feature["type"] == ("category" if build is text_pipeline else "number")

    expected = np.asarray(estimator.predict(held_out)).tolist()
    for engine in ("auto", "sklearn"):
        client = create_app({"MODEL_PATH": str(path), "ENGINE": engine}).test_client()
        assert client.get("/metadata").get_json()["input"] == "vector"
        rows = [{name: value} for value in held_out]
        answers = [client.post("/predict", json=row).get_json()["prediction"] for row in rows]
        assert answers == expected
        assert client.post("/predict", json={"instances": rows}).get_json() == {
            "predictions": expected
        }
        if build is isotonic:  # numbers only: arrays of one number are rows too
            arrays = {"instances": [[value] for value in held_out]}
            assert client.post("/predict", json=arrays).get_json() == {"predictions": expected}
