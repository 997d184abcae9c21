"""Dated price series: ``csv:PATH``, ``parquet:PATH`` and ``builtin:sp500`` / ``nasdaq`` /
``msft`` cut into windows for the ``forecasting`` and ``signal`` tasks.

A series is read, its dates checked (parsed, strictly increasing, no gap longer than
``data.series.max_gap_days``) and its price, high, low and volume columns checked (numbers,
no missing values, prices above zero). Windows of raw rows are cut with
``keras.utils.timeseries_dataset_from_array``; the window ending at day t is paired with a
target from days after t only (the log return to t + horizon, the realised variance over
t+1 .. t+horizon, or the next day's direction). Splits are in time order, by the days a
target covers: training targets end before the first validation target day, validation
targets before the first test target day, so no day's outcome is both learned and tested.
Walk-forward folds (``data.folds``) cut the test span into consecutive blocks, each tested
by a model trained on everything before it (an expanding window).
"""

from __future__ import annotations

import gzip
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dltoolkit.config import DataConfig
from dltoolkit.data.builtin_tables import _package_file
from dltoolkit.data.sources import ArraySplits, parse_source
from dltoolkit.data.tabular import _numeric_column, _require_columns, read_frame
from dltoolkit.errors import DataError
from dltoolkit.layers.series import parse_feature, required_roles, warmup_days

# Daily prices 1999-01-04 .. 2018-12-31 (5,031 rows) as the arch package ships them.
_ARCH_COLUMNS = {
    "time_column": "Date",
    "price_column": "Adj Close",
    "high_column": "High",
    "low_column": "Low",
    "volume_column": "Volume",
}
BUILTIN_SERIES = {
    "sp500": ("arch", "data/sp500/sp500.csv.gz", _ARCH_COLUMNS),
    "nasdaq": ("arch", "data/nasdaq/nasdaq.csv.gz", _ARCH_COLUMNS),
    # Microsoft daily 1986-03-13 .. 2017-11-10 (7,983 rows) as pmdarima ships it.
    "msft": (
        "pmdarima",
        "datasets/data/msft.tar.gz",
        {**_ARCH_COLUMNS, "price_column": "Close"},
    ),
}


@dataclass
class Series:
    """A checked daily series: dates and raw columns in role order (price first)."""

    dates: np.ndarray  # datetime64[ns], strictly increasing
    raw: np.ndarray  # (days, len(roles)) float64
    roles: list[str]
    column_names: dict[str, str]  # role -> column in the source
    source: str

    @property
    def log_price(self) -> np.ndarray:
        """Natural log of the price column."""
        return np.log(self.raw[:, 0])


@dataclass
class SeriesSplits(ArraySplits):
    """Windows and targets split in time order, with what locates them in the series.

    ``ends_*`` hold, per window, the position of its last day (day t) in the series.
    """

    series: Series | None = None
    ends_train: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ends_val: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ends_test: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lookback: int = 0
    horizon: int = 1
    target: str = "return"
    features: list[str] = field(default_factory=list)

    def span(self, name: str) -> tuple[str, str]:
        """First and last target day of split ``name`` (train, validation, test) as dates."""
        ends = {"train": self.ends_train, "validation": self.ends_val, "test": self.ends_test}
        days = self.series.dates
        first, last = ends[name][0] + 1, ends[name][-1] + self.horizon
        return str(days[first])[:10], str(days[last])[:10]


def is_series_builtin(location: str) -> bool:
    """Whether ``builtin:location`` is a price series."""
    return location in BUILTIN_SERIES


