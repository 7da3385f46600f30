"""Predict a DataFrame's rows with the served model: `SERVICE_URL=https://... python client.py`."""

import os

import google.auth.transport.requests
import google.oauth2.id_token
import pandas as pd
import requests

url = os.environ.get("SERVICE_URL", "http://127.0.0.1:8090")  # or your service's https://...
table = pd.DataFrame(
    [[3, 89.5, "basic", "north"], [40, None, None, "atlantis"]],
    columns=["tenure_months", "monthly_spend", "plan", "region"],
)
headers = {}
if url.startswith("https://"):  # a private Cloud Run service or function: an identity token
    token = google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), url)
    headers["Authorization"] = f"Bearer {token}"
rows = table.astype(object).where(table.notna(), None).to_dict("records")  # NaN: null
answer = requests.post(f"{url}/predict", json={"instances": rows}, headers=headers, timeout=30)
answer.raise_for_status()
table["churn"] = answer.json()["predictions"]
print(table)
