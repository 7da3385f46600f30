"""The image serving a model from Cloud Storage: `python -m container.gcs --image TAG`.

container/test.sh runs it. It starts gcp-storage-emulator on the host's loopback, puts a zoo
model (not the one baked into the image) in a bucket, and runs the image on the host's network
with STORAGE_EMULATOR_HOST and AIP_STORAGE_URI, read-only with an in-memory /tmp as on Cloud
Run: its answers must be the estimator's own. Then with a wrong pin, which must stop the boot.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testkit import zoo
from testkit.processes import JSON, Server, free_port, storage_emulator
from webapp.core.model import sha256_hex
from webapp.core.storage import local_files


def upload(emulator: Server, specimen: zoo.Specimen) -> None:
    """The specimen's files (its manifest and those it names) into gs://models/zoo/."""
    os.environ["STORAGE_EMULATOR_HOST"] = emulator.url
    from google.cloud import storage

    bucket = storage.Client(project=None).create_bucket("models")
    for path in local_files(specimen.path):
        bucket.blob(f"zoo/{path.name}").upload_from_filename(str(path))


def run(
    image: str, name: str, env: dict[str, str], options: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """`podman run` the image on the host's network, read-only, no capabilities, with any
    further `options` (a volume, say)."""
    argv = ["podman", "run", "--rm", "--name", name, "--network", "host", "--read-only"]
    argv += ["--read-only-tmpfs=false", "--tmpfs", "/tmp", "--cap-drop", "all", *options]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    return subprocess.Popen([*argv, image], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def ready(server: Server, proc: subprocess.Popen[bytes], seconds: float = 60) -> bool:
    """Whether the container `proc` runs answers GET /ready with 200 within `seconds`; says
    so on stderr when it does not."""
    until = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < until:
        try:
            if server.request("GET", "/ready")[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    print("the container never became ready", file=sys.stderr)
    return False


def check(image: str) -> int:
    emulator = storage_emulator().start(ready_path="/")
    folder = Path(tempfile.mkdtemp(prefix="gcs-model-"))
    try:
        specimen = zoo.build("string-labels", folder)
        upload(emulator, specimen)
        sha = sha256_hex(specimen.path.with_suffix(".json").read_bytes())  # the pin: the manifest
        port = free_port()
        env = {
            "PORT": str(port),
            "WEB_CONCURRENCY": "1",
            "STORAGE_EMULATOR_HOST": emulator.url,
            "AIP_STORAGE_URI": "gs://models/zoo",
            "MODEL_SHA256": sha,
        }
        name = f"sklearn-serve-gcs-{port}"
        proc = run(image, name, env)
        server = Server([], port=port)
        try:
            if not ready(server, proc):
                return 1
            body = json.dumps({"instances": specimen.rows}).encode()
            status, _, answer = server.request("POST", "/predict", body, JSON)
            expected = {"predictions": specimen.predict()}
            if status != 200 or json.loads(answer) != expected:
                print(f"answered {status}: {answer[:200]!r}", file=sys.stderr)
                return 1
        finally:
            subprocess.run(["podman", "stop", "-t", "10", name], capture_output=True)
            output = proc.communicate(timeout=30)[0].decode()
        fetched = "model.json and model.pkl, model.onnx, model.verification.json"
        if f"fetched {fetched} from gs://models/zoo/" not in output:
            print(output, file=sys.stderr)
            return 1

        refused = run(image, f"{name}-pin", {**env, "MODEL_SHA256": "f" * 64})
        output = refused.communicate(timeout=60)[0].decode()
        refusals = [line for line in output.splitlines() if "refusing to start: " in line]
        if refused.returncode != 1 or len(refusals) != 1 or "MODEL_SHA256 pins" not in output:
            print(f"a wrong pin exited {refused.returncode}:\n{output}", file=sys.stderr)
            return 1
        print(f"{len(specimen.rows)} predictions from gs://models/zoo/ as the estimator's own")
        return 0
    finally:
        emulator.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    return check(parser.parse_args().image)


if __name__ == "__main__":
    sys.exit(main())
