"""Assemble exactly what `make deploy-function` uploads to Cloud Functions.

    python gcf/bundle.py build/function [--model path/to/model.pkl]

The bundle is main.py (this folder's entry point) at the root, the webapp package without its
packaging code, the artifact, its manifest and its compiled form (if it has one), and the
pinned runtime requirements: nothing else, no copy kept in the repository.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(output: Path, model: Path = ROOT / "model.pkl") -> list[Path]:
    """Write the bundle, serving `model` (its manifest and compiled form beside it), into an
    empty `output`; return the files it holds."""
    files = {
        "main.py": ROOT / "gcf" / "main.py",
        "model.pkl": model,
        "model.json": model.with_suffix(".json"),
        "requirements.txt": ROOT / "requirements.txt",
    }
    if model.with_suffix(".onnx").exists():
        files["model.onnx"] = model.with_suffix(".onnx")
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    for name, source in files.items():
        shutil.copy2(source, output / name)
    for module in sorted((ROOT / "webapp").rglob("*.py")):
        if module.is_relative_to(ROOT / "webapp" / "package"):
            continue  # packaging runs where models are made, never where they are served
        target = output / module.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(module, target)
    return sorted(p.relative_to(output) for p in output.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    """Command line: build the bundle and list it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, nargs="?", default=ROOT / "build" / "function")
    parser.add_argument("--model", type=Path, default=ROOT / "model.pkl", help="the artifact")
    args = parser.parse_args(argv)
    for path in build(args.output, args.model):
        print(args.output / path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
