"""The gcloud commands that deploy: `sklearn-serve deploy run|function|vertex [--dry-run]`.

Project and region come from the arguments or the environment, nothing is hard-coded, and each
deployment is told its project (GOOGLE_CLOUD_PROJECT: the logs' trace field) rather than
asking the metadata server for it. The default is IAM-authenticated (callers need
roles/run.invoker and an identity token); --allow-unauthenticated makes a public endpoint.
With --dry-run the commands are printed as a shell script, and nothing runs.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.sklearn_engine import IMAGE_PYTHON

# --concurrency = workers x threads: Cloud Run queues the rest at its front end and scales out,
# instead of in the listen backlog, where gunicorn resets them on SIGTERM.
RUN_SIZE = ["--cpu", "2", "--memory", "1Gi", "--concurrency", "2"]
FUNCTION_SIZE = ["--memory", "512Mi"]
RUNTIME = "python" + IMAGE_PYTHON.replace(".", "")  # the Python the pins are for


@dataclass(frozen=True)
class Where:
    """The project and region every command names, and who may call what it deploys."""

    project: str
    region: str
    public: bool = False

    @property
    def flags(self) -> list[str]:
        return ["--project", self.project, "--region", self.region]

    @property
    def auth(self) -> str:
        return "--allow-unauthenticated" if self.public else "--no-allow-unauthenticated"

    def env(self, **values: str) -> list[str]:
        """--set-env-vars with `values` and GOOGLE_CLOUD_PROJECT."""
        pairs = {**values, "GOOGLE_CLOUD_PROJECT": self.project}
        return ["--set-env-vars", ",".join(f"{k}={v}" for k, v in pairs.items())]


class Shell:
    """Runs gcloud commands, or with `dry_run` prints them as the lines of a shell script."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run

    def run(self, argv: list[str]) -> None:
        if self.dry_run:
            print(shlex.join(argv))
            return
        print(f"+ {shlex.join(argv)}", file=sys.stderr)
        subprocess.run(argv, check=True)

    def value(self, variable: str, argv: list[str]) -> str:
        """What the command prints, stripped (in a dry run, the shell variable it would set)."""
        if self.dry_run:
            print(f"{variable}=$({shlex.join(argv)})")
            return f"${variable}"
        print(f"+ {variable}=$({shlex.join(argv)})", file=sys.stderr)
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def deploy_run(shell: Shell, where: Where, name: str, source: Path) -> None:
    """Cloud Run: Cloud Build builds `source`'s Dockerfile (the image pins its model)."""
    shell.run(
        ["gcloud", "run", "deploy", name, "--source", str(source), *where.flags, where.auth]
        + RUN_SIZE
        + where.env(WEB_CONCURRENCY="2")
    )


def deploy_function(shell: Shell, where: Where, name: str, bundle: Path, pin: str) -> None:
    """Cloud Functions (gen2): upload `bundle` (bundle.py), pinned to the manifest's sha256."""
    shell.run(
        ["gcloud", "functions", "deploy", name, "--gen2", "--runtime", RUNTIME, *where.flags]
        + ["--source", str(bundle), "--entry-point", "predict", "--trigger-http", where.auth]
        + FUNCTION_SIZE
        + where.env(MODEL_SHA256=pin)
    )


def deploy_vertex(
    shell: Shell,
    where: Where,
    name: str,
    files: list[Path],
    pin: str,
    bucket: str,
    image: str,
    source: Path,
    machine_type: str,
) -> None:
    """Vertex AI (docs/vertex.md): the model's files to a folder of `bucket` named by their
    pin, so an upload never changes what a deployed model reads; Cloud Build builds the image
    from `source`; the model is uploaded with that image and the folder (the container gets
    it as AIP_STORAGE_URI, pinned by MODEL_SHA256), then deployed to the endpoint named
    `name`, created on the first deploy."""
    folder = f"gs://{bucket}/{name}/{pin}/"
    shell.run(["gcloud", "storage", "cp", *map(str, files), folder])
    shell.run(["gcloud", "builds", "submit", *where.flags, "--tag", image, str(source)])
    shell.run(
        ["gcloud", "ai", "models", "upload", *where.flags, "--display-name", name]
        + ["--container-image-uri", image, "--artifact-uri", folder, "--container-ports", "8080"]
        + ["--container-health-route", "/ready", "--container-predict-route", "/predict"]
        + ["--container-env-vars", f"MODEL_SHA256={pin},GOOGLE_CLOUD_PROJECT={where.project}"]
    )
    find = ["--filter", f"display_name={name}", "--format", "value(name.basename())"]
    models = ["gcloud", "ai", "models", "list", *where.flags, *find]
    model = shell.value("model", [*models, "--sort-by", "~createTime", "--limit", "1"])
    endpoints = ["gcloud", "ai", "endpoints", "list", *where.flags, *find, "--limit", "1"]
    endpoint = shell.value("endpoint", endpoints)
    create = ["gcloud", "ai", "endpoints", "create", *where.flags, "--display-name", name]
    if shell.dry_run:
        again = f"endpoint=$({shlex.join(endpoints)})"
        print(f'if [ -z "$endpoint" ]; then {shlex.join(create)} && {again}; fi')
    elif not endpoint:
        shell.run(create)
        endpoint = shell.value("endpoint", endpoints)
    deploy = ["gcloud", "ai", "endpoints", "deploy-model", endpoint, *where.flags]
    deploy += ["--model", model, "--display-name", name, "--machine-type", machine_type]
    deploy += ["--min-replica-count", "1", "--traffic-split", "0=100"]
    if shell.dry_run:  # the variables' values, quoted as the shell expands them
        line = shlex.join(deploy)
        print(line.replace("'$endpoint'", '"$endpoint"').replace("'$model'", '"$model"'))
    else:
        shell.run(deploy)
