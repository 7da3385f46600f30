"""gunicorn settings for the prediction service: `gunicorn -c python:webapp.server.gunicorn_config`,
as `sklearn-serve serve`, `python serve.py` and the image start it (webapp/server/start.py).

A module of the package, not a file beside it, so an installed copy finds it from any folder.
Every value can be set from the environment; a bad value stops gunicorn with a message that
names the variable. No application logic lives here.
"""

import os

from . import conf

conf.prepare()  # before anything imports numpy or prometheus_client

from ..runtime.logs import parse_level  # noqa: E402
from ..runtime.settings import (  # noqa: E402
    ConfigError,
    Settings,
    boolean,
    host,
    non_negative_int,
    positive_int,
)
from .worker import BufferingWorker  # noqa: E402

_from_env = conf.from_env

wsgi_app = "webapp.wsgi:app"
# Cloud Run sets PORT; a Vertex AI custom container is told its port in AIP_HTTP_PORT. Only this
# machine may connect unless HOST says otherwise: the image sets HOST=0.0.0.0.
_port_variable = "AIP_HTTP_PORT" if os.environ.get("AIP_HTTP_PORT") else "PORT"
_port = _from_env(positive_int, _port_variable, 8080, 65535)
_host = _from_env(host, "HOST", "127.0.0.1")
bind = f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"
# A port already taken: one line and exit 1 now, not gunicorn's five attempts over five
# seconds, each logged as an error (and so, on Google Cloud, an Error Reporting event).
conf.check_listen(_host, _port)

# Load the model once in the master, then fork: workers share its pages, and a bad artifact
# stops the boot before the port opens instead of crash-looping workers.
preload_app = True

# A prediction is a few hundred microseconds of CPU: one single-threaded worker per core keeps
# every core busy without the GIL contention of threads. Cloud Run sets no WEB_CONCURRENCY;
# the CPUs this process may use are the right default there and here.
workers = _from_env(positive_int, "WEB_CONCURRENCY", len(os.sched_getaffinity(0)), 64)

# Each worker reads whole requests in a selector loop before serving them one at a time, so
# clients that send slowly wait in that loop, not in a worker (webapp/server/worker.py).
# Headers must arrive within GUNICORN_HEADER_TIMEOUT s of the connection, the body within
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
logger_class = conf.JsonLogger
loglevel = parse_level(os.environ.get("LOG_LEVEL", "INFO")).lower()
errorlog = "-"
accesslog = "-" if _from_env(boolean, "GUNICORN_ACCESS_LOG", False) else None

when_ready = conf.when_ready  # settles the master's memory before the first fork
worker_abort = conf.worker_abort
child_exit = conf.child_exit  # a dead worker's gauges and connections no longer count
