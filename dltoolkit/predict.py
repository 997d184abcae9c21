"""Batch prediction over inputs of any size: ``dltk predict``.

Inputs are read a chunk at a time (CSV with pandas' chunked reader, Parquet by record
batch, images by file, ``.npy`` rows straight out of the ``.npz`` archive), predicted, and
their rows handed on before the next chunk is read, so memory stays bounded by the chunk
size rather than the input's. Price series are the exception: each window needs the days
before it, and a daily series fits in memory many times over, so a series is read whole
and only its predictions are streamed.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit import features
from dltoolkit.config import DataConfig
from dltoolkit.data.text import TextTokenizer, checked_texts
from dltoolkit.data.tokenizers import saved_tokenizer
from dltoolkit.errors import DataError, first_line
from dltoolkit.models import load_model
from dltoolkit.tasks import task_class

DEFAULT_CHUNK_ROWS = 8192


@dataclass
class Chunk:
    """Inputs of one chunk, their identifiers, and how far they move the progress bar."""

    x: np.ndarray
    identifiers: list[str]
    progress: int


@dataclass
class InputStream:
    """A source read lazily: ``total`` progress units (``unit``: rows or bytes) and the
    chunks themselves."""

    total: int
    unit: str
    chunks: Iterator[Chunk]


@dataclass
class PredictionStream:
    """Prediction rows of a source, one list per chunk, with progress units per chunk."""

    total: int
    unit: str
    batches: Iterator[tuple[list[dict[str, Any]], int]]


def stream_predictions(
    model_path: str | Path,
    source: str,
    batch_size: int = 256,
    written: dict[str, Any] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> PredictionStream:
    """Predict every input of ``source`` a chunk at a time.

    Args:
        model_path: a ``.keras`` file; a ``features.keras`` beside it marks a table model,
            whose inputs are raw columns read from ``csv:PATH`` or ``parquet:PATH``.
        source: the inputs: ``images:PATH``, ``npz:PATH`` (array ``x``), ``builtin:NAME``,
            ``csv:PATH`` or ``parquet:PATH``.
        batch_size: prediction batch size.
        written: the run's metrics.json (task, class names, decision); {} for a bare model.
        chunk_rows: inputs read and predicted at a time.

    Returns:
        A stream whose batches are rows with ``id`` (file path or row number) and, by task,
        class id/name and probabilities, the anomaly score, the segment, or ``prediction``
        (dated forecasts for series). Reading errors surface while iterating.
    """
    written = written or {}
    task = task_class(written.get("task", "classification"))
    model = load_model(model_path)
    whole = task.predict_whole_source(model, Path(model_path).parent, source, batch_size, written)
    if whole is not None:
        return PredictionStream(len(whole), "rows", iter([(whole, len(whole))]))
    saved = features.load(Path(model_path).parent)
    tokenizer = saved_tokenizer(Path(model_path).parent)
    if tokenizer is not None:
        inputs = _text_inputs(source, tokenizer, chunk_rows)
    elif saved is not None:
        inputs = _table_inputs(source, *saved, chunk_rows)
    else:
        inputs = _array_inputs(source, _data_config_for(model), chunk_rows)
    expected = tuple(model.inputs[0].shape[1:])

    def batches() -> Iterator[tuple[list[dict[str, Any]], int]]:
        for chunk in inputs.chunks:
            if tuple(chunk.x.shape[1:]) != expected:
                raise DataError(
                    f"inputs from {source!r} have shape {tuple(chunk.x.shape[1:])} per "
                    f"example, the model expects {expected}; pass data shaped like the "
                    "training data."
                )
            outputs = np.asarray(model.predict(chunk.x, batch_size=batch_size, verbose=0))
            yield (
                task.prediction_rows(outputs.astype(np.float64), chunk.identifiers, written),
                (chunk.progress),
            )

    return PredictionStream(inputs.total, inputs.unit, batches())


# === Readers ===


def _data_config_for(model: keras.Model) -> DataConfig:
    """Image size and colour mode that match the model's input."""
    shape = model.inputs[0].shape
    config = DataConfig()
    if len(shape) == 4:
        config.image_size = [int(shape[1]), int(shape[2])]
        config.color_mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(int(shape[3]), "rgb")
    return config