def load_series(config: DataConfig) -> Series:
    """Read and check the configured series; one-line DataErrors for bad input."""
    kind, location = parse_source(config.source)
    source = config.source
    defaults: dict[str, str] = {}
    if kind == "builtin":
        if location not in BUILTIN_SERIES:
            raise DataError(
                f"unknown builtin series {location!r}; expected one of "
                f"{', '.join(BUILTIN_SERIES)}, or csv:PATH / parquet:PATH."
            )
        package, relative, defaults = BUILTIN_SERIES[location]
        frame = _packaged_csv(_package_file(package, relative))
    elif kind in ("csv", "parquet"):
        frame = read_frame(kind, location)
    else:
        raise DataError(
            f"data source {source!r} is not a price series; expected csv:PATH, parquet:PATH "
            f"or builtin:{' / builtin:'.join(BUILTIN_SERIES)}."
        )
    frame.columns = [str(column) for column in frame.columns]
    series = config.series
    for name in series.features:
        try:
            parse_feature(name)
        except ValueError as error:
            raise DataError(f"data.series.features: {error}") from None
    time_column = config.time_column or defaults.get("time_column")
    if time_column is None:
        raise DataError(
            f"data source {source!r}: data.time_column is not set; name the date column "
            f"(one of {', '.join(list(frame.columns)[:20])})."
        )
    _require_columns(source, [time_column], list(frame.columns), "data.time_column")
    roles = required_roles(series.features)
    names: dict[str, str] = {}
    for role in roles:
        key = f"{role}_column"
        column = getattr(series, key) or defaults.get(key)
        if column is None:
            raise DataError(
                f"data source {source!r}: data.series.{key} is not set but the features "
                f"{series.features} need a {role} column; name it."
            )
        _require_columns(source, [column], list(frame.columns), f"data.series.{key}")
        names[role] = column
    dates = _checked_dates(frame[time_column], time_column, source, series.max_gap_days)
    raw = np.column_stack(
        [_numeric_column(frame[names[role]], names[role], source, "error") for role in roles]
    )
    for position, role in enumerate(roles):
        values = raw[:, position]
        bad = values < 0 if role == "volume" else values <= 0
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            expected = "volumes must be >= 0" if role == "volume" else "prices must be > 0"
            raise DataError(
                f"data source {source!r}: column {names[role]!r} holds {values[index]} at row "
                f"{index + 2} (counting the header as row 1); {expected}."
            )
    return Series(dates, raw, roles, names, source)


def _packaged_csv(path: Path) -> pd.DataFrame:
    """A gzipped CSV, or the one CSV inside a ``.tar.gz``, shipped inside a package."""
    if path.name.endswith(".tar.gz"):
        with tarfile.open(path, "r:gz") as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith(".csv"))
            return pd.read_csv(archive.extractfile(member))
    with gzip.open(path, "rt") as stream:
        return pd.read_csv(stream)


def _checked_dates(values: pd.Series, column: str, source: str, max_gap_days: int) -> np.ndarray:
    """Parsed dates; unparseable, repeated, unsorted dates and long gaps are errors."""
    dates = pd.to_datetime(values, errors="coerce", format="mixed")
    if dates.isna().any():
        index = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise DataError(
            f"data source {source!r}: time column {column!r} holds {values.iloc[index]!r} at "
            f"row {index + 2} (counting the header as row 1), which is not a date."
        )
    days = dates.to_numpy(dtype="datetime64[ns]")
    steps = np.diff(days)
    if len(steps) and (steps <= np.timedelta64(0)).any():
        index = int(np.flatnonzero(steps <= np.timedelta64(0))[0])
        what = "repeats" if steps[index] == np.timedelta64(0) else "comes before"
        raise DataError(
            f"data source {source!r}: date {str(days[index + 1])[:10]} at row {index + 3} "
            f"{what} the row above it ({str(days[index])[:10]}); a series needs one row per "
            "date in increasing order: sort the file and drop duplicate dates."
        )
    gap = np.timedelta64(max_gap_days, "D")
    if len(steps) and (steps > gap).any():
        index = int(np.flatnonzero(steps > gap)[0])
        length = int(steps[index] / np.timedelta64(1, "D"))
        raise DataError(
            f"data source {source!r}: {length} days pass between {str(days[index])[:10]} "
            f"(row {index + 2}) and {str(days[index + 1])[:10]}, more than "
            f"data.series.max_gap_days={max_gap_days}; fill the gap or raise the limit."
        )
    return days


