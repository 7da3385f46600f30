"""The installable distribution as a pip user gets it: the wheel built from the repository, fresh
virtual environments of any installed Python, and commands run in them with nothing of the
caller's settings. tests/service/test_wheel.py and test_environments.py share it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from .processes import ROOT, server_env

PYENV_VERSIONS = Path.home() / ".pyenv" / "versions"


def run(
    argv: list[str | Path], cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A command in `cwd`, with server_env()'s environment (and `env`), its output captured."""
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=server_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """The command's output, once it has exited 0 (else the failure shows all it said)."""
    assert proc.returncode == 0, f"{proc.args}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def build_wheel(folder: Path) -> Path:
    """The wheel, built from a copy of what it is made of (no build/ left over in the clone),
    as `pip install .` builds it: setuptools from the registry."""
    source, dist = folder / "source", folder / "dist"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "webapp", source / "webapp", ignore=ignore)
    pip: list[str | Path] = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    pip += ["--wheel-dir", dist]
    ok(run([*pip, source], cwd=folder))
    (built,) = dist.glob("sklearn_serve-*.whl")
    return built


def interpreter(version: str) -> Path | None:
    """An installed Python `version` (3.10, say): pythonX.Y on PATH if it is that version, else
    pyenv's newest of it; None if this machine has none."""
    found = shutil.which(f"python{version}")
    candidates = [Path(found)] if found else []
    candidates += sorted(PYENV_VERSIONS.glob(f"{version}.*/bin/python{version}"), reverse=True)
    for candidate in candidates:
        said = subprocess.run(
            [str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if said.returncode == 0 and said.stdout.strip() == version:
            return candidate
    return None


def virtual_environment(folder: Path, python: Path | str = sys.executable) -> Path:
    """A fresh virtual environment of `python` in `folder`, with pip; its bin folder."""
    ok(run([python, "-m", "venv", folder], cwd=folder.parent))
    return folder / "bin"


def repository_pins() -> list[str]:
    """requirements.txt's and requirements-package.txt's exact pins, as constraints."""
    pins = []
    for name in ("requirements.txt", "requirements-package.txt"):
        text = (ROOT / name).read_text()
        pins += re.findall(r"^[A-Za-z0-9._-]+(?:\[[^\]]*\])?==\S+", text, re.M)
    return pins
