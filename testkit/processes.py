"""Real server processes on 127.0.0.1, for the tests and the benchmarks: start, probe, stop.

Each gets a free port and an environment of its own, every wait has a deadline, and every
process started here is stopped by its own handle (SIGTERM, or the engine's stop), never by name.
"""

from __future__ import annotations

import http.client
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
JSON = {"Content-Type": "application/json"}

# What a server started here inherits from the caller's environment: nothing that configures
# the project, gunicorn, functions-framework or Python's warnings; only what locates programs
# and files, and the machine's BLAS kernel choice (the suite must pass under any of them).
# So tests do not depend on the caller's shell, and benchmarks measure the shipped defaults.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "OPENBLAS_CORETYPE")

_containers = itertools.count()


class ServerFailed(AssertionError):
    """A server exited, did not answer in time or did not stop: in a test, a failure."""


def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a process started here: the INHERITED variables, then `extra`."""
    return {**{k: os.environ[k] for k in INHERITED if k in os.environ}, **(extra or {})}


def free_port() -> int:
    """A port on 127.0.0.1 that nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process on 127.0.0.1: started, probed, measured and stopped by its own handle.

    "{port}" in `argv` becomes the port, which the process also gets as PORT; its environment
    is `server_env(env)`. Its output goes to a temporary file: a pipe nobody reads would block
    a chatty server.
    """

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    cwd: Path = ROOT
    name: str = ""
    predict_path: str = "/predict"
    container: str | None = None  # the container's name, when `argv` is `ENGINE run ...`
    engine: str = "podman"
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    started_at: float = 0.0
    _output: str = ""

    @classmethod
    def at(cls, base_url: str) -> Server:
        """A server somebody else started, such as the container, at http://127.0.0.1:PORT."""
        host, _, port = base_url.removeprefix("http://").rstrip("/").rpartition(":")
        assert host in ("127.0.0.1", "localhost"), "tests talk to this machine only"
        return cls([], port=int(port))

    @property
    def label(self) -> str:
        return self.name or " ".join(self.argv)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def predict_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.predict_path}"

    def spawn(self) -> Server:
        """Start the process, without waiting; `started_at` is the moment before the spawn."""
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        env = server_env({"PORT": str(self.port), **self.env})
        self.log = tempfile.TemporaryFile()
        self._output = ""
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, cwd=self.cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        return self

    def wait_ready(
        self, path: str = "/health", body: bytes | None = None, deadline: float = 30.0
    ) -> float:
        """Poll until `path` answers 200 (to a POST of `body`, if given); the seconds since the
        spawn. Raises ServerFailed if the process exits first or `deadline` s pass."""
        assert self.proc is not None
        method, headers = ("GET", {}) if body is None else ("POST", JSON)
        until = self.started_at + deadline
        while time.perf_counter() < until:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise ServerFailed(f"{self.label} exited {code}:\n{self.output()}")
            try:
                if self.request(method, path, body, headers)[0] == 200:
                    return time.perf_counter() - self.started_at
            except OSError:
                pass
            time.sleep(0.005)
        raise ServerFailed(f"{self.label} not ready in {deadline} s:\n{self.output()}")

    def start(
        self,
        ready_path: str = "/health",
        body: bytes | None = None,
        deadline: float = 30.0,
        attempts: int = 3,
    ) -> Server:
        """Spawn and wait until ready (see wait_ready); stopped again if it never is.

        If another process took the port between free_port() and the bind, again on another.
        """
        self.spawn()
        try:
            self.wait_ready(ready_path, body, deadline)
        except ServerFailed:
            assert self.proc is not None
            exited = self.proc.poll() is not None
            self.stop()
            taken = "Connection in use" in self.output() or "already in use" in self.output()
            if exited and taken and attempts > 1:
                self.port = free_port()
                return self.start(ready_path, body, deadline, attempts - 1)
            raise
        return self

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request on a new connection: status, headers and body."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            try:
                conn.request(method, path, body=body, headers=dict(headers or {}))
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered (a 413, say) and closed before the whole body was sent
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (a container: the engine's stop), wait, keep the output; the exit status.

        Safe to call twice, and on a server never spawned (None). A process still running
        after `timeout` s is killed, and that raises ServerFailed.
        """
        if self.proc is None:
            return None
        try:
            if self.proc.poll() is None:
                if self.container:
                    stop = [self.engine, "stop", "-t", "10", self.container]
                    subprocess.run(stop, capture_output=True, timeout=30)
                else:
                    self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise ServerFailed(f"{self.label} did not stop on SIGTERM:\n{self.output()}") from None
        finally:
            self.output()
            if self.log is not None:
                self.log.close()
            if self.container:
                remove = [self.engine, "rm", "-f", self.container]
                subprocess.run(remove, capture_output=True, timeout=30)

    def output(self) -> str:
        """Everything the process has printed so far."""
        if self.log is not None and not self.log.closed:
            self.log.seek(0)
            self._output = self.log.read().decode(errors="replace")
        return self._output

    def pids(self) -> tuple[int, list[int]]:
        """The master's pid and its children's (the workers)."""
        assert self.proc is not None
        return self.proc.pid, children(self.proc.pid)


def gunicorn(
    env: Mapping[str, str] | None = None,
    *,
    workers: int | None = 2,
    app: str | None = None,
    name: str = "gunicorn",
) -> Server:
    """gunicorn exactly as `make run` starts it (`python serve.py`), `env` on top.

    Two workers, not gunicorn.conf.py's one per CPU, so that tests do not depend on the
    machine; `workers=None` keeps that default (the benchmarks measure it), and WEB_CONCURRENCY
    in `env` wins over both. A positional `app` replaces the config's wsgi_app.
    """
    argv = [str(BIN / "python"), "serve.py", *([app] if app else [])]
    default = {"WEB_CONCURRENCY": str(workers)} if workers else {}
    return Server(argv, {**default, **(env or {})}, name=name)


def functions_framework_server(
    env: Mapping[str, str] | None = None,
    *,
    source: str = "gcf/main.py",
    target: str = "predict",
    name: str = "functions-framework",
) -> Server:
    """A function exactly as Cloud Functions runs it, from a working directory elsewhere."""
    argv = [str(BIN / "functions-framework"), "--target", target, "--source", str(ROOT / source)]
    argv += ["--host", "127.0.0.1", "--port", "{port}"]
    return Server(argv, dict(env or {}), cwd=Path("/"), name=name, predict_path="/")


def flask_run(
    app: str = "webapp",
    options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    name: str = "flask run",
) -> Server:
    """Flask's own server as `make dev` starts it (one BLAS thread), with `options` for `run`."""
    argv = [str(BIN / "flask"), "--app", app, "run", *options]
    argv += ["--host", "127.0.0.1", "--port", "{port}"]
    return Server(argv, {"OMP_NUM_THREADS": "1", **(env or {})}, name=name)


def storage_emulator(*, name: str = "gcp-storage-emulator") -> Server:
    """Cloud Storage's JSON API on 127.0.0.1 (gcp-storage-emulator, in memory, a thread per
    connection: testkit.emulator).

    Clients reach it through STORAGE_EMULATOR_HOST=`server.url`; it answers GET / with 200
    once it listens, so start() waits for that.
    """
    argv = [str(BIN / "python"), "-m", "testkit.emulator", "start", "--in-memory", "--quiet"]
    argv += ["--host", "127.0.0.1", "--port", "{port}"]
    return Server(argv, name=name)


def container(
    engine: str,
    image: str,
    env: Mapping[str, str] | None = None,
    *,
    options: Sequence[str] = (),
    command: Sequence[str] = (),
    name: str = "container",
) -> Server:
    """`image` under `ENGINE run`, published on 127.0.0.1 only; PORT=8080 and `env` inside.

    The engine gets this process's whole environment (CONTAINERS_CONF, XDG_RUNTIME_DIR): the
    container's own is the image's, plus what `-e` passes, nothing inherited.
    """
    unique = f"sklearn-serve-testkit-{os.getpid()}-{next(_containers)}"
    argv = [engine, "run", "--rm", "--name", unique, "-p", "127.0.0.1:{port}:8080"]
    for key, value in {"PORT": "8080", **(env or {})}.items():
        argv += ["-e", f"{key}={value}"]
    argv += [*options, image, *command]
    return Server(argv, dict(os.environ), name=name, container=unique, engine=engine)


def children(pid: int) -> list[int]:
    """The pids whose parent is `pid`, zombies included (psutil); none once `pid` is gone."""
    try:
        return sorted(child.pid for child in psutil.Process(pid).children())
    except psutil.NoSuchProcess:
        return []


def memory_kib(pid: int) -> dict[str, int]:
    """PSS and USS of a process, in KiB: psutil's memory_full_info, from smaps_rollup.

    Its uss is the sum of the Private_* lines (clean, dirty, and hugetlb, which only explicit
    huge pages fill), its pss the Pss line. Raises psutil.NoSuchProcess once the process is gone.
    """
    memory = psutil.Process(pid).memory_full_info()
    return {"pss": memory.pss // 1024, "uss": memory.uss // 1024}


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; return whether it held."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
