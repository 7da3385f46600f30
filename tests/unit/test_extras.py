"""webapp/extras.py: the command a message gives for a missing extra names where this
sklearn-serve came from, as pip recorded it (PEP 610's direct_url.json, documents as pip writes
them). tests/service/test_wheel.py runs the command a wheel's install gives."""

from __future__ import annotations

import shlex

import pytest
from packaging.requirements import Requirement

from testkit.processes import ROOT
from webapp import extras

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        (None, "sklearn-serve[gcs]==0.1.0"),  # an index: this version, not the newest
        ({"url": "file:///home/me/sklearn-serve", "dir_info": {}}, "/home/me/sklearn-serve[gcs]"),
        (
            {"url": "file:///home/me/sklearn-serve", "dir_info": {"editable": True}},
            "/home/me/sklearn-serve[gcs]",
        ),
        (
            {
                "url": "file:///tmp/dist/sklearn_serve-0.1.0-py3-none-any.whl",
                "archive_info": {"hashes": {"sha256": "ab" * 32}},
            },
            "/tmp/dist/sklearn_serve-0.1.0-py3-none-any.whl[gcs]",
        ),
        ({"url": "file:///my%20models/serve", "dir_info": {}}, "/my models/serve[gcs]"),
        (
            {
                "url": "https://github.com/me/sklearn-serve.git",
                "vcs_info": {"vcs": "git", "commit_id": "a" * 40, "requested_revision": "main"},
            },
            f"sklearn-serve[gcs] @ git+https://github.com/me/sklearn-serve.git@{'a' * 40}",
        ),
        (
            {"url": "https://example.com/sklearn_serve-0.1.0.tar.gz", "archive_info": {}},
            "sklearn-serve[gcs] @ https://example.com/sklearn_serve-0.1.0.tar.gz",
        ),
        ({"dir_info": {}}, "sklearn-serve[gcs]==0.1.0"),  # no URL: as from an index
    ],
)
def test_the_requirement_names_where_sklearn_serve_came_from(
    origin: dict[str, object] | None, expected: str
) -> None:
    got = extras.requirement("gcs", "0.1.0", origin)
    assert got == expected
    if not got.startswith("/"):  # pip's path[extra] aside, a PEP 508 requirement
        parsed = Requirement(got)
        assert (parsed.name, parsed.extras) == ("sklearn-serve", {"gcs"})


def test_a_clone_that_is_not_installed_is_named_by_its_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """make run serves the clone's code, which no pip install recorded: the clone's folder."""

    def not_installed(name: str) -> None:
        raise extras.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(extras.metadata, "distribution", not_installed)
    command = extras.install_command("function")
    assert shlex.split(command) == ["pip", "install", f"{ROOT}[function]"]
