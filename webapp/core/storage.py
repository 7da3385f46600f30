"""Models kept in Cloud Storage, fetched once at start into a private local folder.

`MODEL_PATH=gs://bucket/path/model.pkl` names an artifact, whose manifest is `model.json` beside
it; `AIP_STORAGE_URI` (Vertex AI) names a folder whose manifest is `model.json`. The manifest
comes first, at most MANIFEST_LIMIT bytes of it, and is held to MODEL_SHA256 before anything
else is fetched; then every file it names (the artifact, and any other entry with a "file"),
none read past the size the manifest declares for it. load_model then verifies them exactly
as it verifies local files. google-cloud-storage is imported here only, and only when a gs://
location is given.
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from .model import check_pin
from .vocabulary import ArtifactError, one_line

log = logging.getLogger(__name__)

FOLDER_MANIFEST = "model.json"  # in a folder: Vertex AI's model.* naming, our manifest
# A manifest is a few kilobytes, more with many categories: a larger object is no manifest of
# ours, and is refused without being read to its end.
MANIFEST_LIMIT = 4 * 1024 * 1024
# Each request may wait this long to connect and between reads; the retries of transient
# failures (refused connections, 429, 5xx) stop after RETRY_SECONDS, then the boot is refused.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
RETRY_SECONDS = 10.0


def model_files(manifest: Mapping[str, Any]) -> list[str]:
    """The names of the files a manifest names: every top-level entry with a "file".

    Names are plain file names in the manifest's folder: one with a "/", "\\" or ".." could
    reach outside it, and is refused with ArtifactError.
    """
    return list(file_sizes(manifest))


def file_sizes(manifest: Mapping[str, Any]) -> dict[str, int | None]:
    """The files a manifest names (model_files), each with the size in bytes its entry
    declares, or None where it declares none (a manifest written before sizes were)."""
    sizes: dict[str, int | None] = {}
    for key, entry in manifest.items():
        if not isinstance(entry, dict) or "file" not in entry:
            continue
        name = entry["file"]
        if (
            not isinstance(name, str)
            or not name.strip()
            or any(c in name for c in "/\\\0")
            or ".." in name
        ):
            raise ArtifactError(f"manifest entry {key!r} names a file that is not a plain name")
        size = entry.get("size")
        if size is not None and (type(size) is not int or size < 0):
            raise ArtifactError(f"manifest entry {key!r} declares a size that is not a byte count")
        if sizes.setdefault(name, size) != size:
            raise ArtifactError(f"manifest entry {key!r} declares another size for {name}")
    return sizes


def local_files(artifact: Path) -> list[Path]:
    """A local model's files, as they go into a bucket: the manifest beside `artifact`, then
    the files it names (`make deploy-vertex` uploads these)."""
    manifest = artifact.with_suffix(".json")
    try:
        names = model_files(json.loads(manifest.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read manifest {manifest}: {exc}") from None
    return [manifest, *(artifact.parent / name for name in names)]


def fetch(url: str, pinned_sha256: str | None = None) -> Path:
    """Download the model at `url` into a new private folder; the local artifact's path.

    `url` is gs://bucket/path/model.pkl, or a folder gs://bucket/path/ holding model.json.
    Nothing but the manifest is fetched before its sha256 is held to `pinned_sha256`
    (MODEL_SHA256), and no file past the size the manifest declares for it. Raises
    ArtifactError for a missing object, a denied read, an unreachable endpoint, a manifest
    that is too large, mis-pinned, declares no sizes or names its files badly, or a file
    larger than declared.
    """
    started = time.perf_counter()
    bucket_name, _, object_name = url.removeprefix("gs://").partition("/")
    folder, _, artifact = object_name.rpartition("/")
    folder_url = f"gs://{bucket_name}/{folder}/" if folder else f"gs://{bucket_name}/"
    bucket = _client(folder_url).bucket(bucket_name)

    manifest_name = f"{PurePosixPath(artifact).stem}.json" if artifact else FOLDER_MANIFEST
    where = f"{folder_url}{manifest_name}"
    most = "the most a manifest may hold"
    raw = _download(bucket, folder_url, manifest_name, MANIFEST_LIMIT, most)
    check_pin(raw, pinned_sha256, where)
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise ArtifactError(f"manifest {where} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"manifest {where} is not a JSON object")
    sizes = file_sizes(manifest)
    entry = manifest.get("artifact")
    if not artifact:
        artifact = entry.get("file", "") if isinstance(entry, dict) else ""
        if not artifact:
            raise ArtifactError(f"manifest {where} names no artifact file")
    elif artifact not in sizes:  # load_model takes the URL's pickle as the manifest's artifact
        declared = entry.get("size") if isinstance(entry, dict) else None
        sizes = {artifact: declared if type(declared) is int else None, **sizes}
    declared = {name: size for name, size in sizes.items() if size is not None}
    unsized = [name for name in sizes if name not in declared]
    if unsized:
        raise ArtifactError(
            f"manifest {where} declares no size for {', '.join(unsized)} (written before "
            "manifests did): package the model again to serve it from Cloud Storage"
        )

    # load_model reads the manifest beside the artifact: <artifact's stem>.json
    local_manifest = f"{PurePosixPath(artifact).stem}.json"
    if local_manifest in declared:
        raise ArtifactError(f"manifest {where} names itself as a file")

    try:
        local = Path(tempfile.mkdtemp(prefix="model-"))  # private (0700), under TMPDIR
    except OSError as exc:  # a read-only root and no TMPDIR (Cloud Run's /tmp is in memory)
        raise ArtifactError(f"no writable temporary folder for the model's files: {exc}") from None
    _remove_at_exit(local)
    (local / local_manifest).write_bytes(raw)
    for name, size in declared.items():
        _download(bucket, folder_url, name, size, f"the size {where} declares", local / name)
    log.info(
        "fetched %s and %s from %s in %.2f s",
        manifest_name,
        ", ".join(declared),
        folder_url,
        time.perf_counter() - started,
    )
    return local / artifact


def _client(where: str) -> Any:
    """A Cloud Storage client: the library's default credentials (the metadata server on
    Google Cloud), or anonymous against STORAGE_EMULATOR_HOST."""
    try:
        from google.cloud import storage
    except ImportError:
        from ..extras import install_command

        raise ArtifactError(
            f"cannot read {where}: google-cloud-storage is not installed: {install_command('gcs')}"
        ) from None
    try:
        return storage.Client(project=None)
    except Exception as exc:  # no credentials, a broken environment
        raise ArtifactError(f"cannot read {where}: {_reason(exc)}") from None


def _retry() -> Any:
    """The library's own retry policy for transient failures, within RETRY_SECONDS."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(RETRY_SECONDS).with_delay(initial=0.25, maximum=2.0)


