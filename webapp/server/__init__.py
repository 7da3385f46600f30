"""gunicorn's side: the worker that reads, frames and answers connections."""
