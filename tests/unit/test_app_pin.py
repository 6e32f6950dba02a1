"""Which apps an edge runs: hierfl's code-free app, or one its owner pinned by hash."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest
from flwr.cli.build import build_fab_from_files

from hierfl.config import HierConfig
from hierfl.deploy.app_pin import AppPin
from hierfl.deploy.launch import write_app


@pytest.fixture(scope="module")
def pyproject(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("app")
    write_app(folder, HierConfig())
    return (folder / "pyproject.toml").read_bytes()


def _fab(files: dict[str, bytes]) -> bytes:
    return build_fab_from_files(files)[0]


def test_hierfls_own_code_free_app_runs(pyproject):
    assert AppPin().refusal(_fab({"pyproject.toml": pyproject, "README.md": b"# run"})) == ""


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"evil.py": b"import os"}, "carries code"),
        ({"hierfl/app/client_app.py": b"app = None"}, "carries code"),  # would shadow ours
    ],
)
def test_an_app_carrying_files_is_refused(pyproject, extra, why):
    assert why in AppPin().refusal(_fab({"pyproject.toml": pyproject, **extra}))


@pytest.mark.parametrize("name", ["evil.pth", "pkg/native.so", "docs/notes.md"])
def test_a_hand_made_bundle_with_other_files_is_refused(pyproject, name):
    """A FAB need not come from ``flwr build``: whatever it holds besides text is refused."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("pyproject.toml", pyproject)
        z.writestr(name, b"\0")
    assert "carries code" in AppPin().refusal(buffer.getvalue())


def test_another_client_app_or_publisher_is_refused(pyproject):
    other = pyproject.replace(b'clientapp = "hierfl.client_app:app"', b'clientapp = "x:app"')
    assert "ClientApp is 'x:app'" in AppPin().refusal(_fab({"pyproject.toml": other}))
    stranger = pyproject.replace(b'publisher = "hierfl"', b'publisher = "someone"')
    assert "publisher" in AppPin().refusal(_fab({"pyproject.toml": stranger}))


def test_an_app_pinned_by_hash_runs_even_with_code(pyproject):
    fab = _fab({"pyproject.toml": pyproject, "evil.py": b"import os"})
    pin = AppPin(hashes=frozenset({hashlib.sha256(fab).hexdigest()}))
    assert pin.refusal(fab) == ""
    assert AppPin().refusal(b"not a zip").startswith("not a readable Flower app")
