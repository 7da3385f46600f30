"""What gunicorn.conf.py hands over to: the process prepared, settings read from the
environment, gunicorn's own log lines in the app's JSON, and the lifecycle hooks.

prepare() runs first, before prometheus_client or numpy is imported anywhere: both read the
environment it sets when they are imported.
"""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from typing import Any

from gunicorn.glogging import Logger

from ..runtime import tuning
from ..runtime.cloud import service_context
from ..runtime.logs import CloudLoggingFormatter
from ..runtime.settings import ConfigError
from .worker import SHARES


def prepare() -> None:
    """Tune the process, and give the workers a folder for their Prometheus samples.

    Workers write their samples there and /metrics sums them (prometheus_client's
    multiprocess mode). In memory, so a fully read-only root works too; removed when the
    master exits, however it exits (a refused boot too); workers leave it alone. A folder
    given in PROMETHEUS_MULTIPROC_DIR is emptied: an earlier run's samples would add up.
    """
    tuning.prepare()
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        for name in os.listdir(given):
            if name.endswith(".db"):
                os.unlink(os.path.join(given, name))
        return
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    own = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-", dir=shm)
    master = os.getpid()

    def remove() -> None:
        if os.getpid() == master:
            shutil.rmtree(own, ignore_errors=True)

    atexit.register(remove)


def from_env(parse: Callable[..., Any], name: str, default: Any, *limits: int) -> Any:
    """A setting parsed by webapp.runtime.settings' parsers; a bad value stops gunicorn at once."""
    raw = os.environ.get(name, "").strip()
    try:
        return parse(name, raw, *limits) if raw else default
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


def check_listen(host: str, port: int) -> None:
    """Stop at once, in one line, if gunicorn could not listen on host:port (a port taken, a
    host name that does not resolve, an address not of this machine).

    Bound and closed again the way gunicorn binds (SO_REUSEADDR, IPv6 for an address with a
    colon). Skipped where gunicorn inherits its sockets (a re-exec, systemd's activation).
    """
    if os.environ.get("GUNICORN_FD") or os.environ.get("LISTEN_FDS"):
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        taken = exc.errno == errno.EADDRINUSE
        why = "the address is already in use" if taken else exc.strerror or str(exc)
        raise SystemExit(f"cannot listen on {host}:{port}: {why}") from None


class JsonLogger(Logger):
    """gunicorn's error and access lines as the app's JSON lines.

    Formatting its handlers (rather than setting logconfig_dict) keeps gunicorn's shortcut of
    not building access-log data at all while the access log is off.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        project = os.environ.get("GOOGLE_CLOUD_PROJECT")
        formatter = CloudLoggingFormatter(project, service_context(os.environ))
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(formatter)

    # Error Reporting groups gunicorn's errors (a worker killed or timed out) by where they were
    # logged: the line in gunicorn that noticed, not this wrapper of gunicorn's.
    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.error(msg, *args, stacklevel=2, **kwargs)

    def critical(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.error_log.critical(msg, *args, stacklevel=2, **kwargs)


def when_ready(server: Any) -> None:
    """Settle the master's memory before the first fork (tuning.settle)."""
    tuning.settle(server.app.wsgi() if server.cfg.preload_app else None)


def worker_abort(worker: Any) -> None:
    worker.log.warning("worker %d timed out and was aborted", worker.pid)


def child_exit(server: Any, worker: Any) -> None:
    """Forget a worker gone: its live gauges, its count of connections."""
    from prometheus_client import multiprocess  # after prepare(), as it requires

    multiprocess.mark_process_dead(worker.pid)
    SHARES.release(worker.age)
