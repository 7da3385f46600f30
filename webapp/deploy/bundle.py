"""Assemble the Cloud Function's upload folder: `sklearn-serve bundle MODEL --out DIR`.

The bundle is the package's function entry (webapp/gcf/main.py) as main.py at the root, the
webapp package without the tools that do not serve (LEFT_OUT), the model's files under the
names the function reads (model.pkl, model.json, model.onnx if it has one), and
requirements.txt: in a clone of the repository its exact pins, the image's; from an installed
copy, this environment's versions of everything the install needs to serve this model (the
versions the model was checked with here). Nothing else, no copy kept in the repository.
"""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from ..core.vocabulary import ArtifactError

PACKAGE = Path(__file__).resolve().parent.parent  # webapp/, in a clone or site-packages
DISTRIBUTION = "sklearn-serve"
# What the function never runs: the offline tools, the command line, the entry (main.py).
LEFT_OUT = ("package", "deploy", "gcf", "cli.py", "__main__.py")


def build(output: Path, model: Path) -> list[Path]:
    """Write the bundle serving `model` (a pickle; its manifest and compiled form beside it)
    into `output`, replacing what is there; the files it holds. ArtifactError if the model's
    manifest or files cannot be read."""
    manifest = _manifest(model)
    files = {"main.py": PACKAGE / "gcf" / "main.py", "model.pkl": model}
    files["model.json"] = model.with_suffix(".json")
    if "file" in manifest.get("compiled", {}):
        files["model.onnx"] = model.with_suffix(".onnx")
    for name, source in files.items():
        if not source.is_file():
            raise ArtifactError(f"cannot read {source}: no such file (the bundle's {name})")
    requirements = requirements_for(manifest)
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    for name, source in files.items():
        shutil.copy2(source, output / name)
    (output / "requirements.txt").write_text(requirements, encoding="utf-8")
    for module in sorted(PACKAGE.rglob("*.py")):
        relative = module.relative_to(PACKAGE)
        if relative.parts[0] in LEFT_OUT:
            continue
        target = output / "webapp" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(module, target)
    return sorted(p.relative_to(output) for p in output.rglob("*") if p.is_file())


def _manifest(model: Path) -> dict[str, Any]:
    path = model.with_suffix(".json")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ArtifactError(f"manifest {path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"manifest {path} is not a JSON object")
    return manifest


def requirements_for(manifest: dict[str, Any]) -> str:
    """The bundle's requirements.txt: the clone's pins, or this environment's versions of what
    the installed distribution needs for the function, and for scikit-learn where it must
    serve this model (no compiled form, or one verified with another onnxruntime)."""
    pinned = PACKAGE.parent / "requirements.txt"
    if pinned.is_file() and (PACKAGE.parent / "pyproject.toml").is_file():
        return pinned.read_text(encoding="utf-8")
    extras = {"function"}
    compiled = manifest.get("compiled") or {}
    recorded = compiled.get("versions", {}).get("onnxruntime") if "file" in compiled else None
    if recorded is None or recorded != _installed("onnxruntime"):
        extras.add("sklearn")
    versions = installed_requirements(DISTRIBUTION, extras)
    return "".join(f"{name}=={version}\n" for name, version in sorted(versions.items()))


def installed_requirements(distribution: str, extras: set[str]) -> dict[str, str]:
    """Every distribution `distribution` (with `extras`) requires, directly or not, with the
    version installed here. ArtifactError if one is not installed."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(distribution, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        if (canonicalize_name(name), wanted) in seen:
            continue
        seen.add((canonicalize_name(name), wanted))
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            raise ArtifactError(f"{name} is not installed here") from None
        for text in requires:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker and not any(marker.evaluate({"extra": e}) for e in (*wanted, "")):
                continue
            found[canonicalize_name(requirement.name)] = _installed(requirement.name)
            todo.append((requirement.name, frozenset(requirement.extras)))
    found.pop(canonicalize_name(distribution), None)  # the bundle holds its source itself
    return found


def _installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        raise ArtifactError(
            f"{name} is not installed here, and the bundle pins the versions installed here"
        ) from None
