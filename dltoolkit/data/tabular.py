"""Tables: ``csv:PATH``, ``parquet:PATH`` and the tabular ``builtin:`` datasets.

A table is read with pandas, its columns are checked (label and features present, numeric
columns really numeric, no NaN or infinity unless ``data.missing: median``), and it is
split into train/validation/test: stratified by label, at random, or in time order. The
features stay raw, named columns here; :mod:`dltoolkit.features` turns them into the
model's input with preprocessing adapted on the training split only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dltoolkit.config import DataConfig
from dltoolkit.data.arrays import labels_to_indices
from dltoolkit.data.builtin_tables import BUILTIN_TABLES
from dltoolkit.errors import DataError, did_you_mean, first_line

TABLE_KINDS = ("csv", "parquet")


@dataclass
class Table:
    """A raw table and the role of its columns."""

    frame: pd.DataFrame
    label: str | None
    numeric: list[str]
    categorical: list[str]
    source: str
    time_column: str | None = None

    @property
    def features(self) -> list[str]:
        """Input columns, numeric first."""
        return [*self.numeric, *self.categorical]


@dataclass
class TableSplits:
    """Train/validation/test frames of one table; labels are ``y_*`` arrays."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    numeric: list[str]
    categorical: list[str]
    class_names: list[str]
    source: str
    medians: dict[str, float] = field(default_factory=dict)
    # True where the frames are bounded samples of the splits (a table streamed from disk,
    # whose y_* are then the samples' labels).
    sampled: bool = False
    # data.amount_column's values of the validation and test rows (money per row).
    amounts: dict[str, np.ndarray] | None = None
    # The raw values of further columns in the test rows (columns audited for fairness).
    kept_test: pd.DataFrame | None = None
    # A streamed table of texts: the raw texts of all validation and test rows, on disk
    # ("validation", "test": dltoolkit.data.text.TextLines; the frames hold samples).
    texts: dict[str, Any] | None = None

    def sizes(self) -> dict[str, int]:
        """Number of rows per split."""
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


# === Reading ===


def part_files(kind: str, location: str) -> list[Path]:
    """The file ``location``, or the ``*.csv`` / ``*.parquet`` part files of a folder in
    name order; a one-line error where there is none."""
    path = Path(location)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == f".{kind}" and p.is_file())
        if not files:
            raise DataError(
                f"{kind} folder {location!r} holds no *.{kind} part files; pass a file or "
                f"a folder of them (--data {kind}:PATH)."
            )
        return files
    if not path.is_file():
        raise DataError(f"{kind} file {location!r} does not exist; pass --data {kind}:PATH.")
    return [path]


def read_frame(kind: str, location: str) -> pd.DataFrame:
    """Read ``csv:PATH`` or ``parquet:PATH`` (a file, or a folder of part files, joined in
    name order) into a DataFrame, one-line errors on failure."""
    files = part_files(kind, location)
    if len(files) > 1:
        return pd.concat([read_frame(kind, str(file)) for file in files], ignore_index=True)
    path = files[0]
    if path.stat().st_size == 0:
        raise DataError(f"{kind} file {str(path)!r} is empty; it needs a header and rows.")
    try:
        if kind == "csv":
            frame = pd.read_csv(path, skipinitialspace=True)
        else:
            try:
                frame = pd.read_parquet(path)
            except ImportError:
                hint = 'pip install "dltoolkit[parquet]"'
                raise DataError(f"reading parquet needs pyarrow; install it with: {hint}") from None
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise DataError(
            f"{kind} file {location!r} could not be read: {first_line(error)}"
        ) from None
    if frame.empty:
        raise DataError(f"{kind} file {location!r} has a header but no rows.")
    return frame


def read_table(kind: str, location: str) -> tuple[pd.DataFrame, dict]:
    """A table's raw frame, and a builtin table's defaults (its label, time and split
    columns; none for a file)."""
    if kind == "builtin":
        return BUILTIN_TABLES[location]()
    return read_frame(kind, location), {}


def load_table(kind: str, location: str, config: DataConfig, require_label: bool = True) -> Table:
    """Read a table and resolve its label, numeric and categorical columns."""
    frame, defaults = read_table(kind, location)
    return table_from_frame(frame, f"{kind}:{location}", config, require_label, defaults)


