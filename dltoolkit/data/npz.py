"""``npz:PATH``: a NumPy archive with arrays ``x`` (inputs) and ``y`` (labels).

A small archive is read whole. A large one streams (``data.cache``: ``disk`` or ``none``,
or ``auto`` where ``x`` as float32 takes more than :data:`AUTO_STREAM_BYTES`): only ``y``
is read into memory, and ``x``'s rows are read where they lie, a block at a time
(:class:`dltoolkit.data.rows.EncodedRows`). An archive written by ``np.savez`` stores its
arrays as they are, so the rows are read straight out of the archive file; one written
by ``np.savez_compressed`` cannot be read at a given row, so its ``x`` is first
decompressed, a chunk at a time, into a file in the cache folder (kept for later runs
with ``disk``, removed at exit with ``none``). Either way every row is checked for NaN
and infinite values once, and the first bad row is named.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dltoolkit.config import DataConfig
from dltoolkit.data.arrays import LabelledArrays, labels_to_indices
from dltoolkit.data.rows import EncodedRows
from dltoolkit.data.streams import filled_cache_folder
from dltoolkit.errors import DataError

# data.cache: auto streams an archive whose x, as float32, takes more than this.
AUTO_STREAM_BYTES = 1 << 30
# Bytes read at a time when checking or decompressing x.
CHUNK_BYTES = 64 << 20
# What reading a file that is not a sound .npz archive raises.
_UNREADABLE = (OSError, ValueError, zipfile.BadZipFile)


def load(path: str, config: DataConfig, require_labels: bool = True) -> LabelledArrays:
    """Load ``x`` and ``y`` from an .npz file; grey images of shape (N, H, W) get a channel."""
    source = f"npz:{path}"
    _check_file(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except _UNREADABLE as error:
        raise _unreadable(path, error) from None
    needed = ("x", "y") if require_labels else ("x",)
    _check_arrays(path, sorted(arrays), needed)
    x = arrays["x"]
    _check_x(path, x.shape, x.dtype)
    x = x.astype(np.float32)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if "y" not in arrays:
        return LabelledArrays(x=x, y=np.zeros(len(x), np.int64), class_names=[])
    y, class_names = _labels(arrays, source)
    return LabelledArrays(x=x, y=y, class_names=class_names)


@dataclass(frozen=True)
class Member:
    """Where and how an array lies in an .npz archive: its shape, type and order, whether
    it is compressed, and (stored uncompressed) the byte in the archive file where its
    numbers start."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    compressed: bool
    data_offset: int

    @property
    def row_shape(self) -> tuple[int, ...]:
        """One example's shape as the models take it (grey images get a channel)."""
        return self.shape[1:] + ((1,) if len(self.shape) == 3 else ())

    @property
    def float32_bytes(self) -> int:
        """Bytes the array takes as float32."""
        return 4 * math.prod(self.shape)


def member(path: str, name: str = "x") -> Member:
    """The layout of array ``name`` of the archive at ``path``, read from its headers
    alone; one-line errors for a missing file, a file that is no archive and a missing
    array, and for an ``x`` that is not numbers of shape (N, features...)."""
    _check_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            _check_arrays(path, sorted(n.removesuffix(".npy") for n in names), (name,))
            info = archive.getinfo(f"{name}.npy")
            with archive.open(info) as stream:
                shape, fortran_order, dtype = npy_header(stream)
                header_bytes = stream.tell()
        with open(path, "rb") as file:
            file.seek(info.header_offset)
            local = file.read(30)
    except _UNREADABLE as error:
        raise _unreadable(path, error) from None
    # A zip entry's local header: 30 bytes, then its name and extra field (their lengths
    # at bytes 26 and 28), then the entry's bytes: here the .npy header, then the numbers.
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    offset = info.header_offset + 30 + name_length + extra_length + header_bytes
    if name == "x":
        _check_x(path, shape, dtype)
    return Member(
        shape=tuple(int(n) for n in shape),
        dtype=np.dtype(dtype),
        fortran_order=bool(fortran_order),
        compressed=info.compress_type != zipfile.ZIP_STORED,
        data_offset=offset,
    )


def streams(location: str, config: DataConfig) -> bool:
    """Whether ``npz:location`` is read a block at a time rather than whole."""
    if config.cache == "memory":
        return False
    if config.cache == "auto":
        return member(location).float32_bytes > AUTO_STREAM_BYTES
    return True


