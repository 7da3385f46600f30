"""The process: settings, metrics, logs, Google Cloud's context, tuning."""