def _array_inputs(source: str, config: DataConfig, chunk_rows: int) -> InputStream:
    """Images, npz arrays or builtin arrays, ``chunk_rows`` at a time."""
    from dltoolkit.data.sources import load_unlabelled, parse_source

    kind, location = parse_source(source)
    if kind == "images":
        return image_inputs(location, config, chunk_rows)
    if kind == "npz":
        return npz_inputs(location, chunk_rows)
    x, identifiers = load_unlabelled(source, config)  # builtin sets: small, in a package
    chunks = (
        Chunk(x[start : start + chunk_rows], identifiers[start : start + chunk_rows], 0)
        for start in range(0, len(x), chunk_rows)
    )
    return InputStream(len(x), "rows", (_with_progress(chunk) for chunk in chunks))


def _with_progress(chunk: Chunk) -> Chunk:
    chunk.progress = len(chunk.x)
    return chunk


def image_inputs(path: str, config: DataConfig, chunk_rows: int) -> InputStream:
    """Every image under ``path`` (any depth, sorted by path), decoded ``chunk_rows`` at a
    time and resized like the training images."""
    from dltoolkit.data import images

    folder = images.check_folder(path)
    files = images.image_files(folder)
    if not files:
        raise DataError(
            f"image folder {path!r} holds no {'/'.join(images.IMAGE_EXTENSIONS)} images."
        )

    def chunks() -> Iterator[Chunk]:
        for start in range(0, len(files), chunk_rows):
            part = files[start : start + chunk_rows]
            x = images.read_images(part, config)
            yield Chunk(x, [str(file) for file in part], len(part))

    return InputStream(len(files), "rows", chunks())


def npz_inputs(path: str, chunk_rows: int) -> InputStream:
    """Rows of array ``x`` of an ``.npz`` archive, read ``chunk_rows`` at a time from the
    archive member without loading the whole array (compressed archives included)."""
    from dltoolkit.data import npz

    x = npz.member(path)
    if x.shape[0] == 0:
        raise DataError(f"data source 'npz:{path}' holds no examples to predict.")
    shape, dtype = x.shape, x.dtype
    row_bytes = math.prod(shape[1:]) * dtype.itemsize

    def rows() -> Iterator[tuple[int, np.ndarray]]:
        if x.fortran_order:  # column-major: rows are not contiguous on disk, so read it whole
            with np.load(path, allow_pickle=False) as archive:
                whole = archive["x"]
            for start in range(0, shape[0], chunk_rows):
                yield start, whole[start : start + chunk_rows]
            return
        with zipfile.ZipFile(path) as archive, archive.open("x.npy") as stream:
            npz.npy_header(stream)
            for start in range(0, shape[0], chunk_rows):
                count = min(chunk_rows, shape[0] - start)
                data = stream.read(count * row_bytes)
                yield start, np.frombuffer(data, dtype).reshape((count, *shape[1:]))

    def chunks() -> Iterator[Chunk]:
        for start, values in rows():
            count = len(values)
            identifiers = [str(index) for index in range(start, start + count)]
            yield Chunk(
                values.astype(np.float32).reshape((count, *x.row_shape)), identifiers, count
            )

    return InputStream(shape[0], "rows", chunks())


def _table_inputs(source: str, space: Any, info: dict[str, Any], chunk_rows: int) -> InputStream:
    """Raw columns of a table, checked and encoded like the training data, a chunk of
    rows at a time (row numbers in errors count from the file's header as row 1)."""
    from dltoolkit.data.sources import parse_source
    from dltoolkit.data.tabular import TABLE_KINDS, first_row, table_from_frame

    kind, location = parse_source(source)
    if kind not in TABLE_KINDS:
        raise DataError(
            f"this model takes a table; pass --data csv:PATH or parquet:PATH, received {source!r}."
        )
    numeric, categorical = info["numeric"], info["categorical"]
    config = DataConfig(
        features=[*numeric, *categorical], categorical=categorical, missing="median"
    )
    total, unit, frames = _table_chunks(kind, location, chunk_rows, categorical)

    def chunks() -> Iterator[Chunk]:
        for frame, progress in _with_rows(frames, kind, location):
            frame = table_from_frame(frame, source, config, require_label=False).frame
            for column in numeric:
                missing = frame[column].isna()
                if missing.any() and column not in info["medians"]:
                    _, row = first_row(missing)
                    raise DataError(
                        f"{source!r}: column {column!r} is missing a value at row {row}; the "
                        "model was trained without missing values there, so fill it in."
                    )
            frame = frame.fillna(info["medians"])
            x = features.encode(space, frame, numeric, categorical)
            identifiers = [str(index) for index in frame.index]
            yield Chunk(x, identifiers, progress)

    return InputStream(total, unit, chunks())


