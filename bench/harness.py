"""The benchmarks' tools: request bodies, server processes, wrk runs and memory readings.

Everything talks to 127.0.0.1 only, every wait has a deadline, and every process started here
is stopped by its own handle (SIGTERM, then SIGKILL), never by name.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LUA_SCRIPT = Path(__file__).with_name("bodies.lua")
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")

# Settings a caller's shell may hold: removed, so every run measures the shipped defaults.
_PROJECT_VARIABLES = (
    "PORT",
    "AIP_HTTP_PORT",
    "WEB_CONCURRENCY",
    "GUNICORN_THREADS",
    "GUNICORN_TIMEOUT",
    "ACCESS_LOG",
    "LOG_LEVEL",
    "MODEL_PATH",
    "MODEL_SHA256",
    "MAX_CONTENT_LENGTH",
    "MAX_BATCH_SIZE",
    "WORKERS",
    "THREADS",
)


def iris_rows() -> list[list[float]]:
    """The 150 Iris rows: request bodies cycle through them, so every body differs."""
    from sklearn.datasets import load_iris

    return [[float(x) for x in row] for row in load_iris().data]


def single_bodies(rows: Sequence[Sequence[float]]) -> list[str]:
    """One single-instance body per row."""
    return [json.dumps(dict(zip(FEATURES, row, strict=True))) for row in rows]


def batch_bodies(
    rows: Sequence[Sequence[float]], size: int, shape: str, variants: int = 4
) -> list[str]:
    """`variants` batch bodies of `size` instances, each starting at another row."""
    bodies = []
    for v in range(variants):
        start = v * 37
        chosen = [rows[(start + i) % len(rows)] for i in range(size)]
        if shape == "objects":
            instances: list[Any] = [dict(zip(FEATURES, r, strict=True)) for r in chosen]
        else:
            instances = [list(r) for r in chosen]
        bodies.append(json.dumps({"instances": instances}, separators=(",", ":")))
    return bodies


def write_bodies(folder: Path, name: str, bodies: Sequence[str]) -> Path:
    """The bodies, one per line, for bodies.lua."""
    path = folder / f"{name}.jsonl"
    path.write_text("\n".join(bodies) + "\n", encoding="utf-8")
    return path


def free_port() -> int:
    """A port on 127.0.0.1 that nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without the project's settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in _PROJECT_VARIABLES}
    env.update(extra or {})
    return env


def post(port: int, path: str, body: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    """POST a JSON body to 127.0.0.1:port; returns status and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Server:
    """A server process on 127.0.0.1: started, awaited, measured and stopped by its handle."""

    name: str
    argv: list[str]
    path: str = "/predict"
    env: dict[str, str] = field(default_factory=clean_env)
    port: int = field(default_factory=free_port)
    cwd: Path = ROOT
    container: str | None = None  # the container's name, when the process is `podman run`
    engine: str = "podman"
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    started_at: float = 0.0

    def spawn(self) -> Server:
        """Start the process, without waiting; `started_at` is the moment before the spawn."""
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        self.log = tempfile.TemporaryFile()
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, cwd=self.cwd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        return self

    def wait_first_prediction(self, body: bytes, deadline: float = 60.0) -> float:
        """Poll until POST `path` answers 200; returns the seconds since the spawn."""
        assert self.proc is not None
        until = self.started_at + deadline
        while time.perf_counter() < until:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.output()}")
            try:
                status, _ = post(self.port, self.path, body, timeout=5.0)
            except OSError:
                time.sleep(0.005)
                continue
            if status == 200:
                return time.perf_counter() - self.started_at
            time.sleep(0.005)
        raise RuntimeError(f"{self.name} gave no prediction in {deadline} s:\n{self.output()}")

    def start(self, body: bytes) -> Server:
        """Spawn and wait until it predicts."""
        self.spawn().wait_first_prediction(body)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def stop(self) -> None:
        """SIGTERM (or `podman stop`), wait, SIGKILL if it lingers; safe to call twice."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                if self.container:
                    subprocess.run(
                        [self.engine, "stop", "-t", "10", self.container],
                        capture_output=True,
                        timeout=30,
                    )
                else:
                    self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        finally:
            if self.container:
                subprocess.run(
                    [self.engine, "rm", "-f", self.container], capture_output=True, timeout=30
                )
            self.proc = None

    def output(self) -> str:
        """The last lines the process printed, for error messages."""
        if self.log is None:
            return ""
        self.log.seek(0)
        return "\n".join(self.log.read().decode(errors="replace").splitlines()[-30:])

    def pids(self) -> tuple[int, list[int]]:
        """The master's pid and its children's (the workers)."""
        assert self.proc is not None
        return self.proc.pid, children(self.proc.pid)


def children(pid: int) -> list[int]:
    """The pids whose parent is `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name, in parentheses, may hold spaces: the fields follow its last ")"
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def memory_kib(pid: int) -> dict[str, int]:
    """PSS and USS (private clean + private dirty) of a process, in KiB, from smaps_rollup."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Pss", "Private_Clean", "Private_Dirty"):
            values[key] = int(rest.split()[0])
    return {"pss": values["Pss"], "uss": values["Private_Clean"] + values["Private_Dirty"]}


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


def run_wrk(server: Server, bodies: Path, connections: int, seconds: float) -> Load:
    """Load `server` with wrk for `seconds` at `connections`, cycling through `bodies`.

    One wrk thread: on two cores a second one would take CPU from the server it measures.
    A non-2xx answer means the benchmark itself is wrong, so it stops the run.
    """
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA_SCRIPT),
        server.url,
        "--",
        str(bodies),
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