def table_from_frame(
    frame: pd.DataFrame,
    source: str,
    config: DataConfig,
    require_label: bool = True,
    defaults: dict | None = None,
) -> Table:
    """Check and type the columns of an already read ``frame`` (a whole table, or one chunk
    of a large file whose index carries on from the previous chunk's rows)."""
    defaults = defaults or {}
    frame.columns = [str(column) for column in frame.columns]
    label = config.label or defaults.get("label")
    columns = list(frame.columns)
    if require_label:
        if label is None:
            raise DataError(
                f"data source {source!r} is a table but data.label is not set; "
                f"name the target column (one of {', '.join(columns[:20])})."
            )
        _require_columns(source, [label], columns, "data.label")
        if frame[label].isna().any():
            _, row = first_row(frame[label].isna())
            raise DataError(
                f"data source {source!r}: label column {label!r} is empty at row {row} "
                "(counting the header as row 1); every row needs a label."
            )
    time_column = config.time_column or defaults.get("time_column")
    if time_column is not None:
        _require_columns(source, [time_column], columns, "data.time_column")
    if config.split_column is not None:
        _require_columns(source, [config.split_column], columns, "data.split_column")
    # A builtin table's own split column ("split") is never a feature.
    excluded = {label, time_column, config.split_column, defaults.get("split_column")}
    features = (
        config.features
        or defaults.get("features")
        or [column for column in columns if column not in excluded]
    )
    _require_columns(source, features, columns, "data.features")
    if label in features:
        raise DataError(
            f"data source {source!r}: the label {label!r} is also listed in data.features; "
            "remove it from the features."
        )
    if not features:
        raise DataError(f"data source {source!r} has no feature columns besides the label.")
    categorical = config.categorical
    if categorical is None:
        categorical = [c for c in features if not _looks_numeric(frame[c])]
    else:
        _require_columns(source, categorical, features, "data.categorical")
    numeric = [column for column in features if column not in categorical]
    for column in numeric:
        frame[column] = _numeric_column(frame[column], column, source, config.missing)
    _require_columns(source, config.log_transform, numeric, "data.log_transform (numeric)")
    for column in config.log_transform:
        negative = frame[column] < 0
        if negative.any():
            index, row = first_row(negative)
            raise DataError(
                f"data source {source!r}: column {column!r} is in data.log_transform but row "
                f"{row} holds {frame[column].iloc[index]} (counting the header as row 1); "
                "log(1 + x) needs values >= 0, so remove it from data.log_transform."
            )
    for column in categorical:
        # Categories are strings (integer codes too); a missing value is its own category.
        frame[column] = frame[column].map(lambda value: "" if pd.isna(value) else str(value))
    return Table(frame, label, numeric, list(categorical), source, time_column)


def first_row(mask: np.ndarray | pd.Series) -> tuple[int, int]:
    """Position of the first True in ``mask`` and its row number in the file (the header
    being row 1), for error messages. A Series counts from its RangeIndex's start, so a
    chunk read from the middle of a file names rows of the file."""
    index = int(np.flatnonzero(np.asarray(mask))[0])
    start = mask.index.start if isinstance(getattr(mask, "index", None), pd.RangeIndex) else 0
    return index, start + index + 2


def _looks_numeric(values: pd.Series) -> bool:
    """Numbers, or text of which at least 95% parses as numbers: a stray bad value in a
    numeric column is then reported with its row instead of turning the column into
    categories."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return True
    present = values.dropna()
    if present.empty:
        return False
    return bool(pd.to_numeric(present, errors="coerce").notna().mean() >= 0.95)


def _require_columns(source: str, wanted: list[str], columns: list[str], key: str) -> None:
    for column in wanted:
        if column not in columns:
            more = " ..." if len(columns) > 30 else ""
            raise DataError(
                f"data source {source!r} has no column {column!r} ({key})"
                f"{did_you_mean(column, columns)}; its columns are: "
                f"{', '.join(columns[:30])}{more}."
            )


def _numeric_column(values: pd.Series, column: str, source: str, missing: str) -> pd.Series:
    """``values`` as float64; a non-number is named with its row, NaN/inf per ``missing``."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() & values.notna()
    if bad.any():
        index, row = first_row(bad)
        raise DataError(
            f"data source {source!r}: column {column!r} is numeric but row {row} holds "
            f"{values.iloc[index]!r} (counting the header as row 1); fix the value, or list the "
            "column in data.categorical."
        )
    numbers = numbers.astype(np.float64)
    infinite = numbers.isin([np.inf, -np.inf])
    if infinite.any():
        index, row = first_row(infinite)
        raise DataError(
            f"data source {source!r}: column {column!r} holds {numbers.iloc[index]} at row "
            f"{row}; infinite values are not allowed, replace them."
        )
    if missing == "error" and numbers.isna().any():
        _, row = first_row(numbers.isna())
        raise DataError(
            f"data source {source!r}: column {column!r} is missing a value at row {row} "
            f"({int(numbers.isna().sum())} missing in all); set data.missing=median to fill "
            "missing numbers with the training median, or clean the file."
        )
    return numbers


