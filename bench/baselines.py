"""The baseline for gunicorn: an empty Flask JSON endpoint, served with the project's settings.

`gunicorn -c gunicorn.conf.py bench.baselines:app`: the positional app replaces the config's
`wsgi_app`, and every other setting stays the project's. The service can at best match it.
"""

from flask import Flask, request

app = Flask(__name__)


@app.post("/predict")
def predict() -> dict[str, int]:
    """Parse the body as the service must, then answer a constant."""
    request.get_json()
    return {"prediction": 0}
