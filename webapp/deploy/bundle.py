"""Assemble the Cloud Function's upload folder: `sklearn-serve bundle MODEL --out DIR`.

The bundle is the package's function entry (webapp/gcf/main.py) as main.py at the root, the
webapp package without the tools that do not serve (LEFT_OUT), the model's files under the
names the function reads (model.pkl, model.json, model.onnx if it has one, and its
verification rows under their own name), and requirements.txt: in a clone of the repository
its exact pins, the image's; from an installed copy, this environment's versions of
everything the install needs to serve this model (the versions the model was checked with
here). Where only scikit-learn can serve the model, its scikit-learn, numpy, scipy and pandas
are the versions it was packaged with instead. Nothing else, no copy kept in the repository.
"""

from __future__ import annotations

import json
import re
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from ..core.model import load_model
from ..core.sklearn_engine import model_requirements
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
    rows = manifest.get("verification", {})
    if "file" in rows:  # read by its own name, in the model's folder
        files[rows["file"]] = model.parent / rows["file"]
    for name, source in files.items():
        if not source.is_file():
            raise ArtifactError(f"cannot read {source}: no such file (the bundle's {name})")
    requirements = requirements_for(manifest, model)
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


def requirements_for(manifest: dict[str, Any], model: Path) -> str:
    """The bundle's requirements.txt: the clone's pins, or this environment's versions of what
    the installed distribution needs for the function (and for scikit-learn, where it must
    serve this model); where only scikit-learn can serve it, the model's own versions of
    model_requirements' names, a library its pickle needs (xgboost) among them."""
    pinned = PACKAGE.parent / "requirements.txt"
    if pinned.is_file() and (PACKAGE.parent / "pyproject.toml").is_file():
        text = pinned.read_text(encoding="utf-8")
        onnxruntime = re.search(r"^onnxruntime==(\S+)", text, re.M)
        if only_sklearn_serves(manifest, model, onnxruntime[1] if onnxruntime else None):
            text = with_versions(text, model_requirements(manifest))
        return text
    from packaging.utils import canonicalize_name

    extras, fixed = {"function"}, {}
    if only_sklearn_serves(manifest, model, _installed("onnxruntime")):
        extras.add("sklearn")
        fixed = dict(pin.split("==") for pin in model_requirements(manifest))
    versions = installed_requirements(DISTRIBUTION, extras, fixed)
    # a library only the model's pickle needs (xgboost) is no requirement of the distribution's
    versions |= {name: v for name, v in fixed.items() if canonicalize_name(name) not in versions}
    return "".join(f"{name}=={version}\n" for name, version in sorted(versions.items()))


def only_sklearn_serves(manifest: dict[str, Any], model: Path, onnxruntime: str | None) -> bool:
    """Whether the function, with `onnxruntime`, can serve the model only with scikit-learn:
    it has no compiled form, or one verified under another onnxruntime that does not pass its
    verification again here (under this very onnxruntime), or that cannot be tried here."""
    compiled = manifest.get("compiled") or {}
    if "file" not in compiled:
        return True
    if compiled.get("versions", {}).get("onnxruntime") == onnxruntime:
        return False
    if onnxruntime is None or _installed_or_none("onnxruntime") != onnxruntime:
        return True
    try:
        load_model(model, engine="onnx")
    except ArtifactError:
        return True
    return False


def with_versions(requirements: str, pins: list[str]) -> str:
    """requirements.txt's text with each of `pins` (name==version) in place of its name's line,
    or added at the end."""
    lines = requirements.splitlines()
    for pin in pins:
        name = pin.partition("==")[0]
        line = re.compile(rf"^{re.escape(name)}==", re.I)
        at = [i for i, text in enumerate(lines) if line.match(text)]
        if at:
            lines[at[0]] = pin
        else:
            lines.append(pin)
    return "\n".join(lines) + "\n"


def installed_requirements(
    distribution: str, extras: set[str], fixed: dict[str, str] | None = None
) -> dict[str, str]:
    """Every distribution `distribution` (with `extras`) requires, directly or not, with the
    version installed here, or `fixed`'s for those it names (their own requirements are left
    to pip, and they need not be installed here). ArtifactError if another is not installed."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pinned = {canonicalize_name(name): version for name, version in (fixed or {}).items()}
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
            name = canonicalize_name(requirement.name)
            if name in pinned:
                found[name] = pinned[name]
                continue
            found[name] = _installed(requirement.name)
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


def _installed_or_none(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
