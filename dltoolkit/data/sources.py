"""Parsing ``kind:location`` data sources and splitting them into train/validation/test."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dltoolkit.config import DataConfig
from dltoolkit.data import builtin, images, npz, tfds_source
from dltoolkit.data.arrays import ArraySplits, LabelledArrays
from dltoolkit.data.streams import is_streamed
from dltoolkit.data.tabular import BUILTIN_TABLES, TABLE_KINDS
from dltoolkit.errors import DataError, did_you_mean

Loader = Callable[[str, DataConfig], LabelledArrays]


def _loaders() -> dict[str, Loader]:
    # Imported here so that each source's dependencies load only when it is used.
    return {
        "builtin": builtin.load,
        "images": images.load,
        "npz": npz.load,
        "tfds": tfds_source.load,
    }


SOURCE_KINDS = ("builtin", "images", "npz", "tfds", "csv", "parquet")


def parse_source(source: str) -> tuple[str, str]:
    """Split ``kind:location`` and check the kind."""
    kind, sep, location = source.partition(":")
    if not sep or not location:
        raise DataError(
            f"data source {source!r} is not of the form KIND:LOCATION; expected one of "
            "builtin:NAME, images:PATH, npz:PATH, tfds:NAME, csv:PATH, parquet:PATH "
            "(e.g. --data builtin:digits)."
        )
    if kind not in SOURCE_KINDS:
        raise DataError(
            f"unknown data source kind {kind!r} in {source!r}{did_you_mean(kind, SOURCE_KINDS)}; "
            f"expected one of {', '.join(SOURCE_KINDS)}."
        )
    return kind, location


def is_table(source: str) -> bool:
    """Whether ``source`` is tabular: csv, parquet or a builtin table."""
    kind, location = parse_source(source)
    return kind in TABLE_KINDS or (kind == "builtin" and location in BUILTIN_TABLES)


def load_labelled(config: DataConfig) -> LabelledArrays:
    """Load every labelled example of ``config.source``."""
    kind, location = parse_source(config.source)
    data = _loaders()[kind](location, config)
    _check_labelled(data, config.source)
    return data


def load_unlabelled(source: str, config: DataConfig) -> tuple[np.ndarray, list[str]]:
    """Load inputs for prediction: (x, identifiers). Labels, if any, are ignored.

    ``images:PATH`` may be a folder of class subfolders or a flat folder of images.
    """
    kind, location = parse_source(source)
    if kind == "images":
        from dltoolkit.data import images

        return images.load_unlabelled(location, config)
    if kind == "npz":
        from dltoolkit.data import npz

        data = npz.load(location, config, require_labels=False)
    else:
        data = _loaders()[kind](location, config)
    if len(data.x) == 0:
        raise DataError(f"data source {source!r} holds no examples to predict.")
    identifiers = data.file_paths or [str(index) for index in range(len(data.x))]
    return data.x, identifiers


def _check_labelled(data: LabelledArrays, source: str) -> None:
    if len(data.x) == 0:
        raise DataError(f"data source {source!r} holds no examples.")
    if len(data.x) != len(data.y):
        raise DataError(
            f"data source {source!r}: {len(data.x)} inputs but {len(data.y)} labels; "
            "they must have the same length."
        )
    if not is_streamed(data.x) and not np.all(np.isfinite(data.x)):  # streamed: checked
        raise DataError(
            f"data source {source!r} contains NaN or infinite input values; "
            "clean or impute them first."
        )
    if len(data.class_names) < 2:
        raise DataError(
            f"data source {source!r} has {len(data.class_names)} class; "
            "classification needs at least 2."
        )


def stratified_rows(
    y: np.ndarray,
    class_names: list[str],
    validation_split: float,
    test_split: float,
    seed: int,
    source: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic stratified train/validation/test row indices from the labels alone
    (so a folder of files is split on its list of files, before any is decoded)."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(y))
    counts = np.bincount(y, minlength=len(class_names))
    if counts.min() < 3:
        rare = class_names[int(counts.argmin())]
        raise DataError(
            f"data source {source!r}: class {rare!r} has {int(counts.min())} example(s); "
            "each class needs at least 3 for a stratified train/validation/test split."
        )
    try:
        rest, test = train_test_split(indices, test_size=test_split, stratify=y, random_state=seed)
        relative_validation = validation_split / (1.0 - test_split)
        train, validation = train_test_split(
            rest, test_size=relative_validation, stratify=y[rest], random_state=seed
        )
    except ValueError as error:
        raise DataError(
            f"data source {source!r} cannot be split with validation_split={validation_split} "
            f"and test_split={test_split} ({error}); use more data or larger fractions."
        ) from None
    return train, validation, test


def split_stratified(
    data: LabelledArrays, validation_split: float, test_split: float, seed: int, source: str
) -> ArraySplits:
    """Deterministic stratified split into train/validation/test fractions."""
    train, validation, test = stratified_rows(
        data.y, data.class_names, validation_split, test_split, seed, source
    )
    return ArraySplits(
        x_train=data.x[train],
        y_train=data.y[train],
        x_val=data.x[validation],
        y_val=data.y[validation],
        x_test=data.x[test],
        y_test=data.y[test],
        class_names=data.class_names,
        source=source,
    )


def split_image_folder(config: DataConfig, seed: int) -> ArraySplits:
    """An ``images:PATH`` folder split on its list of files; each split streams its images
    (:class:`dltoolkit.data.streams.ImageFiles`)."""
    _, location = parse_source(config.source)
    folder = images.index_folder(location, config)
    if len(folder.class_names) < 2:
        raise DataError(
            f"data source {config.source!r} has {len(folder.class_names)} class; "
            "classification needs at least 2."
        )
    train, validation, test = stratified_rows(
        folder.labels,
        folder.class_names,
        config.validation_split,
        config.test_split,
        seed,
        config.source,
    )
    return ArraySplits(
        x_train=folder.examples(config, train),
        y_train=folder.labels[train],
        x_val=folder.examples(config, validation),
        y_val=folder.labels[validation],
        x_test=folder.examples(config, test),
        y_test=folder.labels[test],
        class_names=folder.class_names,
        source=config.source,
    )


def load_dataset(config: DataConfig, seed: int) -> ArraySplits:
    """Load ``config.source`` and split it deterministically from ``seed``. Image folders
    stream, as do large npz archives and TFDS datasets (:mod:`dltoolkit.data.npz`,
    :mod:`dltoolkit.data.tfds_source`); the other sources are arrays in memory."""
    kind, location = parse_source(config.source)
    if kind == "images":
        return split_image_folder(config, seed)
    streaming = {"npz": npz, "tfds": tfds_source}.get(kind)
    if streaming is not None and streaming.streams(location, config):
        data = streaming.load_streamed(location, config)
        _check_labelled(data, config.source)
    else:
        data = load_labelled(config)
    return split_stratified(data, config.validation_split, config.test_split, seed, config.source)
