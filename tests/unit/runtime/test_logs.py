"""The log's shape in process: what reaches stderr is JSON, one object per line."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator

import pytest

from webapp.runtime.logs import configure_logging

pytestmark = pytest.mark.unit


@pytest.fixture
def restored() -> Iterator[None]:
    """The root logger and Python's warnings as they were, after a test configures them; and
    warnings not captured before it, whatever an earlier test in this process configured
    (pytest puts back its own `warnings.showwarning` after each test, not logging's)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logging.captureWarnings(False)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = handlers
        root.setLevel(level)


def test_a_python_warning_is_logged_as_one_json_line(
    restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A library's warning at serve time is a WARNING record like any other, not the two
    lines of text Python writes by default."""
    configure_logging("INFO")  # onto the stderr captured now
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # pytest makes warnings errors
        warnings.warn("overflow encountered in cast", RuntimeWarning, stacklevel=1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["severity"] == "WARNING"
    assert record["name"] == "py.warnings"
    assert "RuntimeWarning: overflow encountered in cast" in record["message"]
