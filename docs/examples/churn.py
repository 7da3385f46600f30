"""A model of your own for the README: `python docs/examples/churn.py DIR`.

A pipeline fitted on a pandas DataFrame with a number, an integer and two string columns, some
values missing: it imputes them, one-hot encodes the strings and fits a logistic regression.
Writes OUT/model.pkl (joblib) and OUT/customers.csv (the training rows, target included).
The data is made up here, the same on every machine.
"""

import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def customers(rows: int = 500) -> pd.DataFrame:
    """Made-up customers: who churned depends on their plan, spend and tenure."""
    rng = np.random.default_rng(7)
    table = pd.DataFrame(
        {
            "tenure_months": rng.integers(0, 72, rows),
            "monthly_spend": rng.normal(60.0, 20.0, rows).round(2),
            "plan": rng.choice(["basic", "pro", "team"], rows),
            "region": rng.choice(["north", "south", "east", "west"], rows),
        }
    )
    risk = table["monthly_spend"] / 20 - table["tenure_months"] / 12 + (table["plan"] == "basic")
    table["churned"] = np.where(risk + rng.normal(0, 1, rows) > 0.5, "yes", "no")
    table.loc[rng.random(rows) < 0.05, "monthly_spend"] = np.nan
    table.loc[rng.random(rows) < 0.05, "plan"] = None
    return table


def main(out: Path) -> None:
    table = customers()
    numbers = make_pipeline(SimpleImputer(), StandardScaler())
    strings = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder())
    encode = ColumnTransformer(
        [
            ("numbers", numbers, ["tenure_months", "monthly_spend"]),
            ("plan", strings, ["plan"]),
            ("region", OneHotEncoder(handle_unknown="ignore"), ["region"]),
        ]
    )
    model = make_pipeline(encode, LogisticRegression())
    model.fit(table.drop(columns="churned"), table["churned"])
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.pkl")
    table.to_csv(out / "customers.csv", index=False)
    print(f"wrote {out / 'model.pkl'} and {out / 'customers.csv'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/churn"))
