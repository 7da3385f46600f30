"""The deploy targets, as `make -n` prints them: every command, with the project, region,
bucket and model given, nothing hard-coded."""

from __future__ import annotations

import subprocess

import pytest

from testkit.processes import ROOT, server_env
from webapp.core.model import sha256_hex

pytestmark = pytest.mark.integration  # runs make
WHERE = "--project my-project --region us-central1"
VARIABLES = ["GOOGLE_CLOUD_PROJECT=my-project", "GOOGLE_CLOUD_REGION=us-central1"]


def dry_run(target: str, *variables: str) -> list[str]:
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
    return proc.stdout.replace("\\\n", " ").splitlines()


def gcloud(commands: list[str]) -> list[str]:
    return [" ".join(c.split()) for c in commands if "gcloud " in c]


def test_deploy_vertex_uploads_the_model_folder_and_deploys_it() -> None:
    sha = sha256_hex((ROOT / "model.json").read_bytes())  # the pin: the manifest's sha256
    folder = f"gs://my-models/iris-predict/{sha}/"
    image = "us-central1-docker.pkg.dev/my-project/sklearn-serve/sklearn-serve"
    find = "--filter display_name=iris-predict --format 'value(name.basename())'"
    commands = gcloud(dry_run("deploy-vertex", "VERTEX_BUCKET=my-models"))
    assert commands[:3] == [
        f"gcloud storage cp $(.venv/bin/python -m webapp.core.storage model.pkl) {folder}",
        f"gcloud builds submit {WHERE} --tag {image} .",
        f"gcloud ai models upload {WHERE} --display-name iris-predict --container-image-uri "
        f"{image} --artifact-uri {folder} --container-ports 8080 --container-health-route "
        "/ready --container-predict-route /predict --container-env-vars "
        f"MODEL_SHA256={sha},GOOGLE_CLOUD_PROJECT=my-project",
    ]
    (deploy,) = commands[3:]
    assert (
        f"model=$(gcloud ai models list {WHERE} {find} --sort-by ~createTime --limit 1)" in deploy
    )
    assert f"endpoint=$(gcloud ai endpoints list {WHERE} {find} --limit 1)" in deploy
    assert f'if [ -z "$endpoint" ]; then gcloud ai endpoints create {WHERE}' in deploy
    assert deploy.endswith(
        f'gcloud ai endpoints deploy-model "$endpoint" {WHERE} --model "$model" --display-name '
        "iris-predict --machine-type n1-standard-2 --min-replica-count 1 --traffic-split 0=100"
    )
    # the files it uploads: the manifest and every file the manifest names
    listed = subprocess.run(
        [".venv/bin/python", "-m", "webapp.core.storage", "model.pkl"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.split() == ["model.json", "model.pkl", "model.onnx"]


def test_deploy_vertex_needs_a_bucket() -> None:
    proc = subprocess.run(
        ["make", "--no-print-directory", "deploy-vertex", *VARIABLES],
        cwd=ROOT,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "set VERTEX_BUCKET" in proc.stdout


@pytest.mark.parametrize("target", ["deploy-run", "deploy-function"])
def test_every_deploy_tells_the_service_its_project(target: str) -> None:
    (deploy,) = [c for c in gcloud(dry_run(target)) if " deploy " in c]
    assert WHERE in deploy
    assert "GOOGLE_CLOUD_PROJECT=my-project" in deploy.split("--set-env-vars ")[1]
