"""The benchmarks' load generator: wrk runs against a server, with their latencies and errors.

The servers, request bodies and memory readings come from testkit, which the tests use too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testkit.processes import Server

LUA_SCRIPT = Path(__file__).with_name("bodies.lua")
TENSORS_SCRIPT = Path(__file__).with_name("tensors.lua")


@dataclass(frozen=True)
class Load:
    """One wrk run: throughput, latency percentiles (ms) and errors."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    status_errors: int
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


_RESULT = re.compile(r"^BENCH (.*)$", re.MULTILINE)


def ensure_wrk() -> None:
    """Install wrk from Debian's packages if it is missing (as root, as CI runs)."""
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing: install it with `sudo apt-get install -y wrk`")
    print("installing wrk from Debian's packages", flush=True)
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=apt_env, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=apt_env, timeout=300)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is still missing after apt-get install")


def run_wrk(
    server: Server, bodies: Path, connections: int, seconds: float, close: bool = False
) -> Load:
    """Load `server` with wrk for `seconds` at `connections`, cycling through `bodies`;
    `close`: every request asks for Connection: close, else connections are kept alive.

    One wrk thread: on two cores a second one would take CPU from the server it measures.
    A non-2xx answer means the benchmark itself is wrong, so it stops the run.
    """
    script_args = [str(bodies), *(["close"] if close else [])]
    return _wrk(server, server.predict_url, LUA_SCRIPT, script_args, connections, seconds)


def run_tensors(
    server: Server, path: str, header_length: int, bodies: Sequence[Path], seconds: float
) -> Load:
    """Load `server` with V2 infer requests in the binary tensor extension (tensors.lua) on one
    connection: `bodies` are whole bodies, each a JSON header of `header_length` bytes, then
    the tensor's bytes."""
    script_args = [str(header_length), *map(str, bodies)]
    return _wrk(server, f"{server.url}{path}", TENSORS_SCRIPT, script_args, 1, seconds)


def _wrk(
    server: Server,
    url: str,
    script: Path,
    script_args: Sequence[str],
    connections: int,
    seconds: float,
) -> Load:
    """One wrk run of `script` against `url`, its BENCH line read as a Load."""
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
        "--",
        *script_args,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    match = _RESULT.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    fields = {k: int(float(v)) for k, v in (kv.split("=") for kv in match.group(1).split())}
    if fields["status_errors"]:
        raise RuntimeError(f"{server.name} answered {fields['status_errors']} non-2xx responses")
    return Load(
        requests=fields["requests"],
        seconds=fields["duration_us"] / 1e6,
        p50_ms=fields["p50_us"] / 1e3,
        p90_ms=fields["p90_us"] / 1e3,
        p99_ms=fields["p99_us"] / 1e3,
        max_ms=fields["max_us"] / 1e3,
        status_errors=fields["status_errors"],
        socket_errors=fields["socket_errors"],
    )


def wrk_version() -> str:
    """wrk's version line."""
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    return (done.stdout + done.stderr).strip().splitlines()[0]
