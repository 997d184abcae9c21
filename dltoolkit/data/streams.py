"""Image files that stand where an array of decoded images would, read a batch at a time.

An :class:`ImageFiles` is a split's list of files with the size and colour mode its images
are decoded to. It has what the run loop asks of an array (``len``, ``shape``, rows by
index, joining two of them) and, instead of the pixels, a tf.data pipeline: file names
shuffled (seeded, every epoch), decoded and resized in parallel, batched and prefetched,
so a split larger than memory trains as fast as the disk and the CPUs decode it.
``data.cache`` says what is kept of the decoded images: ``memory`` (the split decoded
once, in parallel, into one array that training then reads like any array: the in-memory
fast path behind the same interface), ``disk`` (a tf.data cache file under
``data.cache_dir``, written on the first pass and read back after), ``none`` (decoded
again every epoch), or ``auto`` (memory when the split's decoded images take at most
:data:`AUTO_CACHE_BYTES`, else none).

Images are decoded exactly as ``keras.utils.image_dataset_from_directory`` decodes them
(``tf.io.decode_image``, bilinear ``tf.image.resize``), so a model trained on a folder
sees the same pixels in training, ``dltk predict`` and serving.

tf.data is the pipeline on every backend: Keras 3's ``fit`` and ``predict`` take a
tf.data.Dataset on TensorFlow, JAX and torch alike, its decoding runs in TensorFlow's C++
threads outside the Python interpreter lock, and ``tf.distribute`` shards it under
multi_worker. (``keras.utils.PyDataset`` decodes in Python workers instead: slower on
few cores, and not a dataset tf.distribute can shard.)
"""

from __future__ import annotations

import atexit
import hashlib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dltoolkit.config.schema import CACHE_MODES
from dltoolkit.data.rows import EncodedRows, seeded_rows
from dltoolkit.data.text import TextLines
from dltoolkit.errors import DataError

# data.cache: auto keeps a split's decoded images in memory up to this size.
AUTO_CACHE_BYTES = 1 << 30
# Shuffling decoded images (a cached split) holds at most this many bytes of them.
SHUFFLE_BUFFER_BYTES = 256 << 20


