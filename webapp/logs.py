"""Logging configuration, called once by each entry point before the app exists."""

from __future__ import annotations

import logging
import sys

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def configure_logging(level: str = "INFO") -> None:
    """Send every record to stderr, one line each, at `level` (LOG_LEVEL)."""
    name = level.strip().upper()
    if name not in LEVELS:
        raise SystemExit(f"LOG_LEVEL must be one of {', '.join(LEVELS)}, got {level!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(name)
