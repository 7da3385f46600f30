"""Models in Cloud Storage: a model unlike the committed one, in a bucket of a real emulator
(gcp-storage-emulator on loopback), served through AIP_STORAGE_URI and MODEL_PATH=gs://...
by real gunicorn and functions-framework processes; and every way that must stop the boot."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pytest

from testkit import zoo
from testkit.processes import (
    ROOT,
    Server,
    free_port,
    functions_framework_server,
    gunicorn,
    server_env,
    storage_emulator,
)
from webapp.core.model import load_model, sha256_hex
from webapp.core.storage import MANIFEST_LIMIT, file_sizes, model_files
from webapp.core.vocabulary import ArtifactError
from webapp.runtime.settings import ConfigError, Settings

JSON = {"Content-Type": "application/json"}
STARTERS: dict[str, Callable[[Mapping[str, str]], Server]] = {
    "gunicorn": lambda env: gunicorn(env, workers=1),
    "functions-framework": functions_framework_server,
}


class Bucket:
    """The emulator, a bucket "models" in it, and a zoo model uploaded in a few shapes."""

    def __init__(self, emulator: Server, specimen: zoo.Specimen) -> None:
        self.emulator = emulator
        self.specimen = specimen
        self.sha256 = sha256_hex(specimen.path.with_suffix(".json").read_bytes())  # the pin

    def env(self, **extra: str) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.emulator.url, **extra}


def upload(emulator: Server, files: Mapping[str, Path | bytes]) -> None:
    """Put each local file (or bytes) at its object name, with google-cloud-storage's own
    client."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
        from google.cloud import storage

        client = storage.Client(project=None)
        bucket = client.lookup_bucket("models") or client.create_bucket("models")
        for name, source in files.items():
            if isinstance(source, bytes):
                bucket.blob(name).upload_from_string(source)
            else:
                bucket.blob(name).upload_from_filename(str(source))


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bucket]:
    specimen = zoo.build("string-labels", tmp_path_factory.mktemp("gcs-model"))
    pickle, manifest = specimen.path, specimen.path.with_suffix(".json")
    emulator = storage_emulator().start(ready_path="/")
    try:
        upload(
            emulator,
            {
                "zoo/model.pkl": pickle,
                "zoo/model.json": manifest,
                "zoo/model.onnx": pickle.with_suffix(".onnx"),  # its compiled form
                "zoo/model.verification.json": pickle.with_suffix(".verification.json"),
                "no-manifest/model.pkl": pickle,
                "no-artifact/model.json": manifest,
            },
        )
        yield Bucket(emulator, specimen)
    finally:
        emulator.stop()


def serve(target: str, env: Mapping[str, str]) -> Server:
    return STARTERS[target](env).start()


@pytest.mark.integration
@pytest.mark.parametrize("target", sorted(STARTERS))
@pytest.mark.parametrize(
    "location",
    [{"AIP_STORAGE_URI": "gs://models/zoo"}, {"MODEL_PATH": "gs://models/zoo/model.pkl"}],
    ids=["AIP_STORAGE_URI", "MODEL_PATH"],
)
def test_a_model_from_cloud_storage_answers_as_its_estimator(
    bucket: Bucket, target: str, location: dict[str, str]
) -> None:
    server = serve(target, bucket.env(MODEL_SHA256=bucket.sha256, **location))
    try:
        body = json.dumps({"instances": bucket.specimen.rows}).encode()
        status, _, answer = server.request("POST", "/predict", body, JSON)
        assert status == 200, answer
        assert json.loads(answer) == {"predictions": bucket.specimen.predict()}
        metadata = json.loads(server.request("GET", "/metadata")[2])
        assert (metadata["name"], metadata["sha256"]) == ("string-labels", bucket.sha256)
        assert metadata["engine"]["name"] == "onnx"  # the compiled form came from the bucket too
    finally:
        assert server.stop() == 0
    fetched = "model.json and model.pkl, model.onnx, model.verification.json from gs://models/zoo/"
    assert f"fetched {fetched}" in server.output()


