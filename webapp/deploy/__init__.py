"""The deploy tools: the Cloud Function's upload folder (bundle.py), and the gcloud commands
that deploy to Cloud Run, Cloud Functions and Vertex AI (gcloud.py).

Like the packaging code they run where models are made, never where they are served: nothing
at serve time imports them (an import-linter contract), and neither the image nor the
function's upload holds them.
"""
