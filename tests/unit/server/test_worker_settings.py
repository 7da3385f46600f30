"""webapp/server/worker.py's SettingsSnapshot: the worker reads gunicorn's settings from a
snapshot, and reads from it exactly what gunicorn's Config gives, settings and properties
alike. The service tests run every request through it."""

from __future__ import annotations

from typing import Any

import pytest
from gunicorn.config import Config

from webapp.server.worker import BufferingWorker, SettingsSnapshot

pytestmark = pytest.mark.unit


def service_config() -> Any:
    """gunicorn's Config with settings of the kinds webapp/server/gunicorn_config.py sets (not
    imported: it prepares the process and probes its port)."""
    cfg = Config()
    for name, value in {
        "worker_class": BufferingWorker.configured(header_timeout=3),
        "keepalive": 7,
        "forwarder_headers": "",
        "preload_app": True,
    }.items():
        cfg.set(name, value)
    return cfg


def test_the_snapshot_reads_as_gunicorns_config() -> None:
    cfg = service_config()
    snapshot = SettingsSnapshot(cfg)
    properties = [n for n, v in vars(Config).items() if isinstance(v, property)]
    assert "worker_class" in properties and "is_ssl" in properties  # also settings' names
    for name in [*cfg.settings, *properties]:
        assert getattr(snapshot, name) == getattr(cfg, name), name
    assert snapshot.worker_class is cfg.settings["worker_class"].get()  # the class itself
    assert (snapshot.keepalive, snapshot.forwarder_headers) == (7, [])
    assert snapshot.pre_request is cfg.pre_request  # a hook, called with the worker
    with pytest.raises(AttributeError):
        _ = snapshot.no_such_setting