@pytest.mark.integration
@pytest.mark.parametrize("target", sorted(STARTERS))
@pytest.mark.parametrize(
    ("case", "location", "reason"),
    [
        ("pin", {"MODEL_PATH": "gs://models/zoo/model.pkl"}, "MODEL_SHA256 pins ffff"),
        (
            "missing-object",
            {"AIP_STORAGE_URI": "gs://models/no-artifact/"},
            "cannot read gs://models/no-artifact/model.pkl: no such object (404)",
        ),
        (
            "missing-manifest",
            {"MODEL_PATH": "gs://models/no-manifest/model.pkl"},
            "cannot read gs://models/no-manifest/model.json: no such object (404)",
        ),
        (
            "missing-bucket",
            {"AIP_STORAGE_URI": "gs://elsewhere/zoo"},
            "cannot read gs://elsewhere/zoo/model.json: no such object (404)",
        ),
        ("unreachable", {"AIP_STORAGE_URI": "gs://models/zoo"}, "unreachable after 10 s"),
    ],
)
def test_what_cannot_be_fetched_or_trusted_stops_the_boot(
    bucket: Bucket, target: str, case: str, location: dict[str, str], reason: str
) -> None:
    # the pin is held before anything but the manifest is fetched: the others pin the genuine one
    env = bucket.env(MODEL_SHA256="f" * 64 if case == "pin" else bucket.sha256, **location)
    if case == "unreachable":
        env["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{free_port()}"
    server = STARTERS[target](env)
    server.spawn()
    assert server.proc is not None
    code = server.proc.wait(60)
    server.stop()
    output = server.output()
    refusals = [line for line in output.splitlines() if "refusing to start: " in line]
    assert code == 1, output
    assert len(refusals) == 1 and reason in refusals[0], output
    assert "Listening at" not in output and "Booting worker" not in output
    assert "Traceback" not in output


# What google-cloud-storage brings in: its own package and the libraries it stands on.
STORAGE_STACK = (
    "google.cloud.storage",
    "google.api_core",
    "google.auth",
    "google.oauth2",
    "google.protobuf",
    "google.resumable_media",
    "google_crc32c",
    "requests",
    "cryptography",
)


def storage_modules(code: str) -> list[str]:
    """The modules of STORAGE_STACK that a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    modules = json.loads(proc.stdout.splitlines()[-1])
    return [m for m in modules if m.split(".")[0] in STORAGE_STACK or m.startswith(STORAGE_STACK)]


def mapped_google_files(pid: int) -> set[str]:
    """Files of the google packages (their C extensions) mapped into a process."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {line.split()[-1] for line in maps if "/site-packages/google" in line}


@pytest.mark.integration
def test_a_local_model_never_imports_the_storage_client(bucket: Bucket) -> None:
    assert storage_modules("import wsgi") == []
    function = "import functions_framework as f; f.create_app('predict', 'gcf/main.py')"
    assert storage_modules(function) == []
    assert storage_modules("from google.cloud import storage")  # the probe's control

    local = gunicorn(workers=1).start()
    try:  # stopped however the second start goes: a server left running skews later tests
        remote = gunicorn(bucket.env(AIP_STORAGE_URI="gs://models/zoo"), workers=1).start()
        try:
            # the control: fetching from gs:// does map the library's extensions into it
            assert mapped_google_files(remote.pids()[0])
            for pid in (local.pids()[0], *local.pids()[1]):
                assert mapped_google_files(pid) == set()
        finally:
            remote.stop()
    finally:
        local.stop()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("values", "path", "url"),
    [
        ({"MODEL_PATH": "gs://models/a/b/model.pkl"}, None, "gs://models/a/b/model.pkl"),
        ({"AIP_STORAGE_URI": "gs://models/a/b"}, None, "gs://models/a/b/"),
        ({"AIP_STORAGE_URI": "gs://models/a/b/"}, None, "gs://models/a/b/"),
        ({"AIP_STORAGE_URI": "gs://models"}, None, "gs://models/"),
        # the operator's MODEL_PATH wins over what Vertex AI passes
        ({"MODEL_PATH": "/m/model.pkl", "AIP_STORAGE_URI": "gs://models/a"}, "/m/model.pkl", None),
        (
            {"MODEL_PATH": "gs://x-1/m.pkl", "AIP_STORAGE_URI": "gs://models/a"},
            None,
            "gs://x-1/m.pkl",
        ),
    ],
)
def test_model_location_settings(values: dict[str, str], path: str | None, url: str | None) -> None:
    settings = Settings.from_mapping(values)
    assert settings.model_url == url
    if path:
        assert settings.model_path == Path(path)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"MODEL_PATH": "gs://Models/model.pkl"}, "MODEL_PATH must be a Cloud Storage URL"),
        ({"MODEL_PATH": "gs://models/"}, "MODEL_PATH must be a Cloud Storage URL"),
        ({"MODEL_PATH": "gs://models/a/../model.pkl"}, "MODEL_PATH must be a Cloud Storage URL"),
        ({"MODEL_PATH": "s3://models/model.pkl"}, "MODEL_PATH must be a local path or a gs://"),
        ({"AIP_STORAGE_URI": "/local/folder"}, "AIP_STORAGE_URI must be a Cloud Storage URL"),
        ({"AIP_STORAGE_URI": "gs://models/a//b"}, "AIP_STORAGE_URI must be a Cloud Storage URL"),
    ],
)
def test_bad_model_locations_name_their_setting(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        Settings.from_mapping(values)


@pytest.mark.unit
def test_the_files_a_manifest_names() -> None:
    manifest: dict[str, Any] = {
        "name": "m",
        "artifact": {"file": "model.pkl", "sha256": "0"},
        "compiled": {"file": "model.onnx", "sha256": "1"},
        "features": [{"file": "not-top-level"}],
        "metrics": {"accuracy": 1.0},
    }
    assert model_files(manifest) == ["model.pkl", "model.onnx"]
    for bad in ("../model.pkl", "a/model.pkl", "..", "", "a\\b", 7):
        manifest["compiled"]["file"] = bad
        with pytest.raises(ArtifactError, match="'compiled' names a file that is not a plain name"):
            model_files(manifest)
    manifest["compiled"] = {"file": "model.onnx", "sha256": "1", "size": 1058}
    assert file_sizes(manifest) == {"model.pkl": None, "model.onnx": 1058}
    for bad in (-1, 1.5, "1058", True, [1]):
        manifest["compiled"]["size"] = bad
        with pytest.raises(ArtifactError, match="'compiled' declares a size that is not a byte"):
            file_sizes(manifest)
    manifest["compiled"] = {"file": "model.pkl", "sha256": "0", "size": 3}
    with pytest.raises(ArtifactError, match="'compiled' declares another size for model.pkl"):
        file_sizes(manifest)


class CountingProxy:
    """A TCP relay in front of the emulator: the objects a server asks for and the bytes it is
    sent back, as the emulator sees them (so nothing in the process under test is trusted)."""

    def __init__(self, upstream: Server) -> None:
        self.upstream = upstream.port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.targets: list[str] = []  # every request's target, in order
        self.sent = 0  # bytes relayed to the client: headers and bodies
        self.lock = threading.Lock()
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()

    @property
    def downloads(self) -> list[str]:
        """The objects whose bytes were asked for, by name."""
        found = (re.search(r"/download/storage/v1/b/models/o/([^?]+)", t) for t in self.targets)
        return [unquote(m.group(1)) for m in found if m]

    def close(self) -> None:
        """Stop listening for good. close() alone leaves a blocked accept() holding the port
        open, to relay the next stranger that connects to it."""
        _shut(self.listener)
        self.listener.close()
        self.accepting.join(10)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        """One connection, both ways, until either end closes; then both are closed."""
        with client:
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
            except OSError:  # the emulator gone: the client sees its connection closed
                return
            with upstream:
                upstream.settimeout(None)
                answers = threading.Thread(target=self._answers, args=(upstream, client))
                answers.start()
                self._requests(client, upstream)
                _shut(upstream)  # wakes _answers, if the client left first
                answers.join()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        pending = b""
        while chunk := _receive(client):
            pending += chunk
            while b"\r\n\r\n" in pending:  # the client only GETs: no request has a body
                head, _, pending = pending.partition(b"\r\n\r\n")
                with self.lock:
                    self.targets.append(head.split(b"\r\n")[0].split(b" ")[1].decode())
            try:
                upstream.sendall(chunk)
            except OSError:
                return

    def _answers(self, upstream: socket.socket, client: socket.socket) -> None:
        while chunk := _receive(upstream):
            with self.lock:
                self.sent += len(chunk)
            try:
                client.sendall(chunk)
            except OSError:
                break
        _shut(client)  # the emulator's close (HTTP/1.0) reaches the client, as it would direct


def _receive(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _shut(sock: socket.socket) -> None:
    """shutdown() both ways: unlike close(), it wakes a thread blocked on the socket."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # not connected (any more)
        pass


MiB = 1024 * 1024
HEADERS = 16 * 1024  # what a few answers' headers may add to the bytes of their bodies


@pytest.fixture(scope="module")
def tampered(bucket: Bucket) -> dict[str, int]:
    """The zoo model's files in folders that must not be fetched whole; the sizes that matter.

    tampered/: a manifest naming twenty 5 MiB objects (which exist) besides the model's files.
    padded/: the genuine manifest, beside a pickle 5 MiB longer than it declares.
    huge/: a manifest of 20 MiB. unsized/: one written before manifests declared sizes.
    """
    pickle, manifest_path = bucket.specimen.path, bucket.specimen.path.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    extra = {f"extra{i}": {"file": f"extra{i}.bin", "sha256": "0" * 64, "size": 5 * MiB}
             for i in range(20)}  # fmt: skip
    unsized = json.loads(manifest_path.read_text())
    for entry in (unsized["artifact"], unsized["compiled"]):
        del entry["size"]
    padding = bytes(5 * MiB)
    upload(
        bucket.emulator,
        {
            "tampered/model.json": json.dumps({**manifest, **extra}).encode(),
            **{f"tampered/extra{i}.bin": padding for i in range(20)},
            "tampered/model.pkl": pickle,
            "tampered/model.onnx": pickle.with_suffix(".onnx"),
            "padded/model.json": manifest_path,
            "padded/model.pkl": pickle.read_bytes() + padding,
            "padded/model.onnx": pickle.with_suffix(".onnx"),
            "huge/model.json": manifest_path.read_bytes() + b" " * (20 * MiB),
            "unsized/model.json": json.dumps(unsized).encode(),
            "unsized/model.pkl": pickle,
            "unsized/model.onnx": pickle.with_suffix(".onnx"),
        },
    )
    return {
        "manifest": manifest_path.stat().st_size,
        "pickle": pickle.stat().st_size,
        "unsized": len(json.dumps(unsized).encode()),
        "tampered": len(json.dumps({**manifest, **extra}).encode()),
    }


@pytest.mark.integration
@pytest.mark.parametrize("target", sorted(STARTERS))
@pytest.mark.parametrize(
    ("folder", "pinned", "reason", "fetched"),
    [
        ("tampered", True, "MODEL_SHA256 pins", ["model.json"]),
        ("padded", True, "the size gs://models/padded/model.json declares",
         ["model.json", "model.pkl"]),
        ("huge", False, f"huge/model.json holds more than {MANIFEST_LIMIT} bytes", ["model.json"]),
        ("unsized", False, "unsized/model.json declares no size for model.pkl, model.onnx "
         "(written before manifests did): package the model again", ["model.json"]),
    ],
)  # fmt: skip
def test_a_fetch_reads_no_more_than_the_pinned_manifest_declares(
    bucket: Bucket,
    tampered: dict[str, int],
    target: str,
    folder: str,
    pinned: bool,
    reason: str,
    fetched: list[str],
) -> None:
    """The manifest is read to MANIFEST_LIMIT at most and held to the pin before anything else
    is fetched; each file to the size it declares (and one byte, which tells a longer one)."""
    proxy = CountingProxy(bucket.emulator)
    env = {"STORAGE_EMULATOR_HOST": proxy.url, "AIP_STORAGE_URI": f"gs://models/{folder}"}
    if pinned:
        env["MODEL_SHA256"] = bucket.sha256  # the genuine manifest's
    server = STARTERS[target](env)
    server.spawn()
    assert server.proc is not None
    try:
        code = server.proc.wait(60)
    finally:
        server.stop()
        proxy.close()
    output = server.output()
    refusals = [line for line in output.splitlines() if "refusing to start: " in line]
    assert code == 1 and len(refusals) == 1 and reason in refusals[0], output
    assert "Traceback" not in output
    assert proxy.downloads == [f"{folder}/{name}" for name in fetched], proxy.targets
    most = {
        "tampered": tampered["tampered"],
        "padded": tampered["manifest"] + tampered["pickle"] + 1,
        "huge": MANIFEST_LIMIT + 1,
        "unsized": tampered["unsized"],
    }[folder]
    assert proxy.sent <= most + HEADERS, (proxy.sent, most)


@pytest.mark.integration
def test_an_honest_fetch_reads_each_file_once_and_no_more(bucket: Bucket) -> None:
    """The control: the same counting, for a model served from the bucket."""
    proxy = CountingProxy(bucket.emulator)
    location = {"AIP_STORAGE_URI": "gs://models/zoo", "MODEL_SHA256": bucket.sha256}
    try:
        serve("gunicorn", {"STORAGE_EMULATOR_HOST": proxy.url, **location}).stop()
    finally:
        proxy.close()
    assert proxy.downloads == [
        "zoo/model.json",
        "zoo/model.pkl",
        "zoo/model.onnx",
        "zoo/model.verification.json",
    ]
    sizes = file_sizes(json.loads(bucket.specimen.path.with_suffix(".json").read_text()))
    files = bucket.specimen.path.with_suffix(".json").stat().st_size + sum(sizes.values())
    assert files <= proxy.sent <= files + HEADERS


@pytest.mark.unit
def test_a_manifest_without_sizes_still_loads_from_a_local_folder(artifact: Path) -> None:
    """Sizes bound what is fetched from a bucket; locally the sha256 alone decides."""
    manifest = json.loads(artifact.with_suffix(".json").read_text())
    assert set(file_sizes(manifest).values()) == {
        artifact.stat().st_size,
        artifact.with_suffix(".onnx").stat().st_size,
        artifact.with_suffix(".verification.json").stat().st_size,
    }
    for entry in (manifest["artifact"], manifest["compiled"], manifest["verification"]):
        del entry["size"]
    artifact.with_suffix(".json").write_text(json.dumps(manifest))
    assert load_model(artifact).predict(np.array([[5.1, 3.5, 1.4, 0.2]])) == [0]
