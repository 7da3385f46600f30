"""gunicorn settings for the prediction service (`python serve.py`, `gunicorn -c gunicorn.conf.py`).

Every value can be set from the environment; a bad value stops gunicorn with a message that
names the variable. No application logic lives here.
"""

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from webapp.runtime import tuning

tuning.prepare()  # before the app, and so numpy, is imported

# Workers write their Prometheus samples here and /metrics sums them (prometheus_client's
# multiprocess mode); it must be set before anything imports prometheus_client.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # In memory like the heartbeat file below, so a fully read-only root works too. Removed
    # when the master exits, however it exits (a refused boot too); workers leave it alone.
    _shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    _own = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-", dir=_shm)
    _master = os.getpid()
    atexit.register(lambda: os.getpid() == _master and shutil.rmtree(_own, ignore_errors=True))
else:  # samples left by an earlier run would be added to this run's
    for _name in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]):
        if _name.endswith(".db"):
            os.unlink(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], _name))

from gunicorn.glogging import Logger  # noqa: E402
from prometheus_client import multiprocess  # noqa: E402

from webapp.runtime.cloud import service_context  # noqa: E402
from webapp.runtime.logs import CloudLoggingFormatter, parse_level  # noqa: E402
from webapp.runtime.settings import (  # noqa: E402
    ConfigError,
    Settings,
    boolean,
    ip_address,
    non_negative_int,
    positive_int,
)
from webapp.server.worker import SHARES, BufferingWorker  # noqa: E402


def _from_env(parse: Callable[..., Any], name: str, default: Any, *limits: int) -> Any:
    """A setting parsed by webapp.runtime.settings' parsers; a bad value stops gunicorn at once."""
    raw = os.environ.get(name, "").strip()
    try:
        return parse(name, raw, *limits) if raw else default
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


wsgi_app = "wsgi:app"
# Cloud Run sets PORT; a Vertex AI custom container is told its port in AIP_HTTP_PORT. Only this
# machine may connect unless HOST says otherwise: the image sets HOST=0.0.0.0.
_port_variable = "AIP_HTTP_PORT" if os.environ.get("AIP_HTTP_PORT") else "PORT"
_port = _from_env(positive_int, _port_variable, 8080, 65535)
_host = _from_env(ip_address, "HOST", "127.0.0.1")
bind = f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"

# Load the model once in the master, then fork: workers share its pages, and a bad artifact
# stops the boot before the port opens instead of crash-looping workers.
preload_app = True

# A prediction is a few hundred microseconds of CPU: one single-threaded worker per core keeps
# every core busy without the GIL contention of threads. Cloud Run sets no WEB_CONCURRENCY;
# the CPUs this process may use are the right default there and here.
workers = _from_env(positive_int, "WEB_CONCURRENCY", len(os.sched_getaffinity(0)), 64)

# Each worker reads whole requests in a selector loop before serving them one at a time, so
# clients that send slowly wait in that loop, not in a worker (webapp/worker.py). Headers must
# arrive within GUNICORN_HEADER_TIMEOUT s of the connection, the body within
# GUNICORN_BODY_TIMEOUT s of the headers, or the client gets a 408.
try:
    _max_body = Settings.from_mapping(os.environ).max_content_length
except ConfigError as exc:
    raise SystemExit(str(exc)) from None
worker_class = BufferingWorker.configured(
    header_timeout=_from_env(positive_int, "GUNICORN_HEADER_TIMEOUT", 10, 3600),
    body_timeout=_from_env(positive_int, "GUNICORN_BODY_TIMEOUT", 30, 3600),
    max_body=_max_body,
)
# Connections one worker reads at once; beyond them, new ones wait in the listen backlog.
worker_connections = 1000

# A request that takes this long is stuck: the worker is killed and replaced.
timeout = _from_env(positive_int, "GUNICORN_TIMEOUT", 30, 3600)
# Cloud Run sends SIGTERM and kills 10 s later: drain in-flight requests well before that.
graceful_timeout = 8
# A client that asks for HTTP/1.1 keep-alive keeps its connection this many seconds between
# requests (0: every answer closes it). Behind a load balancer, set it above the balancer's own
# idle timeout, so that the balancer, not the server, closes idle connections.
keepalive = _from_env(non_negative_int, "GUNICORN_KEEPALIVE", 5, 3600)

# Where the app is mounted is ours to say: gunicorn would take a SCRIPT_NAME header from any
# client on 127.0.0.1 (its default trusted forwarder), and answer a mismatched one with a 500.
forwarder_headers = ""

# gunicorn 25+ opens a control socket under $HOME: not wanted, and not writable read-only.
control_socket_disable = True

# The heartbeat file lives in memory: faster than disk, and writable on a read-only root.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


# gunicorn's own lines in the app's JSON format. Cloud Run records every request already, so
# its access log is off unless GUNICORN_ACCESS_LOG asks for it (ACCESS_LOG is the app's own).
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


logger_class = JsonLogger
loglevel = parse_level(os.environ.get("LOG_LEVEL", "INFO")).lower()
errorlog = "-"
accesslog = "-" if _from_env(boolean, "GUNICORN_ACCESS_LOG", False) else None


def when_ready(server):
    tuning.settle(server.app.wsgi() if server.cfg.preload_app else None)  # before the first fork


def worker_abort(worker):
    worker.log.warning("worker %d timed out and was aborted", worker.pid)


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)  # its live gauges no longer count
    SHARES.release(worker.age)  # a killed worker's count of connections no longer counts
