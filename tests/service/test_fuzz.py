"""The API fuzzer: schemathesis drives real gunicorn and the function from their /openapi.json.

All its checks, on valid and on invalid (negative) data: no 5xx, only documented status codes,
content types and bodies, invalid data refused. The seed is fixed so that a failure replays.
The one rule JSON Schema cannot state is told to it in CONFIG: an infer request's inputs must
match the model.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from testkit.processes import BIN, Server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# An infer request's inputs must match the model: their names, their data against their shapes,
# their datatypes against the features. A schema-valid one may therefore be refused with a 400
# (and nothing else); every other check stays as strict.
CONFIG = """
[[operations]]
include-path-regex = "/infer$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404"]
"""


@pytest.mark.parametrize("fixture", ["gunicorn_server", "function_server"])
def test_schemathesis_finds_nothing(
    request: pytest.FixtureRequest, fixture: str, tmp_path: Path
) -> None:
    server: Server = request.getfixturevalue(fixture)
    logged_before = len(server.output())
    url = f"http://127.0.0.1:{server.port}"
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    argv = [str(BIN / "schemathesis"), "--config-file", str(config), "run", f"{url}/openapi.json"]
    argv += ["--url", url]
    argv += ["--checks", "all", "--mode", "all", "--max-examples", "150", "--seed", "20261127"]
    run = subprocess.run(
        argv,
        cwd=tmp_path,  # where it keeps its .schemathesis folder
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout, run.stdout[-3000:]
    assert "Traceback" not in server.output()[logged_before:]
