"""The README and the pages under docs/ are true to the byte: every answer they show is what the
servers say, and every link between them leads somewhere.

Three kinds of example are checked, on every page: a `curl` command in a shell block followed
by a `# {...}` line (sent to gunicorn for port 8080, to functions-framework for 8081, and for
8090 to gunicorn serving the own model docs/examples/churn.py trains, packaged as the README
packages it), and an inline "`{request}` → `{answer}`" pair about POST /predict. The README's
Python client, docs/examples/client.py shown whole, is run against that own model's server and
must print the table the README shows after it.
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

from testkit.processes import ROOT, Server, gunicorn, server_env

PAGES = {
    path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
}
README = PAGES["README.md"]
CLIENT = ROOT / "docs" / "examples" / "client.py"
SERVERS = {"8080": "gunicorn_server", "8081": "function_server", "8090": "own_model_server"}
# The examples each page had when its reference moved out of the README: (curl, inline) at least.
EXAMPLES = {
    "README.md": (2, 0),
    "docs/api.md": (3, 2),
    "docs/models.md": (3, 0),
    "docs/deploy.md": (1, 0),
    "docs/protocols.md": (8, 0),
}


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


def curl_examples(text: str, page: str = "") -> list[Any]:
    """(curl command, the answer shown after it) for every curl with an answer shown."""
    examples = []
    for lines in shell_blocks(text):
        for line, following in zip(lines, [*lines[1:], ""], strict=True):
            if line.startswith("curl ") and following.startswith("# {"):
                examples.append(pytest.param(line, following[2:], id=f"{page} {line[:70]}"))
    return examples


def inline_examples(text: str, page: str = "") -> list[Any]:
    """(request body, answer) for every "`{...}` → `{...}`" in the prose."""
    pairs = re.findall(r"`(\{[^`]*\})`\s*→\s*`(\{[^`]*\})`", text)
    return [pytest.param(body, answer, id=f"{page} {body[:60]}") for body, answer in pairs]


def python_example(text: str) -> tuple[str, str]:
    """The README's Python program as shown, and the output shown right after it."""
    (example,) = re.findall(r"```python\n(.*?)```\n\n[^`]*?```text\n(.*?)```", text, flags=re.S)
    return example


def parse_curl(command: str) -> tuple[str, str, str, dict[str, str], bytes | None]:
    """Method, port, path, headers and body of the curl command lines these pages use."""
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
@pytest.mark.parametrize(("page", "least"), EXAMPLES.items())
def test_the_page_has_its_examples(page: str, least: tuple[int, int]) -> None:
    found = len(curl_examples(PAGES[page])), len(inline_examples(PAGES[page]))
    assert found[0] >= least[0] and found[1] >= least[1], f"{page}: {found} (curl, inline)"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("command", "answer"),
    [example for page, text in PAGES.items() for example in curl_examples(text, page)],
)
def test_curl_example(command: str, answer: str, request: pytest.FixtureRequest) -> None:
    method, port, path, headers, body = parse_curl(command)
    server: Server = request.getfixturevalue(SERVERS[port])
    status, _, got = server.request(method, path, body, headers)
    assert got == answer.encode(), f"{command}\n  shown: {answer}\n  server: {got.decode()}"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("body", "answer"),
    [example for page, text in PAGES.items() for example in inline_examples(text, page)],
)
def test_inline_example(body: str, answer: str, gunicorn_server: Server) -> None:
    headers = {"Content-Type": "application/json"}
    _, _, got = gunicorn_server.request("POST", "/predict", body.encode(), headers)
    assert got == answer.encode(), f"shown: {answer}\nserver: {got.decode()}"


@pytest.mark.unit
def test_the_readme_shows_the_python_client_whole() -> None:
    code, _ = python_example(README)
    assert code == CLIENT.read_text(encoding="utf-8")


@pytest.mark.integration
def test_the_python_client_prints_what_the_readme_shows(
    own_model_server: Server, tmp_path: Path
) -> None:
    """Run from a folder of its own, as a client elsewhere would, against the URL of a local
    server: plain http, so no identity token is fetched."""
    _, shown = python_example(README)
    env = server_env({"SERVICE_URL": own_model_server.url})
    proc = subprocess.run(
        [sys.executable, str(CLIENT)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == shown


@pytest.mark.unit
@pytest.mark.parametrize("page", ["SECURITY.md", *PAGES])
def test_every_link_between_the_pages_leads_somewhere(page: str) -> None:
    """A relative link names a file that exists and, with #anchor, a heading of that page (as
    GitHub spells its anchors): moving a section must not strand a link to it."""
    text = (ROOT / page).read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", strip_code(text)):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (ROOT / page).parent / path if path else ROOT / page
        assert linked.exists(), f"{page}: {target} names no file"
        if anchor:
            headings = re.findall(
                r"^#+ (.*)$", strip_code(linked.read_text(encoding="utf-8")), re.M
            )
            assert anchor in {slug(h) for h in headings}, f"{page}: {target} names no heading"


def strip_code(text: str) -> str:
    """The text without its fenced blocks, whose `# ...` lines are comments, not headings."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
