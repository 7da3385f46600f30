"""`sklearn-serve`: package a fitted scikit-learn model, check it, serve it, deploy it.

The installed console script (pyproject.toml), and `python -m webapp` in a clone. Each
subcommand imports what it runs only when it runs: `serve` runs gunicorn's master in this very
process, with nothing of the packaging code loaded; `package` loads scikit-learn and skl2onnx.
A refusal is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

PROG = "sklearn-serve"
ENGINES = ("auto", "onnx", "sklearn")  # webapp/runtime/settings.py's
FUNCTION_PORT = 8081  # beside a server on 8080, as `make function` runs it
# `python -m functions_framework` without the current folder first on sys.path, where `-c` puts
# it (-P says the same from Python 3.11 on).
FUNCTIONS_FRAMEWORK = (
    "import runpy, sys; del sys.path[0]; "
    "runpy.run_module('functions_framework', run_name='__main__', alter_sys=True)"
)


Parser = argparse.ArgumentParser


class Refusal(Exception):
    """What the command cannot do, in one line."""


def main(argv: list[str] | None = None) -> int:
    """Run the subcommand `argv` names (default: the process's arguments); its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["package"]:  # its arguments are the packaging command's own
        from .package.command import main as package

        return package(argv[1:], prog=f"{PROG} package")
    args = parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except Refusal as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return 1


def parser() -> argparse.ArgumentParser:
    """Every subcommand, its arguments and the function that runs it."""
    top = argparse.ArgumentParser(
        prog=PROG,
        description="Serve a fitted scikit-learn model over HTTP: package it, check it, serve "
        "it with gunicorn or as a Cloud Function, deploy it to Google Cloud.",
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    subcommands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, run: Callable[[argparse.Namespace], int]) -> Parser:
        sub = subcommands.add_parser(name, help=summary, description=summary)
        sub.set_defaults(run=run)
        return sub

    subcommands.add_parser(
        "package",
        help="describe, compile and verify MODEL.pkl: write its manifest and compiled form, "
        "print the pin (`sklearn-serve package --help`)",
        add_help=False,
    )

    check = command(
        "check",
        "verify a packaged model: its manifest and the pin, every file's sha256, the engine "
        "that would serve it here and its self-check; print the pin",
        run_check,
    )
    model_argument(check)
    pin_and_engine(check)

    serve = command(
        "serve", "serve MODEL with gunicorn, with the settings and worker of the image", run_serve
    )
    model_argument(serve, optional=True)
    serve.add_argument("--host", help="the address to listen on (HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="the port (PORT; default 8080)")
    serve.add_argument(
        "--workers", type=int, help="worker processes (WEB_CONCURRENCY; default: one per CPU)"
    )
    pin_and_engine(serve)

    function = command(
        "function",
        "serve MODEL as the Cloud Function, under functions-framework (the extra [function])",
        run_function,
    )
    model_argument(function)
    function.add_argument("--host", default="127.0.0.1", help="the address (127.0.0.1)")
    function.add_argument("--port", type=int, default=FUNCTION_PORT, help="the port (8081)")
    pin_and_engine(function)

    bundle = command("bundle", "write the Cloud Function's upload folder for MODEL", run_bundle)
    model_argument(bundle)
    bundle.add_argument("--out", type=Path, required=True, help="the folder (replaced)")

    deploy = command("deploy", "deploy with gcloud (--dry-run: print the commands)", run_deploy)
    targets = deploy.add_subparsers(dest="target", required=True, metavar="TARGET")
    run = targets.add_parser(
        "run", help="Cloud Run: the image built from SOURCE's Dockerfile (a clone)"
    )
    source_argument(run)
    to_function = targets.add_parser("function", help="Cloud Functions (gen2): MODEL's bundle")
    model_argument(to_function)
    to_function.add_argument(
        "--out", type=Path, default=Path("build/function"), help="the bundle (build/function)"
    )
    vertex = targets.add_parser(
        "vertex", help="Vertex AI: MODEL's files to a bucket, the image from SOURCE (a clone)"
    )
    model_argument(vertex)
    vertex.add_argument("--bucket", required=True, help="the bucket for the model's files")
    vertex.add_argument(
        "--image", help="the image (default: REGION-docker.pkg.dev/PROJECT/sklearn-serve/...)"
    )
    vertex.add_argument("--machine-type", default="n1-standard-2", help="(n1-standard-2)")
    source_argument(vertex)
    for target in (run, to_function, vertex):
        target.add_argument(
            "--project",
            default=os.environ.get("GOOGLE_CLOUD_PROJECT"),
            help="the project (GOOGLE_CLOUD_PROJECT)",
        )
        target.add_argument(
            "--region",
            default=os.environ.get("GOOGLE_CLOUD_REGION") or "europe-west1",
            help="the region (GOOGLE_CLOUD_REGION; default europe-west1)",
        )
        target.add_argument("--name", help="the service, function or model (default: MODEL's)")
        target.add_argument(
            "--allow-unauthenticated",
            action="store_true",
            help="a public endpoint (default: callers need roles/run.invoker)",
        )
        target.add_argument("--dry-run", action="store_true", help="print the commands only")
    return top


def installed_version() -> str:
    """The distribution's version, or where it is not installed (a clone), that it is not."""
    from importlib import metadata

    try:
        return metadata.version(PROG)
    except metadata.PackageNotFoundError:
        return "(not installed: run from a clone)"


def model_argument(sub: Parser, optional: bool = False) -> None:
    sub.add_argument(
        "model",
        nargs="?" if optional else None,
        help="the model: its pickle (MODEL.pkl, with MODEL.json beside it), a folder holding "
        "model.json, or gs://bucket/path/model.pkl or a gs://bucket/folder/"
        + (" (default: MODEL_PATH or AIP_STORAGE_URI)" if optional else ""),
    )


def pin_and_engine(sub: Parser) -> None:
    sub.add_argument("--sha256", help="the manifest's sha256 to insist on (MODEL_SHA256)")
    sub.add_argument("--engine", choices=ENGINES, help="which engine must serve (ENGINE; auto)")


def source_argument(sub: Parser) -> None:
    sub.add_argument(
        "--source",
        type=Path,
        default=Path("."),
        help="the folder Cloud Build builds the image from: a clone of the repository (.)",
    )


def model_settings(args: argparse.Namespace) -> dict[str, str]:
    """The settings (webapp/runtime/settings.py's names) that make the service serve the model
    the arguments name, with their pin and engine."""
    values: dict[str, str] = {}
    location: str | None = args.model
    if location is None:
        if not (os.environ.get("MODEL_PATH") or os.environ.get("AIP_STORAGE_URI")):
            raise Refusal("name the model to serve (MODEL.pkl, a folder or a gs:// URL)")
    elif location.startswith("gs://"):
        values["AIP_STORAGE_URI" if location.endswith("/") else "MODEL_PATH"] = location
    else:
        values["MODEL_PATH"] = str(local_model(Path(location)))
    if args.sha256:
        values["MODEL_SHA256"] = args.sha256
    if args.engine:
        values["ENGINE"] = args.engine
    return values


def local_model(location: Path) -> Path:
    """The pickle a local location names: the file itself, or in a folder the artifact its
    model.json names (the same convention as a gs:// folder)."""
    if not location.is_dir():
        if not location.exists():
            raise Refusal(f"{location}: no such file or folder")
        return location.resolve()
    manifest = location / "model.json"
    try:
        artifact = json.loads(manifest.read_text(encoding="utf-8"))["artifact"]["file"]
    except OSError:
        raise Refusal(f"{location} holds no model.json: name the model's pickle") from None
    except (ValueError, KeyError, TypeError):
        raise Refusal(f"{manifest} names no artifact file") from None
    return (location / artifact).resolve()


def run_check(args: argparse.Namespace) -> int:
    """Verify the model as core/check.py does; print what serves it and the pin."""
    from .core.check import check
    from .core.storage import fetch
    from .core.vocabulary import ArtifactError
    from .runtime.settings import ConfigError, Settings

    logging.disable(logging.WARNING)  # what the log would say, this prints
    if "" not in sys.path:  # a pickle's own modules in this folder, as `serve` finds them
        sys.path.insert(0, "")
    try:
        settings = Settings.from_mapping(model_settings(args))
        path = settings.model_path
        if settings.model_url:
            path = fetch(settings.model_url, settings.model_sha256)
        model, files = check(path, settings.model_sha256, settings.engine)
    except (ArtifactError, ConfigError) as exc:
        raise Refusal(str(exc)) from None
    manifest = model.manifest
    rows = len(manifest["self_check"]["instances"])
    print(f"{args.model}: {manifest['name']} {manifest['version']}, {manifest['task']}")
    print(f"served here by {model.engine.name}: {model.why}")
    print(f"verified {', '.join(f.name for f in files)}; self-check: {rows} rows as recorded")
    print(f"MODEL_SHA256={model.sha256}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """gunicorn, in this process, exactly as the image starts it (webapp/server/start.py)."""
    settings = model_settings(args)
    if "MODEL_PATH" in settings or "AIP_STORAGE_URI" in settings:
        os.environ.pop("MODEL_PATH", None)  # MODEL_PATH would win over AIP_STORAGE_URI
        os.environ.pop("AIP_STORAGE_URI", None)
    if args.host is not None:
        settings["HOST"] = args.host
    if args.port is not None:
        settings["PORT"] = str(args.port)
        os.environ.pop("AIP_HTTP_PORT", None)  # it would win over PORT
    if args.workers is not None:
        settings["WEB_CONCURRENCY"] = str(args.workers)
    os.environ.update(settings)
    from .server.start import run

    run()
    return 0


def run_function(args: argparse.Namespace) -> int:
    """functions-framework serving the package's function entry, as `make function` does; this
    process becomes it."""
    import importlib.util

    if importlib.util.find_spec("functions_framework") is None:
        from .extras import install_command

        raise Refusal(f"functions-framework is not installed: {install_command('function')}")
    from .runtime.settings import ConfigError, host
    from .server.conf import check_listen

    settings = model_settings(args)
    try:
        address = host("--host", args.host)
    except ConfigError as exc:
        raise Refusal(str(exc)) from None
    try:
        check_listen(address, args.port)
    except SystemExit as exc:
        raise Refusal(str(exc)) from None
    os.environ.update(settings)
    # This package first (a folder here named webapp must not stand in for it), then this
    # folder, for a pickle's own modules, as `serve` finds them.
    package = Path(__file__).resolve().parent
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(package.parent), os.getcwd(), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    entry = package / "gcf" / "main.py"
    argv = [sys.executable, "-c", FUNCTIONS_FRAMEWORK, "--target", "predict"]
    argv += ["--source", str(entry), "--host", address, "--port", str(args.port)]
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def run_bundle(args: argparse.Namespace) -> int:
    """Write the function's upload folder (webapp/deploy/bundle.py); list it, print the pin."""
    files, pin = write_bundle(args.model, args.out)
    for path in files:
        print(args.out / path)
    print(f"MODEL_SHA256={pin}")
    return 0


def write_bundle(location: str, out: Path) -> tuple[list[Path], str]:
    from .core.model import sha256_hex
    from .core.vocabulary import ArtifactError
    from .deploy.bundle import build

    if location.startswith("gs://"):
        raise Refusal("a bundle holds a local model: name its pickle or folder")
    model = local_model(Path(location))
    try:
        files = build(out, model)
    except ArtifactError as exc:
        raise Refusal(str(exc)) from None
    return files, sha256_hex((out / "model.json").read_bytes())


def run_deploy(args: argparse.Namespace) -> int:
    """The gcloud commands for the target (webapp/deploy/gcloud.py), run or printed."""
    from .deploy import gcloud

    if not args.project:
        raise Refusal("name the project: --project, or set GOOGLE_CLOUD_PROJECT")
    where = gcloud.Where(args.project, args.region, args.allow_unauthenticated)
    shell = gcloud.Shell(args.dry_run)
    if args.target == "run":
        dockerfile(args.source)
        name = args.name or manifest_name(args.source / "model.pkl")
        gcloud.deploy_run(shell, where, name, args.source)
    elif args.target == "function":
        if args.dry_run:  # the upload is written all the same: it is what would be deployed
            print(f"# the bundle, written to {args.out}")
        files, pin = write_bundle(args.model, args.out)
        name = args.name or manifest_name(args.out / "model.pkl")
        gcloud.deploy_function(shell, where, name, args.out, pin)
    else:
        from .core.model import sha256_hex
        from .core.storage import local_files
        from .core.vocabulary import ArtifactError

        if not args.bucket:
            raise Refusal("name the bucket for the model's files (--bucket; make: VERTEX_BUCKET)")
        dockerfile(args.source)
        model = local_model(Path(args.model))
        try:
            files = local_files(model)
        except ArtifactError as exc:
            raise Refusal(str(exc)) from None
        pin = sha256_hex(files[0].read_bytes())
        name = args.name or manifest_name(model)
        image = args.image or (
            f"{args.region}-docker.pkg.dev/{args.project}/sklearn-serve/sklearn-serve"
        )
        relative = [relative_path(f) for f in files]
        gcloud.deploy_vertex(
            shell, where, name, relative, pin, args.bucket, image, args.source, args.machine_type
        )
    return 0


def dockerfile(source: Path) -> None:
    if not (source / "Dockerfile").is_file():
        raise Refusal(
            f"{source} has no Dockerfile: Cloud Build builds the image from a clone of the "
            "repository (--source)"
        )


def manifest_name(model: Path) -> str:
    """The model's name in its manifest, the default name of what is deployed."""
    try:
        return str(json.loads(model.with_suffix(".json").read_text(encoding="utf-8"))["name"])
    except (OSError, ValueError, KeyError, TypeError):
        raise Refusal(
            f"cannot read the name in {model.with_suffix('.json')}: pass --name"
        ) from None


def relative_path(path: Path) -> Path:
    """`path` relative to the current folder where it is inside it (shorter commands)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


if __name__ == "__main__":
    sys.exit(main())
