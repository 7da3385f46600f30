"""The `sklearn-serve` command (`python -m webapp` in the clone), run from folders other than
the clone: its help, `check`, `package`'s first-hour refusals, and a pickle's own module found
where it is packaged and served."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from testkit.processes import ROOT, Server, server_env, storage_emulator
from testkit.samples import SETOSA
from webapp.core.model import sha256_hex

pytestmark = pytest.mark.integration  # runs the command in a process of its own
PIN = sha256_hex((ROOT / "model.json").read_bytes())
COMMANDS = ["", "package", "check", "serve", "function", "bundle", "deploy", "deploy run"]
COMMANDS += ["deploy function", "deploy vertex"]


def sklearn_serve(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command as the installed console script runs it: the package importable, this
    folder not on sys.path unless the command puts it there."""
    return subprocess.run(
        [sys.executable, "-P", "-c", "import sys, webapp.cli; sys.exit(webapp.cli.main())"]
        + [str(a) for a in argv],
        cwd=cwd,
        env=server_env({"PYTHONPATH": str(ROOT)}),
        capture_output=True,
        text=True,
        timeout=300,
    )


def refusal(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line a refusal prints, exit status 1, nothing on stdout."""
    assert (proc.returncode, proc.stdout) == (1, ""), proc.stdout + proc.stderr
    (line,) = proc.stderr.splitlines()
    return line


def copy_model(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    for suffix in (".pkl", ".json", ".onnx", ".verification.json"):
        shutil.copy(ROOT / f"model{suffix}", folder / f"model{suffix}")
    return folder / "model.pkl"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_help_from_any_folder(command: str, tmp_path: Path) -> None:
    proc = sklearn_serve(*command.split(), "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: sklearn-serve {command}".rstrip())
    assert proc.stdout.count("usage:") == 1  # said once, not again inside a paragraph


def test_check_prints_the_pin_of_a_file_or_a_folder(tmp_path: Path) -> None:
    model = copy_model(tmp_path / "iris")
    for location in (model, model.parent):
        out = sklearn_serve("check", location, "--sha256", PIN, cwd=tmp_path).stdout
        lines = out.splitlines()
        assert lines[1] == (
            "served here by onnx: the compiled form, verified on 100137 rows against the estimator"
        )
        assert (
            lines[2] == "verified model.json, model.pkl, model.onnx, model.verification.json; "
            "self-check: 3 rows as recorded"
        )
        assert lines[3] == f"MODEL_SHA256={PIN}"


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("fallback", "model.pkl has sha256 "),  # the engine that serves never reads it
        ("pin", "MODEL_SHA256 pins " + "f" * 64),
        ("manifest", "cannot read {folder}/model.json: No such file or directory: package the "
         "model first, with `sklearn-serve package {folder}/model.pkl`"),
        ("folder", "holds no model.json: name the model's pickle"),
    ],
)  # fmt: skip
def test_check_refuses_a_damaged_model_in_one_line(damage: str, says: str, tmp_path: Path) -> None:
    model = copy_model(tmp_path / "iris")
    argv: list[str | Path] = ["check", model]
    if damage == "fallback":
        model.write_bytes(model.read_bytes() + b"\0")
    elif damage == "pin":
        argv += ["--sha256", "f" * 64]
    elif damage == "manifest":
        model.with_suffix(".json").unlink()
    else:
        model.with_suffix(".json").unlink()
        argv = ["check", model.parent]
    line = refusal(sklearn_serve(*argv, cwd=tmp_path))
    assert line.startswith("sklearn-serve check: ")
    assert says.format(folder=model.parent) in line, line


def test_package_prints_the_pin_and_names_the_model_after_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "churn"
    subprocess.run(
        [sys.executable, ROOT / "docs" / "examples" / "churn.py", folder],
        check=True,
        capture_output=True,
    )
    out = sklearn_serve(
        "package", "model.pkl", "--data", "customers.csv", "--version", "2.0.0", cwd=folder
    ).stdout
    manifest = folder / "model.json"
    assert out.splitlines()[-1] == f"MODEL_SHA256={sha256_hex(manifest.read_bytes())}"
    assert (
        json.loads(manifest.read_text())["name"],
        json.loads(manifest.read_text())["version"],
    ) == (
        "churn",
        "2.0.0",
    )
    assert "served as 'churn' 2.0.0" in out


def test_a_text_file_given_as_a_pickle_is_said_to_be_no_pickle(tmp_path: Path) -> None:
    text = tmp_path / "model.pkl"
    text.write_text("sepal_length,sepal_width\n5.1,3.5\n" * 20)
    line = refusal(sklearn_serve("package", text, cwd=tmp_path))
    assert line == (
        f"cannot package {text}: cannot unpickle it: it is not a pickle (save the fitted "
        "estimator with joblib.dump(estimator, path))"
    )


TRAIN = """\
import sys

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
{define}

X = np.random.default_rng(0).normal(size=(80, 4)) + 3
model = make_pipeline(FunctionTransformer(doubled), LogisticRegression()).fit(X, X[:, 0] > 3)
joblib.dump(model, sys.argv[1])
"""


def test_a_function_of_the_training_script_is_said_where_to_live(tmp_path: Path) -> None:
    """Pickle stores a function by module and name: one defined in the training script is
    __main__.doubled, which no other program has."""
    script = tmp_path / "train.py"
    script.write_text(TRAIN.format(define="\n\ndef doubled(x):\n    return 2 * x\n"))
    subprocess.run([sys.executable, script, "model.pkl"], cwd=tmp_path, check=True)
    line = refusal(sklearn_serve("package", "model.pkl", cwd=tmp_path))
    assert "it needs doubled() from the script that saved it (its __main__)" in line
    assert "define doubled in a module of its own" in line and "webapp" not in line


def test_a_function_in_a_module_of_its_own_is_found_where_it_is_served(tmp_path: Path) -> None:
    """The module beside the model, in the folder the command runs in: packaged, checked and
    served (by scikit-learn: the function does not compile) from there."""
    (tmp_path / "features.py").write_text("def doubled(x):\n    return 2 * x\n")
    script = tmp_path / "train.py"
    script.write_text(TRAIN.format(define="\nfrom features import doubled\n"))
    subprocess.run([sys.executable, script, "model.pkl"], cwd=tmp_path, check=True)
    assert sklearn_serve("package", "model.pkl", cwd=tmp_path).returncode == 0
    assert "served here by sklearn" in sklearn_serve("check", "model.pkl", cwd=tmp_path).stdout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert "'features'" in refusal(sklearn_serve("check", tmp_path / "model.pkl", cwd=elsewhere))

    argv = [sys.executable, "-m", "webapp", "serve", "model.pkl", "--port", "{port}"]
    server = Server(
        argv + ["--workers", "1"], env={"PYTHONPATH": str(ROOT)}, cwd=tmp_path, name="serve"
    ).start()
    try:
        rows = np.random.default_rng(1).normal(size=(5, 4)) + 3
        body = json.dumps({"instances": rows.tolist()}).encode()
        answer = json.loads(
            server.request("POST", "/predict", body, {"Content-Type": "application/json"})[2]
        )
    finally:
        server.stop()
    sys.path.insert(0, str(tmp_path))
    try:
        expected = joblib.load(tmp_path / "model.pkl").predict(rows).tolist()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("features", None)
    assert answer == {"predictions": expected}


def test_serve_refuses_without_a_model(tmp_path: Path) -> None:
    line = refusal(sklearn_serve("serve", cwd=tmp_path))
    assert (
        line == "sklearn-serve serve: name the model to serve (MODEL.pkl, a folder or a gs:// URL)"
    )


def test_the_function_command_serves_on_loopback(tmp_path: Path) -> None:
    model = copy_model(tmp_path / "iris")
    argv = [sys.executable, "-P", "-c", "import sys, webapp.cli; sys.exit(webapp.cli.main())"]
    server = Server(
        [*argv, "function", str(model), "--port", "{port}"],
        env={"PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        name="sklearn-serve function",
        predict_path="/",
    ).start()
    try:
        status, _, body = server.request(
            "POST", "/", json.dumps(SETOSA).encode(), {"Content-Type": "application/json"}
        )
        addresses = listening(server.port)
    finally:
        server.stop()
    assert (status, body) == (200, b'{"prediction":0}')
    assert addresses == {"127.0.0.1"}  # functions-framework's own default is every interface


def listening(port: int) -> set[str]:
    """The IPv4 addresses a socket listens on at `port`, from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


def test_check_takes_the_folder_a_model_was_packaged_in(tmp_path: Path) -> None:
    """A model of the user's own, packaged, then checked by its folder: named after it."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    joblib.dump(LogisticRegression().fit(X, X[:, 0] > 0), tmp_path / "model.pkl")
    assert sklearn_serve("package", "model.pkl", cwd=tmp_path).returncode == 0
    out = sklearn_serve("check", ".", cwd=tmp_path).stdout
    assert out.splitlines()[0].startswith(f".: {tmp_path.name} 1.0.0, classification")


def test_check_fetches_a_model_from_cloud_storage(tmp_path: Path) -> None:
    """gs://bucket/path/model.pkl and a gs:// folder, from a real emulator on 127.0.0.1: the
    manifest held to the pin before anything else is fetched, then every file verified."""
    emulator = storage_emulator().start(ready_path="/")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
            from google.cloud import storage

            bucket = storage.Client(project=None).create_bucket("models")
            for suffix in (".pkl", ".json", ".onnx", ".verification.json"):
                bucket.blob(f"iris/model{suffix}").upload_from_filename(ROOT / f"model{suffix}")
        env = server_env({"PYTHONPATH": str(ROOT), "STORAGE_EMULATOR_HOST": emulator.url})
        argv = [sys.executable, "-P", "-m", "webapp", "check"]
        for location in ("gs://models/iris/model.pkl", "gs://models/iris/"):
            proc = subprocess.run(
                [*argv, location, "--sha256", PIN], cwd=tmp_path, env=env, capture_output=True,
                text=True, timeout=120,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.splitlines()[-1] == f"MODEL_SHA256={PIN}"
        wrong = subprocess.run(
            [*argv, "gs://models/iris/", "--sha256", "f" * 64], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert "gs://models/iris/model.json has sha256" in refusal(wrong)
    finally:
        emulator.stop()
