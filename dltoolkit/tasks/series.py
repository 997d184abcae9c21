"""What the price-series tasks share (forecasting, signal): a recurrent or 1-D convolutional
network on windows of a price series, scored on the test span beside naive and classical
forecasts, and compared with its reference forecast by a Diebold-Mariano test.

The model takes a raw window (price, and high, low, volume where the features need them):
its first layers compute the features from the window (:class:`SeriesFeatures`) and
standardise them with statistics of the training windows, so the exported SavedModel
serves raw prices. With ``data.folds`` the run is also evaluated walk-forward: the test
span is cut into consecutive blocks, each forecast by a model trained on all days before
it, and the mean of each score over the blocks is reported beside the single split's.

A series is held in memory whole (a century of trading days is about 25,000 rows).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import pandas as pd

from dltoolkit import training
from dltoolkit.config import RunConfig, fail, load_config
from dltoolkit.data.series import Series, SeriesSplits, cut_windows, load_series, split_series
from dltoolkit.errors import ConfigError, DataError
from dltoolkit.layers.series import SeriesFeatures
from dltoolkit.tasks.base import Evaluation, Task, number
from dltoolkit.tasks.forecast_scores import diebold_mariano
from dltoolkit.training import Fitted

SERIES_TARGETS = ("return", "volatility", "direction")


class SeriesTask(Task):
    """A network on windows of one price series, split in time order."""

    folds_entry = "walk_forward"
    # The names of the target's classes (a direction's down and up), or none.
    class_names: ClassVar[tuple[str, ...]] = ()
    # The baseline the network must beat (the random walk, GARCH(1,1), buy-and-hold).
    reference: ClassVar[str]

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """Time-ordered splits, a series target that fits the task, positive window sizes,
        a sequence model, no resampling of days."""
        series = config.data.series
        if config.data.split != "time":
            fail(
                "data.split",
                config.data.split,
                f"'time' for {cls.name} (a series is never shuffled)",
            )
        if config.data.folds is not None and config.data.folds < 2:
            fail("data.folds", config.data.folds, "null, or 2 or more walk-forward folds")
        if series.target not in SERIES_TARGETS:
            fail("data.series.target", series.target, "one of " + ", ".join(SERIES_TARGETS))
        for key in ("lookback", "horizon", "stride", "max_gap_days"):
            if getattr(series, key) < 1:
                fail(f"data.series.{key}", getattr(series, key), "a positive integer")
        if series.cost_bps < 0:
            fail("data.series.cost_bps", series.cost_bps, "a cost >= 0 in basis points")
        if not series.features:
            fail("data.series.features", series.features, "a non-empty list of feature names")
        if config.train.class_weight is not None or config.train.oversample is not None:
            fail(
                "train.class_weight and train.oversample",
                [config.train.class_weight, config.train.oversample],
                f"null for {cls.name} (the days of a series are not resampled)",
            )
        if config.model.get("builder") not in ("rnn", "cnn"):
            raise ConfigError(
                f"task {cls.name} needs a sequence model, model.builder rnn or cnn; received "
                f"{config.model.get('builder')!r}."
            )

    def __init__(self, config: RunConfig):
        super().__init__(config)
        self.series: Series | None = None

    # === Data ===

    def load_data(self, saved_features: Path | None = None) -> SeriesSplits:
        """The configured series (read once per task) split in time order."""
        if self.series is None:
            self.series = load_series(self.config.data)
        return self.named(split_series(self.series, self.config.data))

    def fold_data(self, index: int, count: int) -> SeriesSplits:
        """Walk-forward block ``index``: trained on every day before it."""
        if self.series is None:
            self.series = load_series(self.config.data)
        return self.named(split_series(self.series, self.config.data, fold=(index, count)))

    def named(self, data: SeriesSplits) -> SeriesSplits:
        """The splits with the task's class names."""
        return dataclasses.replace(data, class_names=list(self.class_names))

    def fold_facts(self, data: SeriesSplits) -> dict[str, Any]:
        """The block's first and last test day."""
        return {"test_span": list(data.span("test"))}

    def fold_label(self, index: int, count: int, data: SeriesSplits) -> str:
        """``walk-forward block i/K (first .. last)``."""
        first, last = data.span("test")
        return f"walk-forward block {index + 1}/{count} ({first} .. {last})"

    def describe(self, data: SeriesSplits) -> str:
        """Days, windows per split with their spans, window shape, target."""
        sizes = data.sizes()
        return (
            f"data {data.source}: {len(data.series.raw)} days; windows {sizes['train']} train "
            f"{data.span('train')} / {sizes['validation']} validation "
            f"{data.span('validation')} / {sizes['test']} test {data.span('test')}; window "
            f"{data.input_shape}, target {data.target} h={data.horizon}; backend "
            f"{keras.backend.backend()}"
        )

    def data_facts(self, data: SeriesSplits) -> dict[str, Any]:
        """Source, sizes, spans, window shape, class names, and what serving needs."""
        return {
            "source": data.source,
            "sizes": data.sizes(),
            "spans": {name: data.span(name) for name in ("train", "validation", "test")},
            "input_shape": list(data.input_shape),
            "class_names": data.class_names,
            "series": serving_head(data),
        }

    # === The network ===

    def build(self, data: SeriesSplits) -> keras.Model:
        """The configured builder on raw windows: features, then normalisation adapted on
        the training windows, then the network."""
        features = SeriesFeatures(
            data.series.roles, data.features, data.lookback, dtype="float32", name="features"
        )
        normalization = keras.layers.Normalization(axis=-1, dtype="float32", name="normalization")
        normalization.adapt(window_features(data, data.x_train))
        preprocessing = keras.Sequential([features, normalization], name="preprocessing")
        return training.build_network(
            self.config, data.input_shape, self.head(data), preprocessing, "window"
        )

    def new_model(self, data: SeriesSplits) -> keras.Model:
        """The network built from the seed and compiled (in the strategy's scope)."""
        keras.utils.set_random_seed(self.config.seed)
        return super().new_model(data)

    def fit(
        self,
        model: keras.Model,
        data: SeriesSplits,
        run_dir: Path | None,
        verbose: int,
        echo: Callable[[str], None] = print,
    ) -> Fitted:
        """Keras' fit from the seed (every block of a walk-forward evaluation alike)."""
        keras.utils.set_random_seed(self.config.seed)
        return super().fit(model, data, run_dir, verbose, echo)

    # === Evaluation ===

    def outputs(self, model: keras.Model, x: np.ndarray) -> np.ndarray:
        """One forecast per window."""
        return super().outputs(model, x).reshape(-1)

    def daily_losses(self, data: SeriesSplits, predictions: np.ndarray) -> np.ndarray:
        """Each test day's loss of a forecast (what the Diebold-Mariano test compares)."""
        raise NotImplementedError

    def compare(
        self, data: SeriesSplits, evaluation: Evaluation, baselines: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The network against the reference forecast on the test span: the headline
        scores, a Diebold-Mariano test on the daily losses, and one plain sentence."""
        name, higher, reference = self.headline, self.higher_is_better, self.reference
        baseline = next(b for b in baselines if b["name"] == reference)
        mine, theirs = evaluation.test[name], baseline["test"][name]
        beats = mine > theirs if higher else mine < theirs
        test = diebold_mariano(
            self.daily_losses(data, evaluation.outputs),
            self.daily_losses(data, baseline["predictions"]),
            data.horizon,
        )
        label = {"random_walk": "the random walk (persistence: tomorrow's price = today's)"}.get(
            reference, reference.replace("_", " ")
        )
        significance = "significant" if test["p_value"] < 0.05 else "NOT significant"
        sentence = (
            f"On the test span the network's {name} is {mine:.5g} against {theirs:.5g} for "
            f"{label}: it {'beats' if beats else 'does NOT beat'} it; the difference in daily "
            f"losses is {significance} at 5% (Diebold-Mariano p = {test['p_value']:.3f})."
        )
        return {"reference": reference, "beats": bool(beats), **test, "verdict": sentence}

    # === What a run leaves ===

    def artefacts(
        self,
        run_dir: Path,
        data: SeriesSplits,
        fitted: Fitted,
        evaluation: Evaluation,
        baselines: list[dict[str, Any]],
        echo: Callable[[str], None],
    ) -> dict[str, Any]:
        """``predictions.csv`` (every test window's forecasts) and ``forecast.png``."""
        table = pd.DataFrame(
            {
                "date": [str(day)[:10] for day in target_dates(data)],
                "actual": data.y_test,
                "deep_model": evaluation.outputs,
                **{b["name"]: b["predictions"] for b in baselines},
            }
        )
        table.to_csv(run_dir / "predictions.csv", index=False)
        self.plot(
            run_dir, data, evaluation.outputs, {b["name"]: b["predictions"] for b in baselines}
        )
        return {}

    def plot(
        self,
        run_dir: Path,
        data: SeriesSplits,
        outputs: np.ndarray,
        baselines: dict[str, np.ndarray],
    ) -> None:
        """``forecast.png``: the test span's forecasts (or the strategies' equity)."""
        raise NotImplementedError

    def summary_line(self, metrics: dict[str, Any]) -> str:
        """The headline scores of the network and baselines, its cost, and the verdict."""
        name = self.headline
        return (
            f"test {name} {number(metrics['test'][name])} | baselines: "
            + ", ".join(f"{b['name']} {number(b['test'][name])}" for b in metrics["baselines"])
            + f" | {metrics['parameters']['total']:,} parameters, "
            f"{metrics['cost']['flops_per_example']:,} FLOPs/example, {metrics['epochs_run']} "
            f"epochs in {metrics['train_seconds']:.1f} s\n{metrics['comparison']['verdict']}"
        )

    # === Serving ===

    @classmethod
    def window_rows(
        cls,
        outputs: np.ndarray,
        dates: list[str],
        last_prices: np.ndarray,
        written: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """``dltk predict``'s row for each window's forecast, dated by its last day."""
        raise NotImplementedError

    @classmethod
    def predict_whole_source(
        cls, model: Any, run_dir: Path, source: str, batch_size: int, written: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Forecasts from every window of a price series read like the run's training
        data: one row per window, dated by its last day."""
        config_path = run_dir / "config.yaml"
        if not config_path.is_file():
            raise DataError(
                f"a series model needs its run's config.yaml beside it (column names, dates); "
                f"{config_path} is missing."
            )
        config = load_config(config_path)
        config.data.source = source
        series = load_series(config.data)
        rows = int(written["data"]["series"]["window_rows"])
        if len(series.raw) < rows:
            raise DataError(
                f"{source!r} has {len(series.raw)} days; the model needs windows of {rows} days."
            )
        x, ends = cut_windows(series.raw, rows, 1)
        outputs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float64)
        dates = [str(day)[:10] for day in series.dates[ends]]
        return cls.window_rows(outputs.reshape(len(x)), dates, series.raw[ends, 0], written)


def window_features(data: SeriesSplits, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """The per-day features of windows ``x``, as the model's first layer computes them."""
    layer = SeriesFeatures(data.series.roles, data.features, data.lookback)
    parts = [
        keras.ops.convert_to_numpy(layer(x[start : start + batch_size]))
        for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(parts).astype(np.float32)


def serving_head(data: SeriesSplits) -> dict[str, Any]:
    """What a client of the exported model needs: the window's rows and columns."""
    return {
        "target": data.target,
        "horizon": data.horizon,
        "lookback": data.lookback,
        "window_rows": int(data.input_shape[0]),
        "window_columns": [data.series.column_names[role] for role in data.series.roles],
        "features": data.features,
    }


def target_dates(data: SeriesSplits) -> np.ndarray:
    """The day each test target ends on."""
    return data.series.dates[data.ends_test + data.horizon]
