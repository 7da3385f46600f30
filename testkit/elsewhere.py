"""Train models as a user would in an environment of their own: `python elsewhere.py FOLDER`, run
by that environment's Python (any scikit-learn from 1.4 on, pandas 2 or later), importing
nothing of this repository. Writes each model's pickle, the table a DataFrame model was fitted
on, and expected.json: rows to ask for and what the estimator answers for them there, the
answers a server elsewhere must give. tests/service/test_environments.py and container/test.sh
run it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

ROWS = 60  # asked for, after the training rows


def iris() -> tuple[Any, list[Any], Any]:
    """The shipped model's kind: scaled multinomial logistic regression on an array."""
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    asked = np.random.default_rng(0).uniform(X.min(axis=0), X.max(axis=0), (ROWS, 4)).round(2)
    return model, asked.tolist(), asked


def churn(folder: Path) -> tuple[Any, list[Any], Any]:
    """A DataFrame of integers, numbers and strings, columns chosen by name, string classes."""
    rng = np.random.default_rng(1)
    table = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, 400 + ROWS),
            "spend": rng.normal(50, 15, 400 + ROWS).round(2),
            "plan": rng.choice(["basic", "pro", "team"], 400 + ROWS),
            "region": rng.choice(["north", "south", "east", "west"], 400 + ROWS),
        }
    )
    y = np.where(
        table["spend"] + (table["plan"] == "pro") * 15 - table["tenure"] / 4 > 45, "yes", "no"
    )
    encode = ColumnTransformer(
        [
            ("numbers", StandardScaler(), ["tenure", "spend"]),
            ("plan", OneHotEncoder(), ["plan"]),
            ("region", OneHotEncoder(handle_unknown="ignore"), ["region"]),
        ]
    )
    train, asked = table.iloc[:400], table.iloc[400:]
    model = make_pipeline(encode, LogisticRegression()).fit(train, y[:400])
    train.to_csv(folder / "churn.csv", index=False)
    rows = json.loads(asked.to_json(orient="records"))
    return model, rows, asked


def prices() -> tuple[Any, list[Any], Any]:
    """A regression on an array: outputs compared within the verification's tolerance."""
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 10, (300 + ROWS, 3))
    target = X @ [3.0, -2.0, 0.5] + rng.normal(0, 0.1, len(X))
    model = make_pipeline(StandardScaler(), Ridge()).fit(X[:300], target[:300])
    return model, X[300:].round(3).tolist(), X[300:].round(3)


def centroids() -> tuple[Any, list[Any], Any]:
    """The class whose centre is nearest: no converter to ONNX, so only scikit-learn serves
    it."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-3, 3, (200 + ROWS, 2))
    y = np.digitize(np.sin(X[:, 0]) + X[:, 1], [-1.0, 1.0])
    model = NearestCentroid().fit(X[:200], y[:200])
    return model, X[200:].round(3).tolist(), X[200:].round(3)


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, Any] = {"scikit-learn": sklearn.__version__}
    built = {"iris": iris(), "churn": churn(folder), "prices": prices(), "centroids": centroids()}
    for name, (model, rows, given) in built.items():
        joblib.dump(model, folder / f"{name}.pkl")
        answers: dict[str, Any] = {"rows": rows, "predictions": model.predict(given).tolist()}
        if hasattr(model, "predict_proba"):
            answers["probabilities"] = model.predict_proba(given).tolist()
        expected[name] = answers
    (folder / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
