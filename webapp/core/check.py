"""What `sklearn-serve check` proves of a model before it is served or deployed: the manifest
held to the pin, every file it names held to its sha256 and size, the engine that would serve
here loaded, and the self-check's rows answered as the manifest records them.

Serving checks the same things at start, but reads only the files of the engine it chooses:
this reads them all, so a damaged fallback is found before the day it is needed.
"""

from __future__ import annotations

from pathlib import Path

from .model import Model, load_model, verified_bytes
from .storage import file_sizes
from .vocabulary import ArtifactError


def check(
    path: Path, pinned_sha256: str | None = None, engine: str = "auto"
) -> tuple[Model, list[Path]]:
    """Verify the model whose pickle is at `path` as the module says: the model as it would be
    served, and the files verified, the manifest first. Raises ArtifactError naming the first
    thing wrong."""
    model = load_model(path, pinned_sha256, engine)
    verified = [path.with_suffix(".json")]
    sizes = file_sizes(model.manifest)
    for key, entry in model.manifest.items():
        if not isinstance(entry, dict) or "file" not in entry:
            continue
        local = local_file(path, key, entry["file"])
        recorded = entry.get("sha256")
        if not isinstance(recorded, str):
            raise ArtifactError(f"manifest entry {key!r} records no sha256 for {entry['file']}")
        data = verified_bytes(local, recorded)
        size = sizes[entry["file"]]
        if size is not None and size != len(data):
            raise ArtifactError(f"{local} holds {len(data)} bytes, the manifest records {size}")
        verified.append(local)
    model.self_check()
    return model, verified


def local_file(path: Path, key: str, name: str) -> Path:
    """Where load_model reads a manifest entry's file: the pickle at `path`, the compiled form
    beside it with the same stem, any other file by its name in the same folder."""
    if key == "artifact":
        return path
    if key == "compiled":
        return path.with_suffix(".onnx")
    return path.parent / name
