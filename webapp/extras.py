"""The pip command that adds one of sklearn-serve's extras to this installation.

A message naming a missing library says how to install it. `pip install 'sklearn-serve[gcs]'`
asks an index for sklearn-serve, which an install from a clone or a wheel did not come from:
pip would then fail to find it, or install another sklearn-serve over this one. pip records
where a package came from when it was not an index (PEP 610's direct_url.json), so the command
names that source, and an index's install its version.
"""

from __future__ import annotations

import json
import shlex
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

DISTRIBUTION = "sklearn-serve"
CHECKOUT = Path(__file__).resolve().parent.parent  # a clone's root, when run from one


def install_command(extra: str) -> str:
    """`pip install` with the requirement that adds `extra` to this sklearn-serve."""
    try:
        distribution = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # a clone's code, not installed (make run)
        return f"pip install {shlex.quote(f'{CHECKOUT}[{extra}]')}"
    direct_url = distribution.read_text("direct_url.json")
    try:
        origin = None if direct_url is None else json.loads(direct_url)
    except ValueError:
        origin = None
    return f"pip install {shlex.quote(requirement(extra, distribution.version, origin))}"


def requirement(extra: str, version: str | None, origin: dict[str, Any] | None) -> str:
    """The requirement for `extra` of the sklearn-serve installed from `origin` (a PEP 610
    direct_url.json document, None for an index): a local folder or archive by its path, a
    repository at the commit installed, another URL as itself, an index's at `version`."""
    url = origin.get("url") if isinstance(origin, dict) else None
    if not isinstance(url, str):
        pinned = f"=={version}" if version else ""
        return f"{DISTRIBUTION}[{extra}]{pinned}"
    vcs = origin.get("vcs_info") if isinstance(origin, dict) else None
    if isinstance(vcs, dict) and isinstance(vcs.get("vcs"), str):
        commit = vcs.get("commit_id")
        at = f"@{commit}" if isinstance(commit, str) else ""
        return f"{DISTRIBUTION}[{extra}] @ {vcs['vcs']}+{url}{at}"
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return f"{unquote(parts.path)}[{extra}]"
    return f"{DISTRIBUTION}[{extra}] @ {url}"
