"""Tasks ``forecasting`` and ``signal``: a recurrent or 1-D convolutional network on windows
of a price series, scored on the test span beside naive and classical forecasts.

The model takes a raw window (price, and high, low, volume where the features need them):
its first layers compute the features from the window (:class:`SeriesFeatures`) and
standardise them with statistics of the training windows, so the exported SavedModel
serves raw prices. With ``data.folds`` the run is also evaluated walk-forward: the test
span is cut into consecutive blocks, each forecast by a model trained on all days before
it, and the mean of each score over the blocks is reported beside the single split's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit import distribute
from dltoolkit.config import RunConfig
from dltoolkit.data.series import SeriesSplits, load_series, split_series
from dltoolkit.errors import ConfigError
from dltoolkit.layers.series import SeriesFeatures
from dltoolkit.models import MODELS
from dltoolkit.plots import pyplot, save_figure
from dltoolkit.runs import write_json, write_text_atomic
from dltoolkit.tasks.forecasting import (
    ForecastingTask,
    diebold_mariano,
    log_variance_qlike,
    qlike_losses,
)
from dltoolkit.tasks.signal import SignalTask, daily_net_returns, next_day_returns


def series_task(config: RunConfig) -> ForecastingTask | SignalTask:
    """The task object of a series run."""
    if config.task == "signal":
        return SignalTask(config.data.series.cost_bps)
    return ForecastingTask()


def headline(config: RunConfig) -> tuple[str, bool]:
    """The score a series run is judged by, and whether higher is better."""
    if config.task == "signal":
        return "sharpe", True
    if config.data.series.target == "volatility":
        return "qlike", False
    return "rmse_return", False


def window_features(data: SeriesSplits, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """The per-day features of windows ``x``, as the model's first layer computes them."""
    layer = SeriesFeatures(data.series.roles, data.features, data.lookback)
    parts = [
        keras.ops.convert_to_numpy(layer(x[start : start + batch_size]))
        for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(parts).astype(np.float32)


def build_series_model(config: RunConfig, data: SeriesSplits) -> keras.Model:
    """The configured builder on raw windows: features, then normalisation adapted on the
    training windows, then the network."""
    builder_name = config.model["builder"]
    features = SeriesFeatures(
        data.series.roles, data.features, data.lookback, dtype="float32", name="features"
    )
    normalization = keras.layers.Normalization(axis=-1, dtype="float32", name="normalization")
    normalization.adapt(window_features(data, data.x_train))
    preprocessing = keras.Sequential([features, normalization], name="preprocessing")
    hyperparameters = {key: value for key, value in config.model.items() if key != "builder"}
    return MODELS.get(builder_name)(
        data.input_shape,
        **series_task(config).head(2),
        preprocessing=preprocessing,
        input_name="window",
        name=config.name.replace("-", "_"),
        **hyperparameters,
    )


def compile_series_model(model: keras.Model, config: RunConfig, steps_per_epoch: int) -> None:
    """Compile with the configured optimizer; a variance forecast trains on QLIKE."""
    from dltoolkit.training import make_optimizer

    task = series_task(config)
    loss = config.train.loss or (
        log_variance_qlike if config.data.series.target == "volatility" else task.default_loss
    )
    metrics = list(dict.fromkeys([*task.metrics(), *config.train.metrics]))
    try:
        model.compile(optimizer=make_optimizer(config, steps_per_epoch), loss=loss, metrics=metrics)
    except ValueError as error:
        raise ConfigError(f"train.loss {loss!r} is not usable: {error}") from None


def new_model(config: RunConfig, data: SeriesSplits) -> keras.Model:
    """The configured network, built from the seed and compiled (in the strategy's
    scope)."""
    keras.utils.set_random_seed(config.seed)
    with distribute.current().scope():
        model = build_series_model(config, data)
        steps = math.ceil(len(data.x_train) / config.train.batch_size)
        compile_series_model(model, config, steps)
    return model


def fit_series(
    config: RunConfig,
    data: SeriesSplits,
    run_dir: Path | None,
    verbose: int,
    model: keras.Model | None = None,
) -> Any:
    """Fit the network (``model``, or a new one) on one split; return training.Fitted."""
    from dltoolkit.training import callbacks, fit

    model = model or new_model(config, data)
    keras.utils.set_random_seed(config.seed)
    return fit(model, config, data, callbacks(config, run_dir), verbose)


def train_and_score(
    config: RunConfig,
    data: SeriesSplits,
    run_dir: Path | None,
    verbose: int,
    model: keras.Model | None = None,
) -> dict[str, Any]:
    """Fit the network (``model``, or a new one) and score it and the baselines on one
    split."""
    from dltoolkit.training import predict_outputs

    task = series_task(config)
    fitted = fit_series(config, data, run_dir, verbose, model)
    outputs = predict_outputs(fitted.model, data.x_test, config.train.batch_size).reshape(-1)
    if config.task == "signal":
        features = (window_features(data, data.x_train), window_features(data, data.x_test))
        baselines = task.baselines(data, features)
    else:
        baselines = task.baselines(data)
    return {
        "fitted": fitted,
        "outputs": outputs,
        "test": task.scores(data, outputs),
        "baselines": baselines,
    }


def walk_forward(config: RunConfig, series: Any, echo: Callable[[str], None]) -> dict[str, Any]:
    """Scores of the network and the baselines on each walk-forward block, and their means."""
    count = int(config.data.folds)
    name, _ = headline(config)
    per_fold = []
    for index in range(count):
        data = split_series(series, config.data, fold=(index, count))
        result = train_and_score(config, data, None, verbose=0)
        scores = {"deep model": result["test"]}
        scores.update({b["name"]: b["test"] for b in result["baselines"]})
        first, last = data.span("test")
        per_fold.append({"fold": index, "test_span": [first, last], "scores": scores})
        echo(
            f"walk-forward block {index + 1}/{count} ({first} .. {last}): "
            + ", ".join(f"{model} {_number(s[name])}" for model, s in scores.items())
        )
    mean = {
        model: {
            key: float(np.mean([fold["scores"][model][key] for fold in per_fold]))
            for key, value in per_fold[0]["scores"][model].items()
            if isinstance(value, float)
            and all(isinstance(f["scores"][model][key], float) for f in per_fold)
        }
        for model in per_fold[0]["scores"]
    }
    return {"folds": count, "mean": mean, "per_fold": per_fold}


def daily_losses(config: RunConfig, data: SeriesSplits, predictions: np.ndarray) -> np.ndarray:
    """Each test day's loss of a forecast: squared return error, QLIKE of a variance, or
    the negative net return of trading a signal."""
    if config.task == "signal":
        returns = next_day_returns(data, data.ends_test)
        return -daily_net_returns(predictions >= 0.5, returns, config.data.series.cost_bps)
    if data.target == "volatility":
        return qlike_losses(data.y_test, predictions)
    return (np.reshape(predictions, len(data.y_test)) - data.y_test) ** 2


def compare(config: RunConfig, data: SeriesSplits, result: dict[str, Any]) -> dict[str, Any]:
    """The network (``result`` of :func:`train_and_score`) against the reference forecast
    (the random walk, GARCH(1,1) or buy-and-hold) on the test span: the headline scores, a
    Diebold-Mariano test on the daily losses, and one plain sentence."""
    outputs, baselines = result["outputs"], result["baselines"]
    name, higher = headline(config)
    reference = {"sharpe": "buy_and_hold", "qlike": "garch_1_1"}.get(name, "random_walk")
    baseline = next(b for b in baselines if b["name"] == reference)
    mine, theirs = result["test"][name], baseline["test"][name]
    beats = mine > theirs if higher else mine < theirs
    test = diebold_mariano(
        daily_losses(config, data, outputs),
        daily_losses(config, data, baseline["predictions"]),
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


def run_series(config: RunConfig, echo: Callable[[str], None] = print, resume: Path | None = None):
    """Train, score, plot and export one forecasting or signal run (config resolved)."""
    from dltoolkit.training import (
        RunResult,
        drop_backups,
        export_run,
        open_run_dir,
        run_facts,
        worker_result,
    )

    series = load_series(config.data)
    data = split_series(series, config.data)
    model = new_model(config, data)  # bad model settings fail before anything is written
    placement = distribute.current()
    if not placement.chief:  # train what the chief trains, in the same order; write nothing
        count = int(config.data.folds or 0)
        for index in range(count):
            fit_series(config, split_series(series, config.data, fold=(index, count)), None, 0)
        fitted = fit_series(config, data, None, config.train.verbose, model)
        return worker_result(placement, fitted, echo)
    run_dir, resumed = open_run_dir(config, resume)
    write_text_atomic(run_dir / "config.yaml", config.to_yaml())
    echo(f"run directory: {run_dir}")
    if resumed:
        echo(f"resuming the interrupted run in {run_dir}")
    sizes = data.sizes()
    echo(
        f"data {data.source}: {len(series.raw)} days; windows {sizes['train']} train "
        f"{data.span('train')} / {sizes['validation']} validation {data.span('validation')} / "
        f"{sizes['test']} test {data.span('test')}; window {data.input_shape}, "
        f"target {data.target} h={data.horizon}; backend {keras.backend.backend()}"
    )
    if config.data.folds:
        walk = walk_forward(config, series, echo)
    result = train_and_score(config, data, run_dir, config.train.verbose, model)
    fitted = result["fitted"]
    fitted.model.save(run_dir / "model.keras")
    epochs_run = len(fitted.history["loss"])
    baselines = result["baselines"]
    _write_predictions(run_dir, data, result["outputs"], baselines)
    _plot(run_dir, config, data, result["outputs"], baselines)
    metrics: dict[str, Any] = {
        "recipe": config.name,
        "task": config.task,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "test": result["test"],
        "comparison": compare(config, data, result),
        "decision": {"threshold": 0.5} if config.task == "signal" else {},
        "baselines": [{k: v for k, v in b.items() if k != "predictions"} for b in baselines],
        **run_facts(config, fitted),
        "data": {
            "source": data.source,
            "sizes": sizes,
            "spans": {name: data.span(name) for name in ("train", "validation", "test")},
            "input_shape": list(data.input_shape),
            "class_names": data.class_names,
            "series": serving_head(data),
        },
    }
    if config.data.folds:
        metrics["walk_forward"] = walk
    write_json(run_dir / "metrics.json", metrics)
    drop_backups(config)
    name, _ = headline(config)
    echo(
        f"test {name} {_number(result['test'][name])} | baselines: "
        + ", ".join(f"{b['name']} {_number(b['test'][name])}" for b in baselines)
        + f" | {metrics['parameters']['total']:,} parameters, "
        f"{metrics['cost']['flops_per_example']:,} FLOPs/example, {epochs_run} epochs in "
        f"{fitted.train_seconds:.1f} s"
    )
    echo(metrics["comparison"]["verdict"])
    if config.report.enabled:
        from dltoolkit.training import report

        report(run_dir, echo)
    export_path = export_run(
        config,
        run_dir,
        metrics,
        echo,
        data.class_names or None,
        task=config.task,
        decision=metrics["decision"],
        series=serving_head(data),
    )
    return RunResult(run_dir=run_dir, metrics=metrics, export_path=export_path)


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


def prepare_series(config: RunConfig) -> SeriesSplits:
    """The configured series' split (to re-evaluate a run)."""
    return split_series(load_series(config.data), config.data)


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.5g}"


def _test_dates(data: SeriesSplits) -> np.ndarray:
    # The day each test target ends on.
    return data.series.dates[data.ends_test + data.horizon]


def _write_predictions(run_dir: Path, data: SeriesSplits, outputs, baselines) -> None:
    import pandas as pd

    table = pd.DataFrame(
        {
            "date": [str(day)[:10] for day in _test_dates(data)],
            "actual": data.y_test,
            "deep_model": outputs,
            **{b["name"]: b["predictions"] for b in baselines},
        }
    )
    table.to_csv(run_dir / "predictions.csv", index=False)


def _plot(run_dir: Path, config: RunConfig, data: SeriesSplits, outputs, baselines) -> None:
    """``forecast.png``: the test span's actual vs forecast (prices and returns, volatility),
    or the strategies' equity curves."""
    plt = pyplot()
    dates = _test_dates(data)
    by_name = {b["name"]: b["predictions"] for b in baselines}
    if config.task == "signal":
        figure, axis = plt.subplots(figsize=(10, 4.5))
        returns = next_day_returns(data, data.ends_test)
        for label, positions in (
            ("network long/flat", outputs >= 0.5),
            ("logistic regression long/flat", by_name["logistic_regression"] >= 0.5),
            ("buy and hold", np.ones(len(outputs))),
        ):
            net = daily_net_returns(positions, returns, config.data.series.cost_bps)
            axis.plot(dates, np.cumprod(1.0 + net), label=label)
        axis.set_ylabel("equity (start = 1)")
        axis.set_title(f"{config.name}: test span, costs {config.data.series.cost_bps:g} bps")
    elif data.target == "volatility":
        figure, axis = plt.subplots(figsize=(10, 4.5))
        annualise = lambda v: np.sqrt(np.asarray(v) * 252) * 100  # noqa: E731
        axis.plot(dates, annualise(data.y_test), color="0.7", lw=0.8, label="realised")
        axis.plot(dates, annualise(outputs), label="network")
        axis.plot(dates, annualise(by_name["garch_1_1"]), label="GARCH(1,1)")
        axis.set_ylabel(f"annualised volatility % (next {data.horizon} days)")
        axis.set_title(f"{config.name}: test span")
    else:
        figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
        last = data.series.log_price[data.ends_test]
        top.plot(dates, np.exp(last + data.y_test), color="0.3", lw=0.9, label="actual")
        top.plot(dates, np.exp(last + outputs), lw=0.9, label="network forecast")
        top.set_ylabel(f"price in {data.horizon} day(s)")
        top.set_title(f"{config.name}: test span")
        top.legend()
        bottom.plot(dates, data.y_test, color="0.7", lw=0.6, label="actual")
        bottom.plot(dates, outputs, lw=0.9, label="network")
        bottom.plot(dates, by_name["autoregression"], lw=0.9, label="autoregression")
        bottom.set_ylabel("log return")
        axis = bottom
    axis.legend()
    figure.autofmt_xdate()
    save_figure(figure, run_dir / "forecast.png", dpi=110)
