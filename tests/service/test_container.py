"""The container's static checks: hadolint, the Dockerfile's promises, the build context.

Building and running the image needs root and podman; `make container-test` does that.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from testkit.processes import BIN, ROOT
from webapp.core.model import sha256_hex
from webapp.deploy.bundle import LEFT_OUT

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, args = line.strip().partition(" ")
            pairs.append((name.upper(), " ".join(args.split())))
    return pairs


@pytest.mark.integration
def test_hadolint() -> None:
    proc = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.unit
def test_model_pin_matches_the_manifest() -> None:
    pins = [args for name, args in instructions() if name == "ARG" and "=" in args]
    pins = [pin for pin in pins if pin.startswith("MODEL_SHA256=")]
    manifest = sha256_hex((ROOT / "model.json").read_bytes())
    assert pins == [f"MODEL_SHA256={manifest}"], (
        f"model.json's sha256 is {manifest}: set ARG MODEL_SHA256 in the Dockerfile to it"
    )


@pytest.mark.unit
def test_image_promises() -> None:
    """Official base by default, thread caps, every interface, a numeric non-root user, and
    gunicorn (through serve.py) as PID 1."""
    steps = instructions()
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    env = " ".join(args for name, args in steps if name == "ENV")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        assert f"{var}=1" in env.split()
    assert "HOST=0.0.0.0" in env.split()
    uid, _, gid = [args for name, args in steps if name == "USER"][-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit()
    cmd = [args for name, args in steps if name == "CMD"][-1]
    assert json.loads(cmd) == ["python", "serve.py"]


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (negated, regex) pairs, with Go's filepath.Match syntax plus `**`."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = re.escape(pattern)
        regex = regex.replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = regex.replace(r"\[", "[").replace(r"\]", "]")
        rules.append((negated, re.compile(regex)))
    return rules


def ignored(path: str) -> bool:
    """Whether the build context leaves `path` out: the last rule matching it or a parent wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for negated, regex in dockerignore_rules():
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            verdict = not negated
    return verdict


def copied_sources() -> list[str]:
    """Every path the Dockerfile copies from the build context."""
    sources = []
    for name, args in instructions():
        words = args.split()
        if name == "COPY" and not any(word.startswith("--from") for word in words):
            sources += [word.rstrip("/") for word in words[:-1] if not word.startswith("--")]
    return sources


@pytest.mark.unit
@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/webapp/api.data.json",
        ".ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples/x",
        "webapp/__pycache__/api.cpython-311.pyc",
        "tests/unit/http/test_api.py",
        "gcf/main.py",
        ".env",
        "webapp/package/describe.py",  # packaging runs where models are made, not served
        "webapp/deploy/gcloud.py",
        "webapp/cli.py",
    ],
)
def test_dockerignore_leaves_out(path: str) -> None:
    assert ignored(path)


@pytest.mark.unit
def test_dockerignore_keeps_what_the_image_copies() -> None:
    sources = copied_sources()
    assert {"requirements.txt", "webapp", "model.pkl", "model.json", "model.onnx"} <= set(sources)
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"the Dockerfile copies {source}, which does not exist"
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            relative = file.relative_to(ROOT).as_posix()
            tool = relative.removeprefix("webapp/").split("/")[0] in LEFT_OUT
            assert ignored(relative) == tool, file