def series_targets(log_price: np.ndarray, ends: np.ndarray, target: str, horizon: int):
    """The target of each window ending at ``ends`` (positions of day t), from days after t:
    ``return`` log(P[t+h] / P[t]); ``volatility`` mean of the squared daily log returns of
    days t+1 .. t+h; ``direction`` 1 where P[t+1] > P[t], else 0."""
    if target == "return":
        return log_price[ends + horizon] - log_price[ends]
    if target == "volatility":
        returns = np.diff(log_price)  # returns[i] is the return of day i + 1
        squared = np.stack([returns[ends + step] ** 2 for step in range(horizon)], axis=1)
        return squared.mean(axis=1)
    return (log_price[ends + 1] > log_price[ends]).astype(np.int64)


def cut_windows(raw: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ``window``-row window of ``raw`` at ``stride`` (float32) and the position of each
    window's last row."""
    import keras

    windows = keras.utils.timeseries_dataset_from_array(
        raw.astype(np.float32),
        None,
        sequence_length=window,
        sequence_stride=stride,
        shuffle=False,
        batch_size=4096,
    )
    x = np.concatenate([np.asarray(batch) for batch in windows])
    ends = np.arange(window - 1, len(raw), stride)[: len(x)]
    return x, ends


def split_series(series: Series, config: DataConfig, fold: tuple[int, int] | None = None):
    """Windows of ``series`` with their targets, split in time order (see the module doc).

    Args:
        series: the checked series.
        config: the data section (``series`` settings, split fractions).
        fold: ``(index, count)`` of a walk-forward evaluation: the test span is cut into
            ``count`` consecutive blocks and block ``index`` is tested, trained on all
            windows before it.
    """
    settings = config.series
    lookback, horizon = settings.lookback, settings.horizon
    window = lookback + warmup_days(settings.features)
    days = len(series.raw)
    if window + horizon > days:
        raise DataError(
            f"data source {series.source!r} has {days} days, fewer than a window "
            f"({lookback} lookback + {window - lookback} warm-up days for the features) plus "
            f"the horizon ({horizon}); lower data.series.lookback or use a longer series."
        )
    x, ends = cut_windows(series.raw, window, settings.stride)
    keep = ends + horizon <= days - 1
    x, ends = x[keep], ends[keep]
    y = series_targets(series.log_price, ends, settings.target, horizon)
    count = len(ends)
    n_test = round(count * config.test_split)
    n_val = round(count * config.validation_split)
    test_start, stop = count - n_test, count
    if fold is not None:
        index, folds = fold
        block = np.array_split(np.arange(test_start, count), folds)[index]
        if len(block) == 0:
            raise DataError(
                f"data source {series.source!r}: {n_test} test windows cannot form "
                f"{folds} walk-forward folds; lower data.folds."
            )
        test_start, stop = int(block[0]), int(block[-1]) + 1
    val_start = test_start - n_val
    if min(n_test, n_val, val_start) < 1:
        raise DataError(
            f"data source {series.source!r} gives {count} windows, too few for "
            f"validation_split={config.validation_split} and test_split={config.test_split}; "
            "use a longer series or a shorter lookback."
        )
    positions = np.arange(count)
    last_target = ends + horizon
    # Embargo: a window whose target days reach into the next split is dropped.
    train = positions[(positions < val_start) & (last_target <= ends[val_start])]
    validation = positions[
        (positions >= val_start) & (positions < test_start) & (last_target <= ends[test_start])
    ]
    test = positions[test_start:stop]
    for name, rows in (("training", train), ("validation", validation), ("test", test)):
        if len(rows) < 1:
            raise DataError(
                f"data source {series.source!r}: no {name} window is left once windows "
                f"whose {horizon}-day targets straddle a split boundary are dropped; use a "
                "longer series, larger split fractions or a shorter horizon."
            )
    return SeriesSplits(
        x_train=x[train],
        y_train=y[train],
        x_val=x[validation],
        y_val=y[validation],
        x_test=x[test],
        y_test=y[test],
        class_names=[],
        source=series.source,
        series=series,
        ends_train=ends[train],
        ends_val=ends[validation],
        ends_test=ends[test],
        lookback=lookback,
        horizon=horizon,
        target=settings.target,
        features=list(settings.features),
    )
