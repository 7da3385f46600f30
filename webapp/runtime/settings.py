"""The service's settings: names, defaults and validation, shared by the app and the function.

Values come from a mapping (the environment, or a test's overrides) and are checked once at
start-up, so a typo stops the boot with a message that names the setting.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENGINES = ("auto", "onnx", "sklearn")  # webapp/core/model.py's engines
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_PATH = PROJECT_ROOT / "model.pkl"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_URL_PATH = re.compile(r"/[A-Za-z0-9._~:@!$&'()*+,;=/-]*")
# gs://bucket/object: Cloud Storage's bucket naming rules, and an object name without control
# characters, empty, "." or ".." segments.
_GS_URL = re.compile(r"gs://([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(?:/(.*))?", re.DOTALL)
_GS_SEGMENT = re.compile(r"[^\x00-\x1f\x7f]+")
# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")
SETTING_NAMES = (
    "MODEL_PATH",
    "AIP_STORAGE_URI",
    "MODEL_SHA256",
    "ENGINE",
    "MAX_CONTENT_LENGTH",
    "MAX_BATCH_SIZE",
    "AIP_HEALTH_ROUTE",
    "AIP_PREDICT_ROUTE",
    "ACCESS_LOG",
    "PUBLIC_APIS_ONLY",
)


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


@dataclass(frozen=True)
class Settings:
    """Everything configurable about the API, validated."""

    model_path: Path = DEFAULT_MODEL_PATH
    # A model in Cloud Storage, fetched at start (webapp/storage.py): gs://bucket/path/model.pkl,
    # or a folder (ending in "/") holding model.json, as Vertex AI's AIP_STORAGE_URI names one.
    model_url: str | None = None
    model_sha256: str | None = None  # the manifest's sha256, which covers every model file
    engine: str = "auto"  # auto: the verified compiled form where there is one; onnx; sklearn
    max_content_length: int = 2 * 1024 * 1024
    max_batch_size: int = 10_000
    access_log: bool = False
    # Never the pinned libraries' private fast paths (webapp/pins.py reads it as they start).
    public_apis_only: bool = False
    # Vertex AI custom containers name their own health and predict routes.
    vertex_health_route: str | None = None
    vertex_predict_route: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Read the settings named in SETTING_NAMES where present; the rest keep defaults."""
        chosen: dict[str, Any] = {}
        # MODEL_PATH is the operator's own word; AIP_STORAGE_URI is what Vertex AI passes when
        # the model has an artifact folder, so it counts only where MODEL_PATH is unset.
        model_path = str(values.get("MODEL_PATH") or "")
        if model_path.startswith("gs://"):
            chosen["model_url"] = gs_url("MODEL_PATH", model_path, folder=False)
        elif "://" in model_path:
            raise ConfigError(f"MODEL_PATH must be a local path or a gs:// URL, got {model_path!r}")
        elif model_path:
            chosen["model_path"] = Path(model_path)
        elif values.get("AIP_STORAGE_URI"):
            chosen["model_url"] = gs_url("AIP_STORAGE_URI", values["AIP_STORAGE_URI"], folder=True)
        if values.get("MODEL_SHA256"):
            pin = str(values["MODEL_SHA256"]).strip().lower()
            if not _SHA256.fullmatch(pin):
                raise ConfigError("MODEL_SHA256 must be 64 hexadecimal characters")
            chosen["model_sha256"] = pin
        if values.get("ENGINE"):
            chosen["engine"] = choice("ENGINE", values["ENGINE"], ENGINES)
        if values.get("MAX_CONTENT_LENGTH") is not None:
            chosen["max_content_length"] = positive_int(
                "MAX_CONTENT_LENGTH", values["MAX_CONTENT_LENGTH"], 2**30
            )
        if values.get("MAX_BATCH_SIZE") is not None:
            chosen["max_batch_size"] = positive_int(
                "MAX_BATCH_SIZE", values["MAX_BATCH_SIZE"], 10**7
            )
        if values.get("ACCESS_LOG") is not None:
            chosen["access_log"] = boolean("ACCESS_LOG", values["ACCESS_LOG"])
        if values.get("PUBLIC_APIS_ONLY") is not None:
            chosen["public_apis_only"] = boolean("PUBLIC_APIS_ONLY", values["PUBLIC_APIS_ONLY"])
        for name, key in (
            ("AIP_HEALTH_ROUTE", "vertex_health_route"),
            ("AIP_PREDICT_ROUTE", "vertex_predict_route"),
        ):
            if values.get(name):
                chosen[key] = url_path(name, values[name])
        return cls(**chosen)


def gs_url(name: str, value: object, folder: bool) -> str:
    """gs://bucket/path/model.pkl, or with `folder` gs://bucket[/path] (returned ending in "/")."""
    url = str(value).strip()
    match = _GS_URL.fullmatch(url)
    kind = "gs://bucket/folder" if folder else "gs://bucket/path/model.pkl"
    if match is None:
        raise ConfigError(f"{name} must be a Cloud Storage URL such as {kind}, got {url!r}")
    bucket, name_part = match.group(1), match.group(2) or ""
    segments = name_part.rstrip("/").split("/") if folder else name_part.split("/")
    if folder and not name_part.rstrip("/"):
        return f"gs://{bucket}/"
    if not all(_GS_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        raise ConfigError(f"{name} must be a Cloud Storage URL such as {kind}, got {url!r}")
    return f"gs://{bucket}/{'/'.join(segments)}" + ("/" if folder else "")


def url_path(name: str, value: object) -> str:
    """A URL path such as /v1/endpoints/1/deployedModels/2:predict, or ConfigError."""
    path = str(value)
    if not _URL_PATH.fullmatch(path):
        raise ConfigError(f"{name} must be a URL path starting with '/', got {path!r}")
    return path


def host(name: str, value: object) -> str:
    """An address to listen on: an IPv4 or IPv6 address such as 127.0.0.1 or 0.0.0.0, or a
    host name such as localhost; ConfigError otherwise."""
    text = str(value).strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if _HOST_NAME.fullmatch(text) and len(text) <= 253:
        return text.lower()
    raise ConfigError(
        f"{name} must be an IP address such as 127.0.0.1 or a host name such as localhost, "
        f"got {text!r}"
    )


def choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    """One of `allowed` (any case), or ConfigError naming the setting and the choices."""
    text = str(value).strip().lower()
    if text not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return text


def boolean(name: str, value: object) -> bool:
    """true/false, 1/0, yes/no, on/off (any case), or ConfigError naming the setting."""
    if type(value) is bool:
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def positive_int(name: str, value: object, maximum: int) -> int:
    """Parse a whole number in [1, maximum] or raise ConfigError naming the setting."""
    return _whole_number(name, value, 1, maximum)


def non_negative_int(name: str, value: object, maximum: int) -> int:
    """Parse a whole number in [0, maximum] or raise ConfigError naming the setting."""
    return _whole_number(name, value, 0, maximum)


def _whole_number(name: str, value: object, minimum: int, maximum: int) -> int:
    try:
        number = value if type(value) is int else int(str(value).strip(), 10)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if not minimum <= number <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {number}")
    return number