# === Splitting ===


def split_table(
    table: Table,
    config: DataConfig,
    seed: int,
    classes: bool,
    fold: tuple[int, int] | None = None,
    keep: list[str] | None = None,
) -> TableSplits:
    """Split a labelled table into train/validation/test as ``config.split`` says.

    Args:
        table: the table, label column included.
        config: the data section (fractions, split kind).
        seed: seed of the random and stratified splits.
        classes: True when the label is a class (labels become indices into class names).
        fold: ``(index, count)`` for cross-validation: the test split is fold ``index`` of
            a (stratified) K-fold partition, and validation is drawn from the rest.
        keep: further columns whose raw values of the test rows are kept (``kept_test``).
    """
    from sklearn.model_selection import train_test_split

    frame, source = table.frame, table.source
    class_names: list[str] = []
    if table.label is None:  # clustering: no labels
        y = np.zeros(len(frame), np.int64)
    elif classes:
        labels = frame[table.label]
        y, class_names = _class_indices(labels, source, table.label)
        if config.positive_class is not None:
            y, class_names = positive_last(y, class_names, config.positive_class, source)
    else:
        labels = frame[table.label]
        y = pd.to_numeric(labels, errors="coerce").to_numpy(np.float64)
        if not np.all(np.isfinite(y)):
            index, row = first_row(~np.isfinite(y))
            raise DataError(
                f"data source {source!r}: label {table.label!r} at row {row} is "
                f"{labels.iloc[index]!r}; regression needs a finite number in every row."
            )
    indices = np.arange(len(frame))
    n_test = round(len(frame) * config.test_split)
    n_val = round(len(frame) * config.validation_split)
    if min(n_test, n_val, len(frame) - n_test - n_val) < 1:
        raise DataError(
            f"data source {source!r} has {len(frame)} rows, too few for validation_split="
            f"{config.validation_split} and test_split={config.test_split}; use more data."
        )
    if config.split == "time":
        if table.time_column is not None:
            order = np.argsort(frame[table.time_column].to_numpy(), kind="stable")
        else:
            order = indices
        train = order[: len(order) - n_test - n_val]
        validation = order[len(train) : len(order) - n_test]
        test = order[len(order) - n_test :]
    else:
        stratify = y if config.split == "stratified" else None
        if stratify is not None:
            counts = np.bincount(y, minlength=len(class_names))
            if counts.min() < 3:
                rare = class_names[int(counts.argmin())]
                raise DataError(
                    f"data source {source!r}: class {rare!r} has {int(counts.min())} row(s); "
                    "each class needs at least 3 for a stratified split (or set data.split=random)."
                )
        if config.split_column is not None:
            rest, test = given_test_rows(frame[config.split_column], source, config.split_column)
        elif fold is None:
            rest, test = train_test_split(
                indices, test_size=n_test, stratify=stratify, random_state=seed
            )
        else:
            rest, test = _fold(indices, stratify, fold, seed)
        try:
            train, validation = train_test_split(
                rest,
                test_size=n_val,
                stratify=None if stratify is None else y[rest],
                random_state=seed,
            )
        except ValueError as error:
            raise DataError(
                f"data source {source!r}: {n_val} validation rows cannot be drawn from the "
                f"{len(rest)} rows left for training ({first_line(error)}); lower "
                "data.validation_split or use more data."
            ) from None
    if classes and table.label is not None and len(np.unique(y[train])) < 2:
        raise DataError(
            f"data source {source!r}: the training split holds one class only; "
            "use a stratified split or more data."
        )
    medians = {
        column: float(np.nanmedian(frame[column].to_numpy()[train]))
        for column in table.numeric
        if frame[column].isna().any()
    }
    features = table.features
    kept_test = None
    if keep:
        _require_columns(source, keep, list(frame.columns), "report.fairness_groups")
        kept_test = frame.iloc[test][keep].reset_index(drop=True)
    amounts = None
    if config.amount_column is not None:
        values = checked_amounts(frame, config.amount_column, source)
        amounts = {"validation": values[validation], "test": values[test]}

    def rows(selection: np.ndarray) -> pd.DataFrame:
        part = frame.iloc[selection][features].reset_index(drop=True)
        return part.fillna(medians) if medians else part

    return TableSplits(
        train=rows(train),
        validation=rows(validation),
        test=rows(test),
        y_train=y[train],
        y_val=y[validation],
        y_test=y[test],
        numeric=table.numeric,
        categorical=table.categorical,
        class_names=class_names,
        source=source,
        medians=medians,
        amounts=amounts,
        kept_test=kept_test,
    )


