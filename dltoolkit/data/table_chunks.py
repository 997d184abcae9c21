"""A csv/parquet table read a chunk at a time and checked as a table in memory is.

:class:`ChunkReader` gives every chunk of a file (or of a folder of part files) with the
column kinds settled on the first chunk, each chunk checked by
:func:`dltoolkit.data.tabular.table_from_frame` (a bad value is named with its file and
row), and each row's split hash (of its row number, or of ``data.split_key``) and time
value. :mod:`dltoolkit.streamed_tables` reads a table twice through it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dltoolkit.config import DataConfig
from dltoolkit.data.sources import parse_source
from dltoolkit.data.tabular import first_row, part_files, table_from_frame
from dltoolkit.errors import DataError

# Rows read at a time.
CHUNK_ROWS = 100_000


def chunks(
    kind: str, files: list[Path], text_columns: list[str], rows: int | None = None
) -> Iterator[tuple[Path, pd.DataFrame]]:
    """``(file, chunk)`` for every chunk of ``rows`` rows (:data:`CHUNK_ROWS` by default)
    of every file, each chunk's index numbering its rows in its file from 0 (so errors
    name the file's row); ``text_columns`` are read as text."""
    rows = rows or CHUNK_ROWS
    for file in files:
        if file.stat().st_size == 0:
            raise DataError(f"{kind} file {str(file)!r} is empty; it needs a header and rows.")
        try:
            if kind == "csv":
                types = dict.fromkeys(text_columns, str)
                reader = pd.read_csv(file, skipinitialspace=True, chunksize=rows, dtype=types)
                yield from ((file, chunk) for chunk in reader)
            else:
                yield from ((file, chunk) for chunk in parquet_chunks(file, rows))
        except (ValueError, OSError, pd.errors.ParserError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise DataError(
                f"{kind} file {str(file)!r} could not be read: {first or type(error).__name__}"
            ) from None


def parquet_chunks(file: Path, rows: int) -> Iterator[pd.DataFrame]:
    """A parquet file's record batches of ``rows`` rows as frames, each frame's RangeIndex
    numbering its rows in the file from 0."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        hint = 'pip install "dltoolkit[parquet]"'
        raise DataError(f"reading parquet needs pyarrow; install it with: {hint}") from None
    start = 0
    for batch in pq.ParquetFile(file).iter_batches(batch_size=rows):
        frame = batch.to_pandas()
        frame.index = pd.RangeIndex(start, start + len(frame))
        start += len(frame)
        yield frame


def unit_hash(values: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic hash of unsigned 64-bit ``values`` and ``seed`` (splitmix64),
    uniform in [0, 1)."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) % (1 << 64))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class ChunkReader:
    """The chunks of one table, checked as a table in memory is."""

    def __init__(
        self,
        config: DataConfig,
        seed: int,
        classes: bool,
        check: Callable[[pd.DataFrame, str], Any] | None = None,
    ):
        """``check(chunk, source)``: a further check of every chunk as read, before it is
        checked as a table (which turns its categorical columns into text)."""
        self.config, self.seed, self.classes = config, seed, classes
        self.check = check or (lambda chunk, source: None)
        self.kind, location = parse_source(config.source)
        self.files = part_files(self.kind, location)
        # Column kinds settled on the first chunk, so that every chunk of both passes
        # reads the categorical columns as text (a CSV chunk's own guess could turn a
        # code into "1.0" in one chunk and "1" in another).
        file, first = next(chunks(self.kind, self.files[:1], []), (self.files[0], None))
        if first is None or first.empty:
            raise DataError(f"data source {config.source!r} has a header but no rows.")
        self.check(first, f"{self.kind}:{file}")
        table = table_from_frame(first, f"{self.kind}:{file}", config)
        self.checked = dataclasses.replace(config, categorical=table.categorical)
        self.text_columns = table.categorical

    def __iter__(self) -> Iterator[tuple[Any, pd.DataFrame, np.ndarray, np.ndarray]]:
        """``(table, frame, u, t)`` of every chunk: the checked table, its feature rows,
        each row's split hash and time value (NaN without a time split)."""
        start = 0
        for file, chunk in chunks(self.kind, self.files, self.text_columns):
            source = f"{self.kind}:{file}"
            self.check(chunk, source)
            table = table_from_frame(chunk, source, self.checked)
            if self.config.split_key is not None:
                if self.config.split_key not in chunk.columns:
                    raise DataError(
                        f"data source {source!r} has no column {self.config.split_key!r} "
                        "(data.split_key); name a column that identifies related rows."
                    )
                keys = pd.util.hash_pandas_object(chunk[self.config.split_key], index=False)
                u = unit_hash(keys.to_numpy(np.uint64), self.seed)
            else:
                u = unit_hash(np.arange(start, start + len(chunk), dtype=np.uint64), self.seed)
            t = np.full(len(chunk), np.nan)
            if self.config.split == "time" and table.time_column is not None:
                t = _time_values(chunk[table.time_column], source, table.time_column)
            elif self.config.split == "time":
                t = np.arange(start, start + len(chunk), dtype=np.float64)
            if not self.classes:
                _finite_labels(chunk[table.label], source, table.label)
            start += len(chunk)
            yield table, chunk, u, t


def _time_values(values: pd.Series, source: str, column: str) -> np.ndarray:
    """Time column values as numbers (numbers, or dates as nanoseconds)."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        return numbers.to_numpy(np.float64)
    dates = pd.to_datetime(values, errors="coerce")
    if dates.isna().any():
        index, row = first_row(dates.isna())
        raise DataError(
            f"data source {source!r}: time column {column!r} holds {values.iloc[index]!r} "
            f"at row {row} (counting the header as row 1); it needs a number or a date."
        )
    return dates.astype("int64").to_numpy(np.float64)


def _finite_labels(values: pd.Series, source: str, column: str) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    if not np.all(np.isfinite(numbers)):
        index, row = first_row(pd.Series(~np.isfinite(numbers), index=values.index))
        raise DataError(
            f"data source {source!r}: label {column!r} at row {row} is "
            f"{values.iloc[index]!r}; regression needs a finite number in every row."
        )
    return numbers


def label_keys(values: pd.Series, source: str, column: str) -> np.ndarray:
    """Class labels as text, the same for a column read as numbers or as text."""
    if pd.api.types.is_float_dtype(values):
        numbers = values.to_numpy(np.float64)
        if not np.all(numbers == np.round(numbers)):
            raise DataError(
                f"data source {source!r}: labels are non-integer floats; classification "
                "expects integer or string class labels (task: regression predicts a number)."
            )
        return numbers.astype(np.int64).astype(str)
    return values.astype(str).to_numpy()


def class_order(keys: set[str]) -> list[str]:
    """Class names sorted as a table in memory sorts them: by number where all are
    integers, else as text."""
    try:
        return [str(value) for value in sorted(int(key) for key in keys)]
    except ValueError:
        return sorted(keys)