class ImageFiles:
    """A split's images on disk, decoded to ``size`` (height, width) with ``channels``.

    ``cache`` is ``none``, ``memory`` or ``disk`` (``auto`` is settled when the object is
    made); ``cache_dir`` is where ``disk`` writes.
    """

    ndim = 4
    dtype = np.dtype(np.float32)

    def __init__(
        self,
        files: Sequence[str],
        size: tuple[int, int],
        channels: int,
        cache: str = "auto",
        cache_dir: Path | None = None,
    ):
        self.files = np.asarray([str(file) for file in files], dtype=object)
        self.size = (int(size[0]), int(size[1]))
        self.channels = int(channels)
        self.cache_dir = cache_dir
        if cache == "auto":
            cache = "memory" if self.decoded_bytes() <= AUTO_CACHE_BYTES else "none"
        if cache not in CACHE_MODES[1:]:
            raise DataError(f"data.cache {cache!r} is unknown; expected one of {CACHE_MODES}.")
        self.cache = cache
        self._decoded: Any = None  # the disk-cached pipeline, built once and shared
        self._pixels: np.ndarray | None = None  # data.cache: memory, decoded once

    # --- What an array has ---

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(images, height, width, channels)``."""
        return (len(self.files), *self.size, self.channels)

    def __getitem__(self, rows: Any) -> ImageFiles:
        """The images at ``rows`` (an index array, a boolean mask or a slice)."""
        if isinstance(rows, (int, np.integer)):
            raise TypeError("ImageFiles holds files; take rows with an array or a slice")
        return self._with(self.files[rows])

    def concatenate(self, other: ImageFiles) -> ImageFiles:
        """These images followed by ``other``'s."""
        return self._with(np.concatenate([self.files, other.files]))

    def decoded_bytes(self) -> int:
        """Bytes the decoded float32 images take."""
        return len(self.files) * math.prod(self.size) * self.channels * 4

    def _with(self, files: np.ndarray) -> ImageFiles:
        return ImageFiles(list(files), self.size, self.channels, self.cache, self.cache_dir)

    # --- The pipeline ---

    def decode(self, path: Any) -> Any:
        """One image file (a string tensor) as a float32 (height, width, channels) tensor."""
        import tensorflow as tf

        image = tf.io.decode_image(
            tf.io.read_file(path), channels=self.channels, expand_animations=False
        )
        image = tf.image.resize(image, self.size, method="bilinear")
        image.set_shape((*self.size, self.channels))
        return image

    def _cached(self) -> Any:
        """The decoded images in file order through a tf.data cache file; one pipeline per
        object, so that everything reading it shares the cache."""
        import tensorflow as tf

        if self._decoded is None:
            names = tf.data.Dataset.from_tensor_slices(self.files.astype(str))
            decoded = names.map(self.decode, num_parallel_calls=tf.data.AUTOTUNE)
            self._decoded = decoded.cache(str(disk_cache_file(self)))
        return self._decoded

    def in_memory(self) -> np.ndarray:
        """``data.cache: memory``: the images decoded once (in parallel) into one array,
        which training, validation and prediction then read like any array in memory."""
        if self._pixels is None:
            self._pixels = self.read()
        return self._pixels

    def batches(
        self,
        batch_size: int,
        *columns: np.ndarray,
        shuffle_seed: int | None = None,
    ) -> Any:
        """A tf.data.Dataset of batches of the images, each with the matching rows of
        ``columns`` (labels, sample weights): ``images`` alone where no columns are given,
        else ``(images, *columns)``. Shuffled every epoch from ``shuffle_seed`` (None: in
        file order)."""
        import tensorflow as tf

        extra = tuple(np.asarray(column) for column in columns)
        if self.cache != "disk":
            # Shuffle the names (small), then decode: no decoded image waits in a buffer.
            # (A split kept in memory is read as its array, see as_input; one that is read
            # here, to fill that array, decodes like an uncached one.)
            data = tf.data.Dataset.from_tensor_slices((self.files.astype(str), *extra))
            if shuffle_seed is not None:
                data = data.shuffle(len(self), seed=shuffle_seed, reshuffle_each_iteration=True)
            data = data.map(
                lambda path, *rest: (self.decode(path), *rest),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        else:
            parts = (self._cached(), *(tf.data.Dataset.from_tensor_slices(c) for c in extra))
            data = tf.data.Dataset.zip(parts)
            if shuffle_seed is not None:
                data = data.shuffle(
                    self.shuffle_buffer(), seed=shuffle_seed, reshuffle_each_iteration=True
                )
        if not extra:
            data = data.map(lambda image: image)
        return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def shuffle_buffer(self) -> int:
        """Images a shuffle of decoded images holds: all of them, up to
        :data:`SHUFFLE_BUFFER_BYTES`."""
        per_image = max(1, self.decoded_bytes() // max(1, len(self)))
        return int(min(len(self), max(64, SHUFFLE_BUFFER_BYTES // per_image)))

    # --- Decoded arrays, a bounded number of rows at a time ---

    def read(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The images at ``rows`` (all of them by default) decoded into one float32 array;
        a file that cannot be decoded is named."""
        subset = self if rows is None else self[rows]
        if rows is not None and subset.cache == "disk":
            subset.cache = "none"  # a sample or chunk is read once: no cache file of its own
        with naming_bad_files(subset):
            parts = [np.asarray(batch) for batch in subset.batches(256)]
        if not parts:
            return np.zeros((0, *self.shape[1:]), np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    def sample(self, rows: int, seed: int) -> np.ndarray:
        """At most ``rows`` images drawn without replacement (seeded), decoded."""
        if len(self) <= rows:
            return self.read()
        return self.read(seeded_rows(len(self), rows, seed))

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        """The decoded images in file order, ``rows`` at a time."""
        for start in range(0, len(self), rows):
            yield self.read(np.arange(start, min(start + rows, len(self))))


def is_streamed(x: Any) -> bool:
    """Whether ``x`` is read from disk a batch at a time (not an array in memory): image
    files, or rows on disk (a large table's encoded rows, a large npz archive's or TFDS
    dataset's, the raw texts of a large table's validation and test rows)."""
    return isinstance(x, ImageFiles | EncodedRows | TextLines)


def as_input(x: Any) -> Any:
    """What a fit or a prediction reads: streamed images, or the decoded array of images
    kept in memory (``data.cache: memory``), or ``x`` itself (an array)."""
    if is_streamed(x) and x.cache == "memory":
        with naming_bad_files(x):
            return x.in_memory()
    return x


def concatenate(first: Any, second: Any) -> Any:
    """Two splits' examples joined, arrays or files."""
    if is_streamed(first):
        return first.concatenate(second)
    return np.concatenate([first, second])


def decoded_rows(x: Any, rows: int, seed: int) -> np.ndarray:
    """At most ``rows`` examples of ``x`` as an array (seeded sample of a larger set)."""
    if is_streamed(x):
        return x.sample(rows, seed)
    if len(x) <= rows:
        return np.asarray(x)
    return np.asarray(x)[seeded_rows(len(x), rows, seed)]


def array_chunks(x: Any, rows: int) -> Iterator[np.ndarray]:
    """The examples of ``x`` as arrays of at most ``rows`` rows, in order."""
    if is_streamed(x):
        yield from x.chunks(rows)
        return
    for start in range(0, len(x), rows):
        yield x[start : start + rows]


class naming_bad_files:
    """Turn a decoding failure inside tf.data (which does not say which file) into a
    DataError naming the first file of the streamed ``examples`` that cannot be decoded
    (arrays among them are skipped)."""

    def __init__(self, *examples: Any):
        self.streamed = [x for x in examples if isinstance(x, ImageFiles)]

    def __enter__(self) -> naming_bad_files:
        return self

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> bool:
        if error is None:
            return False
        import tensorflow as tf

        if not isinstance(error, tf.errors.InvalidArgumentError | tf.errors.NotFoundError):
            return False
        if not any(word in (error.message or "") for word in _DECODING_WORDS):
            return False  # not a file that failed to read or decode
        bad = next(filter(None, map(first_undecodable, self.streamed)), None)
        if bad is None:
            return False
        raise DataError(
            f"image file {bad[0]!r} cannot be decoded ({bad[1]}); remove or replace it."
        ) from None


# Words of TensorFlow's messages for a file that cannot be read or decoded.
_DECODING_WORDS = ("Decode", "decode", "image", "Image", "PNG", "JPEG", "GIF", "BMP",
                   "ReadFile", "No such file", "NotFound")  # fmt: skip


def first_undecodable(images: ImageFiles) -> tuple[str, str] | None:
    """The first file of ``images`` TensorFlow cannot decode, and why; None if all decode."""
    import tensorflow as tf

    for path in images.files:
        try:
            images.decode(tf.constant(str(path)))
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
            return str(path), tf_reason(error)
    return None


def tf_reason(error: Any) -> str:
    """A TensorFlow error's message without its graph-node decorations."""
    message = re.sub(
        r"\{\{[^}]*\}\}|\[\[[^]]*\]\]|\[Op:[^]]*\]( name: \S*)?", "", error.message or ""
    )
    message = " ".join(message.split()).strip(" :;")
    return message[:160] or type(error).__name__


def disk_cache_file(images: ImageFiles) -> Path:
    """The tf.data cache prefix of ``images``: named by a digest of the files, their size
    and channels (and each file's resolved path, size and modification time), so the same
    split decoded the same way reuses it and a replaced file is decoded again. A lock left
    by a pass that was killed before it finished is removed (tf.data refuses to start
    otherwise), so two runs must not fill the same cache at the same time."""
    digest = hashlib.sha256()
    for file in images.files:  # where, how large and how recent: a replaced file changes it
        path = Path(file).resolve()
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    digest.update(f"{images.size}\0{images.channels}".encode())
    folder = images.cache_dir or default_cache_dir()
    prefix = Path(folder) / f"images-{digest.hexdigest()[:16]}"
    if not Path(f"{prefix}.index").exists():
        for lock in Path(folder).glob(f"{prefix.name}_*.lockfile"):
            lock.unlink(missing_ok=True)
    return prefix


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/dltoolkit/data`` (``~/.cache/dltoolkit/data`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dltoolkit" / "data"


def filled_cache_folder(
    name: str, cache: str, cache_dir: str | None, fill: Callable[[Path], None], marker: str
) -> Path:
    """The folder ``name`` in the cache folder holding what ``fill(folder)`` writes: found
    there where an earlier run filled it (its file ``marker`` is there), else filled in a
    temporary folder that is renamed into place once complete (and removed if ``fill``
    fails, so nothing half-written is read later). With ``cache`` ``none`` it is filled
    afresh and removed when the process ends."""
    keep = cache != "none"
    parent = writable_cache_dir(cache_dir)
    folder = parent / name
    if keep and (folder / marker).is_file():
        return folder
    partial = Path(tempfile.mkdtemp(prefix=f"{name}.", suffix=".partial", dir=parent))
    try:
        fill(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if not keep:
        atexit.register(shutil.rmtree, partial, True)
        return partial
    try:
        os.replace(partial, folder)
    except OSError:  # another run filled the same folder first
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def writable_cache_dir(folder: str | None) -> Path:
    """``folder`` (or the default cache folder), created and checked writable; a one-line
    error saying what to do otherwise."""
    path = Path(folder) if folder else default_cache_dir()
    probe = path / f".write-test-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise DataError(
            f"data.cache: disk cannot write to {str(path)!r} ({type(error).__name__}: "
            f"{error.strerror or error}); set data.cache_dir to a writable folder, or "
            "data.cache to memory or none."
        ) from None
    return path