def load_streamed(location: str, config: DataConfig) -> LabelledArrays:
    """The labels in memory and ``x`` as :class:`EncodedRows` read from the archive (or
    from its decompressed copy in the cache folder), every row checked once."""
    source = f"npz:{location}"
    x = member(location)
    if x.fortran_order:
        raise DataError(
            f"npz file {location!r}: x is stored in column-major (Fortran) order, so its "
            "rows cannot be read one at a time; save np.ascontiguousarray(x) instead, or "
            "set data.cache=memory to read it whole."
        )
    try:
        with np.load(location, allow_pickle=False) as archive:  # reads y alone
            _check_arrays(location, sorted(archive.files), ("x", "y"))
            labels = {key: archive[key] for key in ("y", "class_names") if key in archive.files}
    except _UNREADABLE as error:
        raise _unreadable(location, error) from None
    y, class_names = _labels(labels, source)
    width = math.prod(x.shape[1:])
    if x.compressed:
        folder = filled_cache_folder(
            f"npz-{_digest(location)}",
            config.cache,
            config.cache_dir,
            lambda partial: _decompress(location, x, partial / "x.raw"),
            marker="x.raw",
        )
        path, offset = folder / "x.raw", 0
    else:
        _check_rows(location, x)
        path, offset = Path(location), x.data_offset
    rows = EncodedRows(
        [(path, range(x.shape[0]))], width, row_shape=x.row_shape, stored=x.dtype, offset=offset
    )
    return LabelledArrays(x=rows, y=y, class_names=class_names)


def npy_header(stream: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype of the ``.npy`` data starting at ``stream``."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    return np.lib.format.read_array_header_2_0(stream)


def _check_rows(location: str, x: Member) -> None:
    """One pass over an uncompressed ``x``: the first row holding a NaN or infinity."""
    if x.dtype.kind != "f":
        return  # integers are always finite
    with open(location, "rb") as file:
        file.seek(x.data_offset)
        _check_chunks(location, x, file)


def _decompress(location: str, x: Member, target: Path) -> None:
    """``x``'s numbers decompressed into ``target`` a chunk at a time, checked on the way."""
    with zipfile.ZipFile(location) as archive, archive.open("x.npy") as stream:
        npy_header(stream)
        with open(target, "wb") as out:
            _check_chunks(location, x, stream, out)


def _check_chunks(location: str, x: Member, stream: BinaryIO, out: BinaryIO | None = None) -> None:
    """Read ``x``'s rows from ``stream`` (at its first number) in chunks, naming the first
    row with a NaN or infinity; each chunk is written to ``out`` where given."""
    row_bytes = x.dtype.itemsize * math.prod(x.shape[1:])
    per_chunk = max(1, CHUNK_BYTES // max(row_bytes, 1))
    for start in range(0, x.shape[0], per_chunk):
        count = min(per_chunk, x.shape[0] - start)
        data = stream.read(count * row_bytes)
        if len(data) != count * row_bytes:
            raise DataError(
                f"npz file {location!r} ends inside row {start + len(data) // row_bytes} of "
                f"x (expected {x.shape[0]} rows); the archive is truncated, write it again."
            )
        if x.dtype.kind == "f":
            rows = np.frombuffer(data, x.dtype).reshape(count, -1)
            bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
            if len(bad):
                raise DataError(
                    f"data source 'npz:{location}' has a NaN or infinite value in row "
                    f"{start + int(bad[0])} of x (rows counted from 0); clean or impute it."
                )
        if out is not None:
            out.write(data)


def _digest(location: str) -> str:
    """Of the archive's resolved path, size and modification time."""
    path = Path(location).resolve()
    stat = path.stat()
    key = f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _unreadable(path: str, error: BaseException) -> DataError:
    """The one line for a file that is not a readable .npz archive."""
    return DataError(f"{path!r} is not a readable .npz archive ({error}).")


def _check_file(path: str) -> None:
    if not Path(path).is_file():
        raise DataError(f"npz file {path!r} does not exist; pass --data npz:PATH to a .npz file.")


def _check_arrays(path: str, arrays: list[str], needed: tuple[str, ...]) -> None:
    missing = [key for key in needed if key not in arrays]
    if missing:
        how = (
            "save the inputs as x (np.savez(path, x=...))"
            if "y" not in needed
            else "save inputs as x and integer or string labels as y (np.savez(path, x=..., y=...))"
        )
        raise DataError(f"npz file {path!r} has arrays {arrays}, missing {missing}; {how}.")


def _check_x(path: str, shape: tuple[int, ...], dtype: Any) -> None:
    if np.dtype(dtype).kind not in "iuf":
        raise DataError(f"npz file {path!r}: x has dtype {dtype}, expected numbers.")
    if len(shape) < 2:
        raise DataError(f"npz file {path!r}: x has shape {shape}, expected (N, features...).")


def _labels(arrays: dict[str, np.ndarray], source: str) -> tuple[np.ndarray, list[str]]:
    """Label indices and class names (the archive's ``class_names`` where they fit)."""
    y, class_names = labels_to_indices(arrays["y"], source)
    names = arrays.get("class_names")
    if names is not None and len(names) == len(class_names):
        class_names = [str(name) for name in names]
    return y, class_names
