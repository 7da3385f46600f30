"""An image built for a model's own versions: `python -m container.elsewhere prepare FOLDER`,
then `python -m container.elsewhere serve FOLDER --image TAG`.

container/test.sh runs both, building the image between them. `prepare` trains
testkit/elsewhere.py's models in a fresh environment with scikit-learn 1.4 and packages the
nearest-centroid classifier there (no converter: only scikit-learn can serve it), then prints
the build argument MODEL_REQUIREMENTS its manifest calls for. `serve` runs the image built with
it on the host's network, the model mounted read-only and pinned: its answers must be the
estimator's in its training environment, from scikit-learn 1.4 itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from container.gcs import ready
from container.gcs import run as run_container
from testkit.processes import JSON, ROOT, Server, free_port
from testkit.wheel import interpreter, ok, run, virtual_environment
from webapp.core.model import sha256_hex
from webapp.core.sklearn_engine import model_requirements

# A team's environment of two years ago; packaging from the clone (PYTHONPATH) needs skl2onnx,
# onnx and onnxruntime beside it, whichever pip picks.
TRAINED_WITH = ["scikit-learn==1.4.2", "numpy==1.26.4", "pandas==2.2.3"]
PACKAGING = ["skl2onnx", "onnx", "onnxruntime"]
MODEL = "centroids"


def prepare(folder: Path) -> int:
    python = interpreter("3.11")
    if python is None:
        print("no Python 3.11 to train with", file=sys.stderr)
        return 1
    folder.mkdir(parents=True, exist_ok=True)
    bin_dir = virtual_environment(folder / "venv", python)
    pip = [bin_dir / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    ok(run([*pip, *TRAINED_WITH, *PACKAGING], cwd=folder, timeout=900))
    models = folder / "models"
    ok(run([bin_dir / "python", ROOT / "testkit" / "elsewhere.py", models], cwd=folder))
    package = [bin_dir / "python", "-m", "webapp", "package", models / f"{MODEL}.pkl"]
    ok(run(package, cwd=models, env={"PYTHONPATH": str(ROOT)}))
    manifest = json.loads((models / f"{MODEL}.json").read_text())
    if "file" in manifest["compiled"]:
        print(f"{MODEL} compiles now: pick a model only scikit-learn can serve", file=sys.stderr)
        return 1
    print(" ".join(model_requirements(manifest)))
    return 0


def serve(folder: Path, image: str) -> int:
    models = folder / "models"
    expected = json.loads((models / "expected.json").read_text())
    pin = sha256_hex((models / f"{MODEL}.json").read_bytes())
    port = free_port()
    name = f"sklearn-serve-elsewhere-{port}"
    env = {
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "MODEL_PATH": f"/models/{MODEL}.pkl",
        "MODEL_SHA256": pin,
    }
    proc = run_container(image, name, env, ("--volume", f"{models}:/models:ro"))
    server = Server([], port=port)
    try:
        if not ready(server, proc):
            return 1
        answers = expected[MODEL]
        body = json.dumps({"instances": answers["rows"]}).encode()
        status, _, answer = server.request("POST", "/predict", body, JSON)
        got = json.loads(answer).get("predictions") if status == 200 else None
        close = got is not None and all(
            abs(g - e) <= 1e-9 * max(abs(e), 1.0)
            for g, e in zip(got, answers["predictions"], strict=True)
        )
        engine = json.loads(server.request("GET", "/metadata")[2])["engine"]["name"]
        if not close or engine != "sklearn":
            print(f"answered {status} by {engine}: {answer[:200]!r}", file=sys.stderr)
            return 1
    finally:
        subprocess.run(["podman", "stop", "-t", "10", name], capture_output=True)
        output = proc.communicate(timeout=30)[0].decode()
    if "Traceback" in output:
        print(output, file=sys.stderr)
        return 1
    trained = expected["scikit-learn"]
    print(f"{len(got)} answers of a scikit-learn {trained} model as in its training environment")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("prepare", "serve"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--image")
    args = parser.parse_args()
    if args.step == "prepare":
        return prepare(args.folder)
    return serve(args.folder, args.image)


if __name__ == "__main__":
    sys.exit(main())
