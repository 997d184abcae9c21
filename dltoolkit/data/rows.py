"""Rows of numbers on disk that stand where an array would, read a block at a time.

A large table is encoded once into float32 files, one per split (see
:mod:`dltoolkit.streamed_tables`); a large ``.npz`` archive's array ``x`` is read where it
lies in the archive (see :mod:`dltoolkit.data.npz`). :class:`EncodedRows` is a split's
rows of such a file: it has what the run loop asks of an array (``len``, ``shape``, rows
by index, joining two of them), and instead of the numbers a tf.data pipeline of batches
(float32, whatever type the file stores). Shuffling reads the
rows as blocks of :data:`BLOCK_ROWS` consecutive rows in a seeded order that changes every
epoch, and shuffles the rows of :data:`SHUFFLE_BUFFER_BYTES` of blocks together: every
batch mixes rows from dozens of places in the file, while memory holds one buffer, never
the split. Reads use plain file reads (no memory map), so the rows read do not stay in
the process's memory.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

# Rows read together; a shuffle permutes whole blocks, then rows inside a buffer of them.
BLOCK_ROWS = 4096
# Bytes of rows one shuffle buffer (and one read) holds.
SHUFFLE_BUFFER_BYTES = 64 << 20

Part = tuple[Path, Any]  # a file and its rows taken: a range, or an array of row numbers


class EncodedRows:
    """Rows of ``width`` numbers in files on disk: ``parts`` is a list of ``(file, rows)``
    with ``rows`` a ``range`` or an int64 array of row numbers (in any order, repeats
    allowed: an oversampled split). A row is ``row_shape`` numbers (``(width,)`` by
    default: an image array's rows are ``(height, width, channels)``) of type ``stored``,
    the rows starting ``offset`` bytes into every file; they are read as float32."""

    dtype = np.dtype(np.float32)
    cache = "disk"  # read from its files every time, never held whole

    def __init__(
        self,
        parts: list[Part],
        width: int,
        *,
        row_shape: tuple[int, ...] | None = None,
        stored: Any = np.float32,
        offset: int = 0,
    ):
        self.parts = [(Path(path), rows) for path, rows in parts]
        self.width = int(width)
        self.row_shape = tuple(int(n) for n in row_shape) if row_shape else (self.width,)
        if math.prod(self.row_shape) != self.width:
            raise ValueError(f"rows of shape {self.row_shape} do not hold {width} numbers")
        self.stored = np.dtype(stored)
        self.offset = int(offset)

    @classmethod
    def of_file(cls, path: Path, width: int) -> EncodedRows:
        """Every row of one file."""
        count = Path(path).stat().st_size // (4 * width) if width else 0
        return cls([(Path(path), range(count))], width)

    # --- What an array has ---

    def __len__(self) -> int:
        return sum(len(rows) for _, rows in self.parts)

    @property
    def shape(self) -> tuple[int, ...]:
        """``(rows, *row_shape)``."""
        return (len(self), *self.row_shape)

    @property
    def ndim(self) -> int:
        """Dimensions of the array the rows stand for."""
        return 1 + len(self.row_shape)

    def _with(self, parts: list[Part]) -> EncodedRows:
        """Rows ``parts`` of files laid out as these."""
        return EncodedRows(
            parts, self.width, row_shape=self.row_shape, stored=self.stored, offset=self.offset
        )

    def __getitem__(self, selection: Any) -> EncodedRows:
        """The rows at ``selection`` (a slice, an index array or a boolean mask), in its order."""
        if isinstance(selection, (int, np.integer)):
            raise TypeError("EncodedRows holds rows on disk; take rows with an array or a slice")
        if isinstance(selection, slice) and selection.step in (None, 1):
            return self._slice(*selection.indices(len(self))[:2])
        positions = np.arange(len(self))[selection]
        which = self._part_of(positions)
        # Runs of positions in one part, in order: order is kept across parts too.
        cuts = np.flatnonzero(np.diff(which)) + 1
        parts: list[Part] = []
        offsets = self._offsets()
        for run in np.split(np.arange(len(positions)), cuts):
            if len(run):
                index = int(which[run[0]])
                path, rows = self.parts[index]
                parts.append((path, _file_rows(rows, positions[run] - offsets[index])))
        return self._with(parts)

    def concatenate(self, other: EncodedRows) -> EncodedRows:
        """These rows followed by ``other``'s (files laid out alike)."""
        layout = (self.row_shape, self.stored, self.offset)
        if (other.row_shape, other.stored, other.offset) != layout:
            raise ValueError("rows of files laid out differently cannot be joined")
        return self._with([*self.parts, *other.parts])

    def _offsets(self) -> list[int]:
        return [0, *itertools.accumulate(len(rows) for _, rows in self.parts)][:-1]

    def _part_of(self, positions: np.ndarray) -> np.ndarray:
        """Index of the part each of ``positions`` falls in."""
        bounds = np.cumsum([len(rows) for _, rows in self.parts])
        return np.searchsorted(bounds, positions, side="right")

    def _slice(self, start: int, stop: int) -> EncodedRows:
        parts: list[Part] = []
        for (path, rows), offset in zip(self.parts, self._offsets(), strict=True):
            low, high = max(start - offset, 0), min(stop - offset, len(rows))
            if low < high:
                parts.append((path, rows[low:high]))
        return self._with(parts)

    # --- Reading ---

    def read(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The rows at positions ``rows`` (all by default) as one float32 array, in order."""
        positions = np.arange(len(self)) if rows is None else np.asarray(rows, np.int64)
        result = np.empty((len(positions), *self.row_shape), np.float32)
        which = self._part_of(positions)
        for index, ((path, part_rows), offset) in enumerate(
            zip(self.parts, self._offsets(), strict=True)
        ):
            mask = which == index
            if mask.any():
                file_rows = _file_rows(part_rows, positions[mask] - offset)
                found = read_rows(path, self.width, file_rows, self.stored, self.offset)
                result[mask] = found.reshape(-1, *self.row_shape)
        return result

    def sample(self, rows: int, seed: int) -> np.ndarray:
        """At most ``rows`` rows drawn without replacement (seeded), as an array."""
        if len(self) <= rows:
            return self.read()
        chosen = np.random.default_rng(seed).choice(len(self), rows, replace=False)
        return self.read(np.sort(chosen))

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        """The rows in order, at least ``rows`` at a time (whole blocks)."""
        step = max(rows, BLOCK_ROWS)
        for start in range(0, len(self), step):
            yield self.read(np.arange(start, min(start + step, len(self))))

    def batches(
        self, batch_size: int, *columns: np.ndarray, shuffle_seed: int | None = None
    ) -> Any:
        """A tf.data.Dataset of batches of the rows, each with the matching rows of
        ``columns`` (labels, sample weights; or rows on disk themselves, such as an
        autoencoder's targets): the rows alone where no columns are given, else
        ``(rows, *columns)``. Shuffled every epoch from ``shuffle_seed`` (None: in
        order). Every batch is full but the last of an epoch."""
        import tensorflow as tf

        extra = tuple(
            column if isinstance(column, EncodedRows) else np.asarray(column) for column in columns
        )
        for column in extra:
            if len(column) != len(self):
                raise ValueError(f"a column of {len(column)} rows beside {len(self)} rows")
        epochs = itertools.count()
        order = self._reading_order() if shuffle_seed is not None else None

        def generate() -> Iterator[Any]:
            epoch = next(epochs)
            left: tuple[np.ndarray, ...] | None = None  # rows short of a batch, carried on
            for positions in self._buffers(order, shuffle_seed, epoch):
                rows = (self.read(positions), *(_rows_of(column, positions) for column in extra))
                if left is not None:
                    rows = tuple(np.concatenate(pair) for pair in zip(left, rows, strict=True))
                full = len(rows[0]) - len(rows[0]) % batch_size
                for start in range(0, full, batch_size):
                    batch = tuple(values[start : start + batch_size] for values in rows)
                    yield batch if extra else batch[0]
                left = tuple(values[full:] for values in rows)
            if left is not None and len(left[0]):
                yield left if extra else left[0]

        signature = tuple(
            tf.TensorSpec((None, *values.shape[1:]), tf.as_dtype(values.dtype))
            for values in (self, *extra)
        )
        data = tf.data.Dataset.from_generator(
            generate, output_signature=signature if extra else signature[0]
        )
        data = data.apply(
            tf.data.experimental.assert_cardinality(math.ceil(len(self) / batch_size))
        )
        return data.prefetch(2)

    def _reading_order(self) -> np.ndarray:
        """Positions sorted by part and row number in its file, so blocks of consecutive
        positions read nearby rows (an oversampled split's repeats beside their originals)."""
        orders = []
        for (_, rows), offset in zip(self.parts, self._offsets(), strict=True):
            if isinstance(rows, range):
                orders.append(np.arange(offset, offset + len(rows)))
            else:
                orders.append(offset + np.argsort(rows, kind="stable"))
        return np.concatenate(orders) if orders else np.zeros(0, np.int64)

    def _buffers(
        self, order: np.ndarray | None, seed: int | None, epoch: int
    ) -> Iterator[np.ndarray]:
        """Positions to read together: in order without shuffling; else blocks of the
        reading order in a seeded order of this epoch, a buffer of blocks shuffled."""
        per_buffer = max(BLOCK_ROWS, SHUFFLE_BUFFER_BYTES // max(4 * self.width, 1))
        if order is None:
            for start in range(0, len(self), per_buffer):
                yield np.arange(start, min(start + per_buffer, len(self)))
            return
        rng = np.random.default_rng([seed, epoch])
        blocks = rng.permutation(math.ceil(len(order) / BLOCK_ROWS))
        per = max(1, per_buffer // BLOCK_ROWS)
        for start in range(0, len(blocks), per):
            chosen = [
                order[b * BLOCK_ROWS : (b + 1) * BLOCK_ROWS] for b in blocks[start : start + per]
            ]
            yield rng.permutation(np.concatenate(chosen))


def _file_rows(rows: Any, taken: np.ndarray) -> np.ndarray:
    """The row numbers in its file of a part's rows at ``taken``: arithmetic for a range
    (never an array of the whole part for a few of its rows), indexing for an array."""
    if isinstance(rows, range):
        return rows.start + rows.step * np.asarray(taken, np.int64)
    return np.asarray(rows)[taken]


def _rows_of(column: Any, positions: np.ndarray) -> np.ndarray:
    """The values of ``column`` (an array, or rows on disk) at ``positions``."""
    return column.read(positions) if isinstance(column, EncodedRows) else column[positions]


def read_rows(
    path: Path, width: int, rows: np.ndarray, stored: Any = np.float32, offset: int = 0
) -> np.ndarray:
    """Rows ``rows`` (row numbers, any order, repeats allowed) of a file of rows of
    ``width`` numbers of type ``stored`` starting ``offset`` bytes in, as float32, read in
    spans of nearby rows: memory holds the rows asked for, and at most one span."""
    result = np.empty((len(rows), width), np.float32)
    if not len(rows):
        return result
    stored = np.dtype(stored)
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    row_bytes = stored.itemsize * width
    span_rows = max(BLOCK_ROWS, SHUFFLE_BUFFER_BYTES // max(row_bytes, 1) // 4)
    # A span ends before a gap of more than a block of rows not asked for, so that the
    # scattered blocks of a shuffle are read alone rather than with what lies between.
    gaps = np.flatnonzero(np.diff(ordered) > BLOCK_ROWS) + 1
    with open(path, "rb") as file:
        start = 0
        while start < len(ordered):
            first = int(ordered[start])
            stop = int(np.searchsorted(ordered, first + span_rows, side="left"))
            after = int(np.searchsorted(gaps, start, side="right"))
            if after < len(gaps):
                stop = min(stop, int(gaps[after]))
            last = int(ordered[stop - 1])
            file.seek(offset + first * row_bytes)
            span = np.fromfile(file, stored, (last - first + 1) * width)
            span = span.reshape(-1, width)
            result[order[start:stop]] = span[ordered[start:stop] - first]
            start = stop
    return result


def seeded_rows(count: int, rows: int, seed: int) -> np.ndarray:
    """``rows`` of ``count`` row indices drawn without replacement from ``seed``, sorted
    (all of them, in order, where ``count <= rows``)."""
    if count <= rows:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, rows, replace=False))
