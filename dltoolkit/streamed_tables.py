"""Tables larger than memory: ``csv:PATH`` and ``parquet:PATH`` read in chunks, split
without a shuffle in memory, encoded once into float32 files, streamed into training.

Two passes over the file (or the folder of part files), each a chunk at a time through
:class:`dltoolkit.data.table_chunks.ChunkReader`:

1. Every chunk is checked as a table in memory is (a bad value is named with its file and
   row), its class labels collected, and a bounded uniform sample of rows kept (the
   :data:`SAMPLE_ROWS` rows of smallest hash of their row number: the same rows whatever
   the chunk size). Each row's split follows from a hash of its row number (or of
   ``data.split_key``, so that all rows of one customer fall in one split) and the seed:
   a row is test, validation or training with the configured probabilities, so the
   splits are exact in expectation (``stratified`` keeps each class's share in
   expectation too). A ``time`` split puts rows up to a cut-off in training, the next ones
   in validation, the newest in test; the cut-offs are the quantiles of the time column
   in the sample (within about 0.1% of the fractions asked for).
2. The FeatureSpace is adapted on the sample's training rows (missing numbers filled
   with their medians), then every chunk is encoded and appended to its split's file. A
   table of texts (``data.text_column``) has its vocabulary adapted on those rows instead
   and is written as token ids; the raw texts of the validation and test rows are kept
   on disk too (:class:`dltoolkit.data.text.TextLines`), for the TF-IDF baselines.

The files, the labels and the adapted FeatureSpace are kept in the cache folder under a
name digesting the files (path, size, modification time), the data settings and the
seed, so a later run or search trial on the same data and split reads them again
without the passes (``data.cache: disk``, and ``auto`` for a large table); with
``data.cache: none`` they are removed when the process ends. Labels stay in memory (8
bytes a row), as do a bounded sample of raw test rows (for permutation importance) and
of training rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dltoolkit import features
from dltoolkit.config import DataConfig
from dltoolkit.data.arrays import ArraySplits
from dltoolkit.data.rows import EncodedRows
from dltoolkit.data.sources import parse_source
from dltoolkit.data.streams import filled_cache_folder
from dltoolkit.data.table_chunks import ChunkReader, class_order, label_keys, unit_hash
from dltoolkit.data.tabular import TableSplits, checked_amounts, part_files, positive_last
from dltoolkit.data.text import TEXT_INFO, TextLines, text_column
from dltoolkit.data.tokenizers import adapted_tokenizer, required_tokenizer
from dltoolkit.errors import ConfigError, DataError, DltkError

# A csv/parquet table larger than this on disk streams under data.cache: auto.
AUTO_STREAM_BYTES = 512 << 20
# The uniform sample of rows the FeatureSpace adapts on (its training rows).
SAMPLE_ROWS = 200_000
# Raw test rows kept for permutation importance.
TEST_SAMPLE_ROWS = 20_000
SPLITS = ("train", "validation", "test")
FORMAT = 2  # of the cached files; a change makes new ones


def streams(config: DataConfig) -> bool:
    """Whether ``config.source`` is a csv/parquet table read in chunks: ``data.cache``
    ``disk`` or ``none``, or ``auto`` for files larger than :data:`AUTO_STREAM_BYTES`
    (builtin tables and ``memory`` are read whole)."""
    kind, location = parse_source(config.source)
    if kind not in ("csv", "parquet") or config.cache == "memory":
        return False
    if config.cache == "auto":
        files = part_files(kind, location)
        return sum(file.stat().st_size for file in files) > AUTO_STREAM_BYTES
    return True


def refuse(config: DataConfig, why: str) -> None:
    """One line for a setting that needs the table in memory."""
    if streams(config):
        raise ConfigError(
            f"{why} needs the table in memory; data source {config.source!r} streams "
            f"(data.cache: {config.cache}). Set data.cache=memory (if it fits) or drop it."
        )


@dataclasses.dataclass
class _Scan:
    """What the first pass learns."""

    numeric: list[str]
    categorical: list[str]
    label: str
    time_column: str | None
    labels: set[str]
    rows: int
    missing_columns: set[str]
    sample: pd.DataFrame  # raw rows with _u (split hash), _t (time), _v (sample hash)


def _scan(reader: ChunkReader) -> _Scan:
    """Pass 1: check every chunk, collect labels, keep the sample."""
    labels: set[str] = set()
    missing: set[str] = set()
    kept: list[pd.DataFrame] = []
    kept_rows = 0
    rows = 0
    for table, chunk, u, t in reader:
        if reader.classes:
            labels.update(np.unique(label_keys(chunk[table.label], table.source, table.label)))
        missing.update(column for column in table.numeric if chunk[column].isna().any())
        part = chunk[[*table.features, table.label]].copy()
        part["_u"], part["_t"] = u, t
        part["_v"] = unit_hash(np.arange(rows, rows + len(chunk), dtype=np.uint64), ~reader.seed)
        kept.append(part)
        kept_rows += len(part)
        if kept_rows > 2 * SAMPLE_ROWS:
            kept = [_smallest(pd.concat(kept, ignore_index=True), SAMPLE_ROWS)]
            kept_rows = len(kept[0])
        rows += len(chunk)
    sample = _smallest(pd.concat(kept, ignore_index=True), SAMPLE_ROWS)
    return _Scan(
        table.numeric, table.categorical, table.label, table.time_column, labels, rows,
        missing, sample,
    )  # fmt: skip


def _smallest(frame: pd.DataFrame, count: int) -> pd.DataFrame:
    if len(frame) <= count:
        return frame
    keep = np.argpartition(frame["_v"].to_numpy(), count - 1)[:count]
    return frame.iloc[np.sort(keep)].reset_index(drop=True)


class _Splitter:
    """Which split each row falls in: 0 train, 1 validation, 2 test."""

    def __init__(self, config: DataConfig, sample_times: np.ndarray):
        self.config = config
        self.cuts = None
        if config.split == "time":
            train = 1 - config.validation_split - config.test_split
            self.cuts = np.quantile(sample_times, [train, 1 - config.test_split])

    def __call__(self, u: np.ndarray, t: np.ndarray) -> np.ndarray:
        if self.cuts is not None:
            return np.searchsorted(self.cuts, t, side="left").astype(np.int8)
        test, validation = self.config.test_split, self.config.validation_split
        return np.where(u < test, 2, np.where(u < test + validation, 1, 0)).astype(np.int8)


def load_streamed_table(
    config: DataConfig, seed: int, classes: bool, saved: Path | None = None
) -> ArraySplits:
    """Read, check, split and encode a csv/parquet table in chunks (or find it encoded in
    the cache folder); the splits' inputs are :class:`EncodedRows`, the table's raw rows
    a bounded sample (``TableSplits.sampled``)."""
    folder = filled_cache_folder(
        f"table-{_digest(config, seed, classes, saved)}",
        config.cache,
        config.cache_dir,
        lambda partial: _encode(config, seed, classes, saved, partial),
        marker="meta.json",
    )
    return _cached(folder, config, saved)


def _encode(config: DataConfig, seed: int, classes: bool, saved: Path | None, folder: Path) -> None:
    """The two passes, writing the splits' files, labels, samples and meta into ``folder``."""
    started = time.perf_counter()
    column = config.text_column
    check = None if column is None else lambda chunk, source: text_column(chunk, source, column)
    reader = ChunkReader(config, seed, classes, check)
    scan = _scan(reader)
    source = config.source
    class_names: list[str] = []
    if classes:
        class_names = class_order(scan.labels)
        if len(class_names) < 2:
            raise DataError(
                f"data source {source!r}: label {scan.label!r} has one class "
                f"({class_names[0]!r}) only; classification needs at least two."
            )
        if config.positive_class is not None:
            class_names = positive_last(np.zeros(0, np.int64), class_names,
                                        config.positive_class, source)[1]  # fmt: skip
    index_of = {name: index for index, name in enumerate(class_names)}
    sample = scan.sample
    split = _Splitter(config, sample["_t"].to_numpy())
    codes = split(sample["_u"].to_numpy(), sample["_t"].to_numpy())

    def targets(frame: pd.DataFrame) -> np.ndarray:
        if classes:
            keys = label_keys(frame[scan.label], source, scan.label)
            return pd.Series(keys).map(index_of).to_numpy(np.int64)
        return pd.to_numeric(frame[scan.label]).to_numpy(np.float64)

    train_sample = sample[codes == 0]
    medians = {
        column: float(np.nanmedian(train_sample[column].to_numpy(np.float64)))
        for column in scan.numeric
        if column in scan.missing_columns
    }
    names = [*scan.numeric, *scan.categorical]
    encode = _encoder(config, scan, train_sample[names].fillna(medians), medians, saved, folder)
    test_sample = sample[codes == 2].sort_values("_v").head(TEST_SAMPLE_ROWS)
    for name, part in (("train", train_sample), ("test", test_sample)):
        part = part.reset_index(drop=True)
        part[names].fillna(medians).to_pickle(folder / f"{name}-sample.pkl")
        np.save(folder / f"y_{name}-sample.npy", targets(part))
    scanned = time.perf_counter() - started

    labels: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    # data.amount_column: money per row of the validation and test splits (8 bytes a row).
    amounts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS[1:]}
    width = 0
    text = config.text_column
    with contextlib.ExitStack() as stack:
        outputs = {name: stack.enter_context(open(folder / f"{name}.f32", "wb")) for name in SPLITS}
        raw = {
            name: stack.enter_context(TextLines.writer(folder / f"{name}-texts.jsonl"))
            for name in (SPLITS[1:] if text is not None else ())
        }
        for _, chunk, u, t in reader:
            rows = split(u, t)
            encoded = encode(chunk[names].fillna(medians))
            width = encoded.shape[1]
            for name, write in raw.items():
                write(chunk[text].to_numpy(object)[rows == SPLITS.index(name)])
            y = targets(chunk)
            money = None
            if config.amount_column is not None:
                money = checked_amounts(chunk, config.amount_column, source)
            for code, name in enumerate(SPLITS):
                chosen = rows == code
                encoded[chosen].tofile(outputs[name])
                labels[name].append(y[chosen])
                if money is not None and name in amounts:
                    amounts[name].append(money[chosen])
    y_splits = {name: np.concatenate(labels[name]) for name in SPLITS}
    _check_splits(y_splits, config, classes, scan.rows)
    for name in SPLITS:
        np.save(folder / f"y_{name}.npy", y_splits[name])
    for name, parts in amounts.items():
        if parts:
            np.save(folder / f"amount_{name}.npy", np.concatenate(parts))
    seconds = time.perf_counter() - started
    meta = {
        "format": FORMAT,
        "source": source,
        "rows": scan.rows,
        "width": width,
        "class_names": class_names,
        "numeric": scan.numeric,
        "categorical": scan.categorical,
        "medians": medians,
        "text_rows": {name: len(y_splits[name]) for name in SPLITS[1:]} if text else None,
        "seconds": {"scan": round(scanned, 2), "total": round(seconds, 2)},
        "rows_per_second": round(2 * scan.rows / seconds),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(
        f"read {scan.rows:,} rows of {source} twice in {seconds:.1f} s "
        f"({2 * scan.rows / seconds:,.0f} rows/s), encoded into {folder}",
        file=sys.stderr,
    )


def _encoder(
    config: DataConfig,
    scan: _Scan,
    train_sample: pd.DataFrame,
    medians: dict[str, float],
    saved: Path | None,
    folder: Path,
) -> Callable[[pd.DataFrame], np.ndarray]:
    """What turns a chunk's feature columns into rows of numbers, adapted on the sample's
    training rows (or the one saved in run directory ``saved``) and saved into ``folder``:
    the FeatureSpace, or for a table of texts its tokenizer (rows of token ids)."""
    text = config.text_column
    if text is not None:
        if saved is None:
            tokenizer = adapted_tokenizer(config, train_sample[text].to_numpy(object))
        else:
            tokenizer = required_tokenizer(saved)
        tokenizer.save(folder)
        return lambda chunk: tokenizer.ids(chunk[text].to_numpy(object)).astype(np.float32)
    if saved is None:
        space = features.feature_space(
            train_sample, scan.numeric, scan.categorical, config.log_transform
        )
    else:
        space = features.load(saved)[0]
    features.save(space, folder, scan.numeric, scan.categorical, medians)
    return lambda chunk: features.encode(space, chunk, scan.numeric, scan.categorical)


def _check_splits(y: dict[str, np.ndarray], config: DataConfig, classes: bool, rows: int) -> None:
    if min(len(values) for values in y.values()) < 1:
        raise DataError(
            f"data source {config.source!r} has {rows} rows, too few for validation_split="
            f"{config.validation_split} and test_split={config.test_split}; use more data."
        )
    if classes and not np.any(y["train"] != y["train"][0]):  # one class (no sorted copy)
        raise DataError(
            f"data source {config.source!r}: the training split holds one class only; "
            "use a stratified split or more data."
        )


def _cached(folder: Path, config: DataConfig, saved: Path | None) -> ArraySplits:
    """The splits encoded in ``folder``."""
    meta = json.loads((folder / "meta.json").read_text())
    space = tokenizer = None
    if config.text_column is not None:
        tokenizer = required_tokenizer(saved if saved is not None else folder)
    else:
        space = features.load(saved if saved is not None else folder)[0]  # type: ignore[index]
    width = int(meta["width"])
    x = {name: EncodedRows.of_file(folder / f"{name}.f32", width) for name in SPLITS}
    y = {name: np.load(folder / f"y_{name}.npy") for name in SPLITS}
    table = TableSplits(
        train=pd.read_pickle(folder / "train-sample.pkl"),
        validation=pd.DataFrame(columns=[*meta["numeric"], *meta["categorical"]]),
        test=pd.read_pickle(folder / "test-sample.pkl"),
        y_train=np.load(folder / "y_train-sample.npy"),
        y_val=np.zeros(0, y["validation"].dtype),
        y_test=np.load(folder / "y_test-sample.npy"),
        numeric=meta["numeric"],
        categorical=meta["categorical"],
        class_names=meta["class_names"],
        source=config.source,
        medians=meta["medians"],
        sampled=True,
    )
    if config.amount_column is not None:
        table.amounts = {
            name: np.load(folder / f"amount_{name}.npy") for name in ("validation", "test")
        }
    if meta["text_rows"]:
        table.texts = {
            name: TextLines(folder / f"{name}-texts.jsonl", count)
            for name, count in meta["text_rows"].items()
        }
    return ArraySplits(
        x_train=x["train"], y_train=y["train"], x_val=x["validation"], y_val=y["validation"],
        x_test=x["test"], y_test=y["test"], class_names=meta["class_names"],
        source=config.source, table=table, feature_space=space, text=tokenizer,
    )  # fmt: skip


def _folder_stamp(folder: Path) -> list[Any]:
    """A preset folder's resolved path and its files' sizes and modification times (a
    preset saved again in the same place encodes anew); nothing for a preset name."""
    if not folder.is_dir():
        return []
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    stamps = [[str(path.relative_to(folder)), path.stat().st_size, path.stat().st_mtime_ns]
              for path in files]  # fmt: skip
    return [str(folder.resolve()), stamps]


def _digest(config: DataConfig, seed: int, classes: bool, saved: Path | None) -> str:
    """Of the files (resolved path, size, modification time), the settings that shape
    the splits and their encoding, the seed, and a saved FeatureSpace."""
    kind, location = parse_source(config.source)
    digest = hashlib.sha256()
    for file in part_files(kind, location):
        stat = file.resolve().stat()
        digest.update(f"{file.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    settings = {
        key: getattr(config, key)
        for key in (
            "label",
            "features",
            "categorical",
            "time_column",
            "split",
            "missing",
            "validation_split",
            "test_split",
            "positive_class",
            "log_transform",
            "split_key",
            "amount_column",
            "text_column",
            "max_tokens",
            "vocabulary_size",
            "tokenizer",
        )
    }
    settings.update(seed=seed, classes=classes, format=FORMAT)
    if saved is not None:
        file = Path(saved) / (TEXT_INFO if config.text_column else features.FEATURES_FILE)
        if not file.is_file():
            raise DltkError(
                f"{str(saved)!r} holds no {file.name} (what the model's inputs were encoded "
                "with); train the run again."
            )
        stat = file.stat()
        settings["saved"] = [str(Path(saved).resolve()), stat.st_size, stat.st_mtime_ns]
    if config.text_column and config.tokenizer.startswith("hub:"):
        settings["preset"] = _folder_stamp(Path(config.tokenizer.removeprefix("hub:")))
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]
