"""The README's examples are true to the byte: every answer it shows is what the servers say.

Two kinds of example are checked: a `curl` command in a shell block followed by a `# {...}`
line (sent to gunicorn for port 8080, to functions-framework for 8081, and for 8090 to
gunicorn serving the model "Serve your own model" trains and packages, made the same way), and
an inline "`{request}` → `{answer}`" pair about POST /predict. The curl examples of
docs/protocols.md are checked the same way.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.processes import ROOT, Server, gunicorn

README = (ROOT / "README.md").read_text(encoding="utf-8")
PROTOCOLS = (ROOT / "docs" / "protocols.md").read_text(encoding="utf-8")
SERVERS = {"8080": "gunicorn_server", "8081": "function_server", "8090": "own_model_server"}


@pytest.fixture(scope="module")
def own_model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The README's own model: trained by docs/examples/churn.py, packaged, served."""
    folder: Path = tmp_path_factory.mktemp("churn")
    for argv in (
        ["docs/examples/churn.py", str(folder)],
        ["-m", "webapp", "package", f"{folder}/model.pkl", "--data", f"{folder}/customers.csv",
         "--name", "churn"],
    ):  # fmt: skip
        subprocess.run([sys.executable, *argv], cwd=ROOT, check=True, capture_output=True)
    server = gunicorn({"MODEL_PATH": str(folder / "model.pkl")}).start()
    yield server
    server.stop()


def shell_blocks(text: str) -> list[list[str]]:
    """The lines of every ```sh block, with backslash continuations joined."""
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    return [block.replace("\\\n", " ").splitlines() for block in blocks]


def curl_examples(text: str) -> list[Any]:
    """(curl command, the answer shown after it) for every curl with an answer shown."""
    examples = []
    for lines in shell_blocks(text):
        for line, following in zip(lines, [*lines[1:], ""], strict=True):
            if line.startswith("curl ") and following.startswith("# {"):
                examples.append(pytest.param(line, following[2:], id=line[:70]))
    return examples


def inline_examples(text: str) -> list[Any]:
    """(request body, answer) for every "`{...}` → `{...}`" in the prose."""
    pairs = re.findall(r"`(\{[^`]*\})`\s*→\s*`(\{[^`]*\})`", text)
    return [pytest.param(body, answer, id=body[:60]) for body, answer in pairs]


def parse_curl(command: str) -> tuple[str, str, str, dict[str, str], bytes | None]:
    """Method, port, path, headers and body of the curl command lines this README uses."""
    words = shlex.split(command)[1:]
    method, headers, body, url = None, {}, None, None
    while words:
        word = words.pop(0)
        if word == "-X":
            method = words.pop(0)
        elif word == "-H":
            name, _, value = words.pop(0).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = words.pop(0).encode()
        elif word.startswith("-"):
            raise AssertionError(f"this test does not know curl's {word}: {command}")
        else:
            url = word
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/.*)", url or "")
    assert match, f"not a local URL: {url}"
    return method or ("POST" if body else "GET"), match[1], match[2], headers, body


@pytest.mark.unit
def test_the_readme_has_examples_to_check() -> None:
    assert len(curl_examples(README)) >= 4 and len(inline_examples(README)) >= 2
    assert len(curl_examples(PROTOCOLS)) >= 8


@pytest.mark.integration
@pytest.mark.parametrize(("command", "answer"), curl_examples(README) + curl_examples(PROTOCOLS))
def test_curl_example(command: str, answer: str, request: pytest.FixtureRequest) -> None:
    method, port, path, headers, body = parse_curl(command)
    server: Server = request.getfixturevalue(SERVERS[port])
    status, _, got = server.request(method, path, body, headers)
    assert got == answer.encode(), f"{command}\n  README: {answer}\n  server: {got.decode()}"


@pytest.mark.integration
@pytest.mark.parametrize(("body", "answer"), inline_examples(README))
def test_inline_example(body: str, answer: str, gunicorn_server: Server) -> None:
    headers = {"Content-Type": "application/json"}
    _, _, got = gunicorn_server.request("POST", "/predict", body.encode(), headers)
    assert got == answer.encode(), f"README: {answer}\nserver: {got.decode()}"
