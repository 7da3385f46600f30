"""The deploys, as `sklearn-serve deploy ... --dry-run` prints them: every gcloud command, with
the project, region, bucket and model given, nothing hard-coded; and the Makefile's deploy
targets calling that command with their variables."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.processes import ROOT, server_env
from webapp.core.model import sha256_hex

pytestmark = pytest.mark.integration  # runs the command and make
WHERE = "--project my-project --region us-central1"
VARIABLES = ["GOOGLE_CLOUD_PROJECT=my-project", "GOOGLE_CLOUD_REGION=us-central1"]
PIN = sha256_hex((ROOT / "model.json").read_bytes())  # the manifest's sha256


def command(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """`python -m webapp ARGV` (the installed `sklearn-serve`), as the Makefile runs it."""
    return subprocess.run(
        [sys.executable, "-m", "webapp", *argv],
        cwd=cwd,
        env=server_env({"PYTHONPATH": str(ROOT)}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def dry_run(*argv: str) -> list[str]:
    proc = command("deploy", *argv, *WHERE.split(), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if not line.startswith("#")]


def make_dry_run(target: str, *variables: str) -> list[str]:
    """The commands `make -n` prints for `target`, continuation lines joined."""
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", target, *VARIABLES, *variables],
        cwd=ROOT,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return [" ".join(c.split()) for c in proc.stdout.replace("\\\n", " ").splitlines()]


def test_deploy_vertex_uploads_the_model_folder_and_deploys_it() -> None:
    folder = f"gs://my-models/iris-predict/{PIN}/"
    image = "us-central1-docker.pkg.dev/my-project/sklearn-serve/sklearn-serve"
    find = "--filter display_name=iris-predict --format 'value(name.basename())'"
    commands = dry_run("vertex", "model.pkl", "--bucket", "my-models", "--name", "iris-predict")
    assert commands[:3] == [
        # the files: the manifest and every file it names
        f"gcloud storage cp model.json model.pkl model.onnx model.verification.json {folder}",
        f"gcloud builds submit {WHERE} --tag {image} .",
        f"gcloud ai models upload {WHERE} --display-name iris-predict --container-image-uri "
        f"{image} --artifact-uri {folder} --container-ports 8080 --container-health-route "
        "/ready --container-predict-route /predict --container-env-vars "
        f"MODEL_SHA256={PIN},GOOGLE_CLOUD_PROJECT=my-project",
    ]
    model, endpoint, create, deploy = commands[3:]
    assert model == (
        f"model=$(gcloud ai models list {WHERE} {find} --sort-by '~createTime' --limit 1)"
    )
    assert endpoint == f"endpoint=$(gcloud ai endpoints list {WHERE} {find} --limit 1)"
    assert create.startswith(
        f'if [ -z "$endpoint" ]; then gcloud ai endpoints create {WHERE} --display-name '
        f"iris-predict && {endpoint}; fi"
    )
    assert deploy == (
        f'gcloud ai endpoints deploy-model "$endpoint" {WHERE} --model "$model" --display-name '
        "iris-predict --machine-type n1-standard-2 --min-replica-count 1 --traffic-split 0=100"
    )
    for line in commands:  # a shell script a person may run as it is
        shlex.split(line)


def test_deploy_function_uploads_the_bundle_pinned(tmp_path: Path) -> None:
    bundle = tmp_path / "function"
    (deploy,) = dry_run("function", "model.pkl", "--out", str(bundle))
    assert deploy == (
        f"gcloud functions deploy iris-logistic-regression --gen2 --runtime python311 {WHERE} "
        f"--source {bundle} --entry-point predict --trigger-http --no-allow-unauthenticated "
        f"--memory 512Mi --set-env-vars MODEL_SHA256={PIN},GOOGLE_CLOUD_PROJECT=my-project"
    )
    assert (bundle / "main.py").is_file() and (bundle / "model.json").read_bytes() == (
        ROOT / "model.json"
    ).read_bytes()


def test_deploy_run_builds_the_image_from_the_clone() -> None:
    (deploy,) = dry_run("run", "--name", "iris-predict", "--allow-unauthenticated")
    assert deploy == (
        f"gcloud run deploy iris-predict --source . {WHERE} --allow-unauthenticated --cpu 2 "
        "--memory 1Gi --concurrency 2 --set-env-vars WEB_CONCURRENCY=2,"
        "GOOGLE_CLOUD_PROJECT=my-project"
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["vertex", "model.pkl", "--bucket", "", *WHERE.split()], "name the bucket"),
        (["run", "--region", "us-central1"], "name the project"),
        (["run", "--source", "webapp", *WHERE.split()], "webapp has no Dockerfile"),
        (["function", "nothing.pkl", "--out", "build/x", *WHERE.split()], "no such file"),
    ],
    ids=["bucket", "project", "dockerfile", "model"],
)
def test_a_deploy_that_cannot_be_made_says_why_in_one_line(argv: list[str], says: str) -> None:
    proc = command("deploy", *argv)
    assert proc.returncode == 1 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("sklearn-serve deploy: ") and says in line, line


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("deploy-run", f"deploy run --source . --name iris-predict {WHERE}"),
        (
            "deploy-function",
            f"deploy function model.pkl --out build/function --name iris-predict {WHERE}",
        ),
        (
            "deploy-vertex",
            'deploy vertex model.pkl --bucket "my-models" --name iris-predict --image '
            "us-central1-docker.pkg.dev/my-project/sklearn-serve/sklearn-serve --machine-type "
            f"n1-standard-2 --source . {WHERE} --dry-run",
        ),
    ],
)
def test_the_makefile_deploys_with_the_command(target: str, expected: str) -> None:
    commands = make_dry_run(target, "VERTEX_BUCKET=my-models", "DRY_RUN=1")
    (line,) = [c for c in commands if " -m webapp deploy " in c]
    assert line.replace('"', "").startswith(
        f".venv/bin/python -m webapp {expected.replace(chr(34), '')}"
    ), line
