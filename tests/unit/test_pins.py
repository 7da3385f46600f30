"""webapp/pins.py: the pinned libraries' private fast paths, and the public APIs they fall back to.

The metrics' fallback is proven in tests/unit/runtime/test_metrics.py (the files prometheus_client's
own class writes); the ONNX engine's here, on the shipped model: the public call answers exactly as
the private one.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from testkit.processes import ROOT
from webapp import pins
from webapp.core.model import load_model

pytestmark = pytest.mark.unit


def test_the_tested_versions_are_the_pinned_ones() -> None:
    """A pin moved without TESTED moving would silently turn the fast paths off."""
    pinned = dict(re.findall(r"^([\w.-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    assert {name: pinned[name] for name in pins.TESTED} == pins.TESTED


def test_another_version_takes_the_public_api(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert pins.private_api_usable("onnxruntime", "calls")
    monkeypatch.setitem(pins.TESTED, "onnxruntime", "0.1.0")
    with caplog.at_level(logging.INFO, logger="webapp.pins"):
        assert not pins.private_api_usable("onnxruntime", "calls")
    assert "it is 1.32.0, not 0.1.0" in caplog.text


def test_the_public_session_call_answers_as_the_private_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private = load_model(ROOT / "model.pkl", engine="onnx")
    monkeypatch.setenv("PUBLIC_APIS_ONLY", "true")
    public = load_model(ROOT / "model.pkl", engine="onnx")
    session = public.engine.session  # type: ignore[attr-defined]
    assert public.engine._run == session.run  # type: ignore[attr-defined]
    assert private.engine._run != private.engine.session.run  # type: ignore[attr-defined]
    rows = public.columns(public.manifest["self_check"]["instances"])
    assert np.array_equal(public.engine.predict_proba(rows), private.engine.predict_proba(rows))
    assert public.predict(rows) == private.predict(rows)


def test_the_setting_is_validated() -> None:
    from webapp.runtime.settings import ConfigError, Settings

    assert Settings.from_mapping({"PUBLIC_APIS_ONLY": "true"}).public_apis_only
    with pytest.raises(ConfigError, match="PUBLIC_APIS_ONLY must be true or false"):
        Settings.from_mapping({"PUBLIC_APIS_ONLY": "sometimes"})
