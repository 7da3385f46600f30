"""A date/time feature: a pipeline fitted on a DataFrame with a datetime64 column, read by a
FunctionTransformer through `.dt`. Packaged with the command from a CSV table (whose dates are
ISO strings), served in process: JSON takes ISO 8601 strings, the estimator gets a real
datetime64 column, every answer is its own, and what is no such date is refused by name."""

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
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from testkit.zoo import ROOT
from webapp import create_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # it packages with the command


def date_parts(frame: pd.DataFrame) -> pd.DataFrame:
    """The signup date as numbers: its year, day of the year and weekday, beside the rest."""
    parts = frame.drop(columns=["signup"])
    signup = frame["signup"]
    return parts.assign(
        year=signup.dt.year, day=signup.dt.day_of_year, weekday=signup.dt.day_of_week
    )


def fitted() -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    start = np.datetime64("2015-01-01T00:00:00")
    seconds = rng.integers(0, 10 * 365 * 86400, 300)
    table = pd.DataFrame(
        {"spend": rng.normal(50, 10, 300), "signup": start + seconds.astype("timedelta64[s]")}
    )
    table["signup"] = table["signup"].astype("datetime64[ns]")
    y = table["spend"] + table["signup"].dt.year - 2015 + (table["signup"].dt.day_of_week > 4) * 3
    model = make_pipeline(FunctionTransformer(date_parts), StandardScaler(), Ridge())
    return model.fit(table, y), table.iloc[:260], table.iloc[260:]


def test_dates_package_and_answer_as_the_estimator(tmp_path: Path) -> None:
    estimator, training, held_out = fitted()
    path = tmp_path / "model.pkl"
    joblib.dump(estimator, path)
    training.to_csv(tmp_path / "table.csv", index=False)  # dates as ISO strings
    command = [sys.executable, "-m", "webapp", "package", str(path)]
    command += ["--data", str(tmp_path / "table.csv")]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert [(f["name"], f["type"]) for f in manifest["features"]] == [
        ("spend", "number"),
        ("signup", "datetime"),
    ]
    assert "error" in manifest["compiled"]

    client = create_app({"MODEL_PATH": str(path)}).test_client()
    assert client.get("/ready").status_code == 200  # the self-check's ISO rows replayed
    rows = [
        {"spend": spend, "signup": moment.isoformat()}
        for spend, moment in zip(held_out["spend"], held_out["signup"], strict=True)
    ]
    expected = estimator.predict(held_out).tolist()
    for index, row in enumerate(rows):  # one row at a time, as the estimator sums one
        alone = estimator.predict(held_out.iloc[[index]])[0]
        assert client.post("/predict", json=row).get_json() == {"prediction": alone}
    batch = client.post("/predict", json={"instances": rows}).get_json()
    assert batch == {"predictions": expected}
    inputs = [
        {
            "name": "spend",
            "shape": [len(rows)],
            "datatype": "FP64",
            "data": [r["spend"] for r in rows],
        },
        {
            "name": "signup",
            "shape": [len(rows)],
            "datatype": "BYTES",
            "data": [r["signup"] for r in rows],
        },
    ]
    v2 = client.post(f"/v2/models/{manifest['name']}/infer", json={"inputs": inputs}).get_json()
    assert v2["outputs"][0]["data"] == expected, v2
    assert client.get("/openapi.json").status_code == 200
    assert (
        client.get(f"/v2/models/{manifest['name']}").get_json()["inputs"][1]["datatype"] == "BYTES"
    )
    day = {"spend": 50.0, "signup": "2021-03-04"}  # a date alone is midnight
    midnight = pd.DataFrame({"spend": [50.0], "signup": [pd.Timestamp("2021-03-04")]})
    assert client.post("/predict", json=day).get_json() == {
        "prediction": estimator.predict(midnight)[0]
    }
    for wrong in ("2021-13-01", "yesterday", "2021-03-04T10:00:00+02:00", "1500-01-01", 3, None):
        answer = client.post("/predict", json={"spend": 50.0, "signup": wrong})
        assert answer.status_code == 422, wrong
        assert set(answer.get_json()["errors"]) == {"signup"}, wrong