def _text_inputs(source: str, tokenizer: TextTokenizer, chunk_rows: int) -> InputStream:
    """The texts of a table's ``tokenizer.column``, checked and tokenised as in training,
    a chunk of rows at a time."""
    from dltoolkit.data.sources import parse_source
    from dltoolkit.data.tabular import TABLE_KINDS

    kind, location = parse_source(source)
    if kind not in TABLE_KINDS:
        raise DataError(
            f"this model takes texts; pass --data csv:PATH or parquet:PATH with a column "
            f"{tokenizer.column!r}, received {source!r}."
        )
    column = tokenizer.column
    total, unit, frames = _table_chunks(kind, location, chunk_rows, [column])

    def chunks() -> Iterator[Chunk]:
        for frame, progress in _with_rows(frames, kind, location):
            if column not in frame.columns:
                raise DataError(
                    f"{source!r} has no column {column!r}, the text the model was trained on; "
                    f"its columns: {', '.join(map(str, frame.columns[:20]))}."
                )
            texts = checked_texts(frame[column], source, column)
            yield Chunk(tokenizer.ids(texts), [str(index) for index in frame.index], progress)

    return InputStream(total, unit, chunks())


def _with_rows(frames: Iterator[tuple[Any, int]], kind: str, location: str) -> Iterator:
    """The frames that hold rows (with their progress), or a one-line error where none does."""
    empty = True
    for frame, progress in frames:
        if not frame.empty:
            empty = False
            yield frame, progress
    if empty:
        raise DataError(f"{kind} file {location!r} has a header but no rows.")


def _table_chunks(kind: str, location: str, chunk_rows: int, text_columns: list[str]):
    """(total, unit, iterator of (frame, progress)) for a CSV or Parquet file; each frame's
    RangeIndex continues the previous one's, so rows keep their numbers in the file.
    ``text_columns`` are read as text in every chunk (a chunk's own guess could read an
    integer code as 1.0 where that chunk has a gap, and 1 elsewhere)."""
    import pandas as pd

    path = Path(location)
    if not path.is_file():
        raise DataError(f"{kind} file {location!r} does not exist; pass --data {kind}:PATH.")
    if path.stat().st_size == 0:
        raise DataError(f"{kind} file {location!r} is empty; it needs a header and rows.")
    if kind == "csv":
        size = path.stat().st_size

        def csv_frames():
            with open(path, "rb") as stream:
                done = 0
                try:
                    reader = pd.read_csv(
                        stream,
                        skipinitialspace=True,
                        chunksize=chunk_rows,
                        dtype=dict.fromkeys(text_columns, str),
                    )
                    for frame in reader:
                        position = min(stream.tell(), size)
                        yield frame, position - done
                        done = position
                except (ValueError, OSError, pd.errors.ParserError) as error:
                    raise DataError(
                        f"csv file {location!r} could not be read: {first_line(error)}"
                    ) from None
                yield pd.DataFrame(), size - done

        return size, "bytes", csv_frames()
    try:
        import pyarrow.parquet as pq
    except ImportError:
        hint = 'pip install "dltoolkit[parquet]"'
        raise DataError(f"reading parquet needs pyarrow; install it with: {hint}") from None
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as error:
        raise DataError(
            f"parquet file {location!r} could not be read: {first_line(error)}"
        ) from None

    def parquet_frames():
        from dltoolkit.data.table_chunks import parquet_chunks

        for frame in parquet_chunks(path, chunk_rows):
            yield frame, len(frame)

    return parquet.metadata.num_rows, "rows", parquet_frames()