def _download(
    bucket: Any, folder_url: str, name: str, limit: int, why: str, into: Path | None = None
) -> bytes:
    """The object `name` in the folder, as bytes or (`into`) streamed to that file, refused if
    it holds more than `limit` bytes (`why` says whose limit): only `limit` + 1 of them are
    asked for, which tells. Any failure becomes one ArtifactError line naming the object."""
    blob = bucket.blob(folder_url.removeprefix(f"gs://{bucket.name}/") + name)
    # A ranged read: a 206 is never checked against the whole object's checksum (and the
    # emulator sends none, which the library logs); the pin and the manifest's sha256 decide.
    options: dict[str, Any] = {"start": 0, "end": limit, "checksum": None, "retry": _retry()}
    options["timeout"] = (CONNECT_TIMEOUT, READ_TIMEOUT)
    try:
        if into is None:
            data: bytes = blob.download_as_bytes(**options)
            size = len(data)
        else:
            data = b""
            blob.download_to_filename(str(into), **options)
            size = into.stat().st_size
    except Exception as exc:
        raise ArtifactError(f"cannot read {folder_url}{name}: {_reason(exc)}") from None
    if size > limit:
        raise ArtifactError(f"{folder_url}{name} holds more than {limit} bytes, {why}")
    return data


def _reason(exc: BaseException) -> str:
    """Why a read failed, in a few words: the status for an HTTP error, else the error's
    type and the first line of its text."""
    from google.api_core import exceptions

    if isinstance(exc, exceptions.NotFound):
        return "no such object (404)"
    if isinstance(exc, exceptions.Forbidden):
        return "permission denied (403): the service account needs storage.objects.get"
    if isinstance(exc, exceptions.Unauthorized):
        return "not authenticated (401)"
    if isinstance(exc, exceptions.RetryError) and exc.cause is not None:
        return f"unreachable after {RETRY_SECONDS:g} s of retries ({one_line(exc.cause, 200)})"
    return one_line(exc, 200)


def _remove_at_exit(folder: Path) -> None:
    """Remove `folder` when this process exits, not when a forked child (a worker) does."""
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)


def main(argv: list[str] | None = None) -> int:
    """Command line: list a local model's files, one per line."""
    parser = argparse.ArgumentParser(description="List the files of a model: its manifest first.")
    parser.add_argument("artifact", type=Path, help="the pickle, e.g. model.pkl")
    try:
        files = local_files(parser.parse_args(argv).artifact)
    except ArtifactError as exc:
        sys.exit(str(exc))
    print("\n".join(map(str, files)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