def fold_validation_labels(config: DataConfig, seed: int, classes: bool) -> list[np.ndarray]:
    """The validation labels of every cross-validation fold of ``config.folds`` (none
    without folds), so that what is fitted on them can be checked before any training."""
    if not config.folds:
        return []
    kind, location = config.source.split(":", 1)
    table = load_table(kind, location, config)
    return [
        split_table(table, config, seed, classes, (index, config.folds)).y_val
        for index in range(config.folds)
    ]


def checked_amounts(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    """The amount column (money per row) as float64: present, and a finite number >= 0 in
    every row, or a one-line error naming the first bad row."""
    _require_columns(source, [column], list(frame.columns), "data.amount_column")
    values = frame[column]
    numbers = pd.to_numeric(values, errors="coerce")
    for bad, what in (
        (numbers.isna(), "not a number"),
        (~np.isfinite(numbers.fillna(0)), "not finite"),
        (numbers < 0, "negative"),
    ):
        if bad.any():
            index, row = first_row(bad)
            raise DataError(
                f"data source {source!r}: data.amount_column {column!r} holds "
                f"{values.iloc[index]!r} at row {row} (counting the header as row 1), which "
                f"is {what}; amounts must be numbers >= 0: fix the row or choose another column."
            )
    return numbers.to_numpy(np.float64)


def given_test_rows(values: pd.Series, source: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(rest, test) row positions of a table whose ``column`` says ``train`` or ``test``
    in every row (a dataset's published split), or a one-line error naming a bad row."""
    marks = values.astype(str).str.strip().str.lower()
    bad = ~marks.isin(("train", "test"))
    if bad.any():
        index, row = first_row(bad)
        raise DataError(
            f"data source {source!r}: data.split_column {column!r} holds {values.iloc[index]!r} "
            f"at row {row} (counting the header as row 1); every row must say 'train' or "
            "'test'. Fix the row or unset data.split_column."
        )
    test = marks.to_numpy() == "test"
    if test.all() or not test.any():
        only = "test" if test.all() else "train"
        raise DataError(
            f"data source {source!r}: every row of data.split_column {column!r} says {only!r}; "
            "it needs both 'train' and 'test' rows."
        )
    return np.flatnonzero(~test), np.flatnonzero(test)


def _fold(
    indices: np.ndarray, stratify: np.ndarray | None, fold: tuple[int, int], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rest, test) of fold ``fold[0]`` of a shuffled (stratified) K-fold partition."""
    from sklearn.model_selection import KFold, StratifiedKFold

    index, count = fold
    if stratify is None:
        folds = KFold(count, shuffle=True, random_state=seed).split(indices)
    else:
        folds = StratifiedKFold(count, shuffle=True, random_state=seed).split(indices, stratify)
    rest, test = list(folds)[index]
    return indices[rest], indices[test]


def positive_last(
    y: np.ndarray, class_names: list[str], positive: str, source: str
) -> tuple[np.ndarray, list[str]]:
    """Make ``positive`` class 1 of a two-class label."""
    if len(class_names) != 2 or str(positive) not in class_names:
        raise DataError(
            f"data.positive_class {positive!r} must be one of the label's two classes; data "
            f"source {source!r} has classes {class_names}."
        )
    if class_names[1] == str(positive):
        return y, class_names
    return 1 - y, [class_names[1], class_names[0]]


def _class_indices(labels: pd.Series, source: str, column: str) -> tuple[np.ndarray, list[str]]:
    values = labels.to_numpy()
    text = values.dtype == object  # strings, possibly mixed with numbers
    y, class_names = labels_to_indices(values.astype(str) if text else values, source)
    if len(class_names) < 2:
        raise DataError(
            f"data source {source!r}: label {column!r} has one class ({class_names[0]!r}) only; "
            "classification needs at least two."
        )
    return y, class_names
