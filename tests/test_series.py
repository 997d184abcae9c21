"""Price series: windows and targets, splits, features, backtest, baselines, recipes, serving."""

from __future__ import annotations

import html
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import invoke, one_line_error, run_recipe_in

from dltoolkit.config import DataConfig, SeriesConfig, from_dict
from dltoolkit.data.series import Series, cut_windows, load_series, series_targets, split_series
from dltoolkit.errors import ConfigError, DataError
from dltoolkit.layers.series import SeriesFeatures, warmup_days
from dltoolkit.tasks import get_task
from dltoolkit.tasks.forecasting import diebold_mariano, ewma_variance
from dltoolkit.tasks.signal import backtest


def prices(days: int = 400, seed: int = 0) -> pd.DataFrame:
    """Business days of a random-walk price with high, low and volume."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, days)))
    spread = np.abs(rng.normal(0, 0.006, days))
    return pd.DataFrame(
        {
            "date": pd.bdate_range("2015-01-05", periods=days).strftime("%Y-%m-%d"),
            "close": close,
            "high": close * np.exp(spread),
            "low": close * np.exp(-spread),
            "volume": rng.integers(1_000, 5_000, days),
        }
    )


def write(tmp_path: Path, frame: pd.DataFrame, name: str = "prices.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def series_config(path: Path, **series: object) -> DataConfig:
    settings = {"price_column": "close", "high_column": "high", "low_column": "low"}
    settings.update({"volume_column": "volume", "lookback": 10, **series})
    return DataConfig(
        source=f"csv:{path}",
        time_column="date",
        split="time",
        validation_split=0.2,
        test_split=0.2,
        series=SeriesConfig(**settings),
    )


def plain_series(close: np.ndarray) -> Series:
    dates = np.arange(len(close)).astype("datetime64[D]").astype("datetime64[ns]")
    return Series(dates, close[:, None].astype(np.float64), ["price"], {"price": "close"}, "test")


# === Windows, targets and splits ===


@pytest.mark.backend_neutral
def test_windows_end_at_their_day_and_targets_come_after_it():
    raw = np.arange(1.0, 31.0)[:, None]  # row i holds i + 1
    x, ends = cut_windows(raw, window=5, stride=2)
    assert len(x) == len(ends) == 13
    for window, end in zip(x, ends, strict=True):
        assert window[-1, 0] == end + 1  # the window's last row is day ``end``
        assert np.array_equal(window[:, 0], np.arange(end - 3, end + 2))
    log_price = np.log(np.exp(np.linspace(0, 1, 30)) * np.linspace(1, 2, 30))
    ends = np.array([4, 10, 20])
    np.testing.assert_allclose(
        series_targets(log_price, ends, "return", 3), log_price[ends + 3] - log_price[ends]
    )
    squared = np.diff(log_price) ** 2
    np.testing.assert_allclose(
        series_targets(log_price, ends, "volatility", 3),
        [(squared[t] + squared[t + 1] + squared[t + 2]) / 3 for t in ends],
    )
    assert series_targets(np.log([1.0, 2, 1, 1]), np.array([0, 1, 2]), "direction", 1).tolist() == [
        1,
        0,
        0,
    ]


@pytest.mark.backend_neutral
@pytest.mark.parametrize("horizon", [1, 4])
def test_splits_are_in_time_order_and_no_target_day_is_shared(tmp_path: Path, horizon: int):
    path = write(tmp_path, prices(300))
    config = series_config(path, horizon=horizon, features=["log_return", "volatility_5"])
    data = split_series(load_series(config), config)
    window = 10 + warmup_days(["log_return", "volatility_5"])
    assert data.input_shape == (window, 1)  # only the price is needed
    splits = [data.ends_train, data.ends_val, data.ends_test]
    for ends in splits:
        assert np.all(np.diff(ends) == 1)
    # Every target day of a split comes before the first target day of the next one.
    for earlier, later in itertools.pairwise(splits):
        assert earlier[-1] + horizon < later[0] + 1
    assert data.ends_test[-1] + horizon == 299  # the last day is used as a target
    # Inputs end at day t; targets start at t + 1: a window never holds its target days.
    log_price = np.log(data.x_test[:, -1, 0].astype(np.float64))
    np.testing.assert_allclose(log_price, data.series.log_price[data.ends_test], rtol=1e-6)
    expected = data.series.log_price[data.ends_test + horizon] - log_price
    np.testing.assert_allclose(data.y_test, expected, atol=1e-5)
    # Embargo: with a horizon of h, h - 1 windows are dropped before each boundary.
    assert len(data.x_train) + len(data.x_val) + len(
        data.x_test
    ) == 300 - window + 1 - horizon - 2 * (horizon - 1)


@pytest.mark.backend_neutral
def test_walk_forward_blocks_cover_the_test_span_with_growing_training(tmp_path: Path):
    path = write(tmp_path, prices(300))
    config = series_config(path, features=["log_return"])
    series = load_series(config)
    whole = split_series(series, config)
    folds = [split_series(series, config, fold=(index, 3)) for index in range(3)]
    tested = np.concatenate([fold.ends_test for fold in folds])
    assert np.array_equal(tested, whole.ends_test)
    assert [len(f.x_train) for f in folds] == sorted(len(f.x_train) for f in folds)
    for fold in folds:
        assert fold.ends_val[-1] < fold.ends_test[0]
        assert len(fold.x_val) == len(whole.x_val)


# === Features ===


def test_features_match_numpy_and_never_look_past_the_window():
    rng = np.random.default_rng(1)
    rows = 26
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, rows)))
    high, low = close * 1.01, close * 0.98
    volume = rng.integers(100, 1000, rows).astype(np.float64)
    window = np.stack([close, high, low, volume], axis=1)[None].astype(np.float32)
    names = ["log_return", "volatility_5", "momentum_3", "log_range", "volume_change"]
    layer = SeriesFeatures(["price", "high", "low", "volume"], names, lookback=21)
    assert layer.window == rows
    features = keras.ops.convert_to_numpy(layer(window))[0]
    returns = np.diff(np.log(close))
    days = np.arange(5, rows)  # the 21 feature days
    expected = np.stack(
        [
            returns[days - 1],
            [np.std(returns[day - 5 : day]) for day in days],
            np.log(close[days]) - np.log(close[days - 3]),
            np.log(high[days] / low[days]),
            np.log(volume[days] + 1) - np.log(volume[days - 1] + 1),
        ],
        axis=1,
    )
    np.testing.assert_allclose(features, expected, atol=2e-5)
    # Changing the last day changes the last day's features only.
    changed = window.copy()
    changed[0, -1] *= 1.5
    other = keras.ops.convert_to_numpy(layer(changed))[0]
    np.testing.assert_allclose(other[:-1], features[:-1], atol=1e-6)
    assert not np.allclose(other[-1], features[-1])


def test_features_layer_round_trips_and_checks_its_arguments():
    layer = SeriesFeatures(["price"], ["log_return", "momentum_4"], lookback=6)
    clone = SeriesFeatures.from_config(layer.get_config())
    window = np.exp(np.random.default_rng(2).normal(0, 0.1, (3, 10, 1))).astype(np.float32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(clone(window)), keras.ops.convert_to_numpy(layer(window))
    )
    with pytest.raises(ValueError, match="need columns"):
        SeriesFeatures(["price"], ["log_range"], lookback=5)
    with pytest.raises(ValueError, match="unknown series feature 'rsi_14'"):
        SeriesFeatures(["price"], ["rsi_14"], lookback=5)
    with pytest.raises(ValueError, match="takes windows of 7 rows"):
        SeriesFeatures(["price"], ["log_return"], lookback=6)(np.ones((1, 9, 1), np.float32))


# === Backtest, baselines and tests of forecasts ===


@pytest.mark.backend_neutral
def test_backtest_arithmetic_on_a_hand_made_series():
    close = np.array([100.0, 110.0, 99.0, 99.0, 108.9])
    log_returns = np.diff(np.log(close))  # +10%, -10%, 0%, +10%
    positions = np.array([1, 0, 1, 1])
    result = backtest(positions, log_returns, cost_bps=10)
    # Day 1: enter (cost 0.1%) and gain 10%; day 2: exit (cost 0.1%); day 3: enter, flat
    # price; day 4: gain 10%.
    net = np.array([0.10 - 0.001, -0.001, -0.001, 0.10])
    equity = np.cumprod(1 + net)
    assert result["cumulative_return"] == pytest.approx(equity[-1] - 1)
    assert result["sharpe"] == pytest.approx(net.mean() / net.std(ddof=1) * np.sqrt(252))
    drawdown = 1 - equity[2] / equity[0]  # from the peak after day 1 to the low of day 3
    assert result["max_drawdown"] == pytest.approx(drawdown)
    assert result["hit_rate"] == pytest.approx(2 / 3)  # days long: +10%, 0%, +10%
    assert result["exposure"] == 0.75
    assert result["trades"] == 3
    flat = backtest(np.zeros(4), log_returns, cost_bps=10)
    assert flat["cumulative_return"] == 0 and flat["hit_rate"] is None and flat["trades"] == 0
    hold = backtest(np.ones(4), log_returns, cost_bps=0)
    assert hold["cumulative_return"] == pytest.approx(108.9 / 100 - 1)


@pytest.mark.backend_neutral
def test_baselines_never_use_days_after_the_window(tmp_path: Path):
    """A shock on one test day changes no forecast made before that day."""
    from dltoolkit.tasks.forecasting import return_baselines, variance_baselines

    frame = prices(400)
    path = write(tmp_path, frame)
    shocked = frame.copy()
    day = 360  # inside the test span
    shocked.loc[day:, ["close", "high", "low"]] *= 1.25
    other = write(tmp_path, shocked, "shocked.csv")
    results = []
    for source in (path, other):
        for target in ("return", "volatility"):
            config = series_config(source, target=target, horizon=3, features=["log_return"])
            data = split_series(load_series(config), config)
            found = return_baselines(data) if target == "return" else variance_baselines(data)
            results.append((data, {b["name"]: b["predictions"] for b in found}))
    for (data, clean), (_, shock) in ((results[0], results[2]), (results[1], results[3])):
        before = data.ends_test < day  # windows that end before the shocked day
        assert before.any() and not before.all()
        for name in clean:
            np.testing.assert_allclose(shock[name][before], clean[name][before], err_msg=name)
            if name in ("last_return", "autoregression", "ewma_0.94", "historical_20d"):
                # ...and the shock does reach the forecasts made after it: the test can fail.
                assert not np.allclose(shock[name][~before], clean[name][~before]), name


@pytest.mark.backend_neutral
def test_too_few_windows_for_a_split_after_the_embargo(tmp_path: Path):
    path = write(tmp_path, prices(200))
    config = series_config(path, horizon=30, features=["log_return"])
    config.validation_split = 0.1  # 16 validation windows, all within 30 days of the test
    with pytest.raises(DataError, match="no validation window is left"):
        split_series(load_series(config), config)


@pytest.mark.backend_neutral
def test_ewma_variance_matches_its_recursion():
    log_price = np.log(prices(80)["close"].to_numpy())
    squared = np.diff(log_price) ** 2
    ends = np.array([30, 50, 79])
    variance, result = squared[:20].mean(), []
    for index, value in enumerate(squared):
        variance = 0.94 * variance + 0.06 * value
        if index + 1 in ends:
            result.append(variance)
    np.testing.assert_allclose(ewma_variance(log_price, ends), result)


@pytest.mark.backend_neutral
def test_diebold_mariano_sees_a_real_difference_and_not_an_absent_one():
    rng = np.random.default_rng(3)
    truth = rng.normal(size=500)
    good, bad = truth + rng.normal(0, 0.5, 500), truth + rng.normal(0, 1.0, 500)
    clear = diebold_mariano((good - truth) ** 2, (bad - truth) ** 2)
    assert clear["statistic"] < 0 and clear["p_value"] < 0.001
    same = diebold_mariano((good - truth) ** 2, (good - truth) ** 2)
    assert same["p_value"] == 1.0


# === Bad input ===


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("change", "settings", "expected"),
    [
        (lambda f: f.iloc[[0, 2, 1, *range(3, len(f))]], {}, "comes before the row above"),
        (lambda f: pd.concat([f.iloc[:5], f.iloc[4:]]), {}, "repeats the row above"),
        (lambda f: f.drop(index=range(10, 30)), {}, "more than data.series.max_gap_days=10"),
        (lambda f: f.assign(close=f["close"].astype(object).where(f.index != 7, "abc")), {},
         "column 'close' is numeric but row 9 holds 'abc'"),
        (lambda f: f.assign(close=f["close"].where(f.index != 7, -1.0)), {}, "prices must be > 0"),
        (lambda f: f.assign(close=f["close"].where(f.index != 7)), {}, "missing a value at row 9"),
        (lambda f: f.assign(date=f["date"].where(f.index != 3, "soon")), {}, "not a date"),
        (lambda f: f, {"price_column": "Close"}, "no column 'Close' (data.series.price_column)"),
        (lambda f: f, {"lookback": 500}, "fewer than a window"),
        (lambda f: f, {"features": ["log_return", "rsi_14"]}, "unknown series feature 'rsi_14'"),
    ],
)  # fmt: skip
def test_bad_series_are_named_in_one_line(tmp_path: Path, change, settings, expected):
    path = write(tmp_path, change(prices(120)).reset_index(drop=True))
    config = series_config(path, **settings)
    with pytest.raises(DataError) as error:
        split_series(load_series(config), config)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"task": "signal", "data": {"split": "time", "series": {"target": "return"}}},
         "data.series.target must be direction for task signal"),
        ({"task": "signal", "data": {"split": "time", "series": {"target": "direction",
                                                                "horizon": 2}}},
         "[1, 1] for task signal"),
        ({"task": "forecasting", "data": {"split": "random"}}, "'time' for forecasting"),
        ({"task": "forecasting", "data": {"split": "time", "series": {"target": "price"}}},
         "one of return, volatility, direction"),
        ({"task": "forecasting", "data": {"split": "time", "series": {"lookback": 0}}},
         "data.series.lookback must be a positive integer"),
        ({"task": "forecasting", "data": {"split": "time", "series": {"target": "volatility"}},
          "train": {"loss": "mse"}}, "train.loss must be null for target volatility"),
    ],
)  # fmt: skip
def test_series_settings_are_checked(overrides: dict, expected: str):
    with pytest.raises(ConfigError) as error:
        get_task(from_dict({"name": "x", "model": {"builder": "rnn"}, **overrides}))
    assert expected in str(error.value)


@pytest.mark.backend_neutral
def test_a_recipe_refuses_a_non_sequence_model_before_writing(workdir: Path):
    message = one_line_error(invoke("recipe", "stock-forecast", "--set", "model={builder: mlp}"))
    assert "needs a sequence model, model.builder rnn or cnn" in message
    message = one_line_error(invoke("recipe", "stock-forecast", "--set", "model.units=[0]"))
    assert "model.units" in message
    assert not (workdir / "runs").exists()


# === Recipes, evaluation and serving ===

QUICK = ("--set", "train.epochs=1", "--set", "train.verbose=0")


@pytest.mark.parametrize(
    ("recipe", "headline", "reference"),
    [
        ("stock-forecast", "rmse_return", "random_walk"),
        ("volatility-forecast", "qlike", "garch_1_1"),
        ("trading-signal", "sharpe", "buy_and_hold"),
    ],
)
def test_series_recipes_run_one_epoch_on_real_prices(
    workdir: Path, recipe: str, headline: str, reference: str
):
    result = invoke("recipe", recipe, *QUICK, "--set", "export.enabled=false")
    assert result.exit_code == 0, result.output
    (run_dir,) = (workdir / "runs" / recipe).iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert np.isfinite(metrics["test"][headline])
    names = [b["name"] for b in metrics["baselines"]]
    assert reference in names and all(
        np.isfinite(b["test"][headline]) for b in metrics["baselines"]
    )
    assert metrics["comparison"]["reference"] == reference
    assert 0 <= metrics["comparison"]["p_value"] <= 1
    assert metrics["data"]["spans"]["test"][1] == "2018-12-31"
    predictions = pd.read_csv(run_dir / "predictions.csv")
    assert len(predictions) == metrics["data"]["sizes"]["test"]
    assert {"date", "actual", "deep_model", *names} <= set(predictions.columns)
    assert (run_dir / "forecast.png").stat().st_size > 10_000
    page = (run_dir / "report.html").read_text()
    assert "forecast.png" in page and html.escape(metrics["comparison"]["verdict"]) in page


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch return forecast on a CSV, walk-forward over 2 blocks, exported."""
    root = tmp_path_factory.mktemp("series")
    path = write(root, prices(400))
    return run_recipe_in(
        root, "stock-forecast", "--data", f"csv:{path}", *QUICK,
        "--set", "data.time_column=date", "--set", "data.series.price_column=close",
        "--set", "data.series.high_column=high", "--set", "data.series.low_column=low",
        "--set", "data.series.volume_column=volume", "--set", "data.series.lookback=10",
        "--set", "data.folds=2", "--set", "model={builder: cnn, filters: [8], dense_units: [8]}",
    )  # fmt: skip


def test_walk_forward_scores_are_recorded(csv_run: Path):
    walk = json.loads((csv_run / "metrics.json").read_text())["walk_forward"]
    assert len(walk["per_fold"]) == 2
    first, second = (fold["test_span"] for fold in walk["per_fold"])
    assert first[1] < second[0]
    mean = np.mean([fold["scores"]["deep model"]["rmse_return"] for fold in walk["per_fold"]])
    assert walk["mean"]["deep model"]["rmse_return"] == pytest.approx(mean)


def test_evaluate_reproduces_the_series_scores(csv_run: Path):
    result = invoke("evaluate", str(csv_run))
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)["test"]
    written = json.loads((csv_run / "metrics.json").read_text())["test"]
    assert scores["rmse_return"] == pytest.approx(written["rmse_return"], rel=1e-4)


SERVE_WINDOW = """
import json, sys
import numpy as np
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
window = tf.constant(np.load(sys.argv[2]), tf.float32)
outputs = serve(window=window)
print(json.dumps({key: value.numpy().tolist() for key, value in outputs.items()}))
"""


def test_saved_model_forecasts_from_a_raw_window_in_a_fresh_process(csv_run: Path, tmp_path):
    metrics = json.loads((csv_run / "metrics.json").read_text())
    head = metrics["data"]["series"]
    assert head["window_columns"] == ["close", "high", "low", "volume"]
    frame = prices(400)
    window = frame[head["window_columns"]].to_numpy(np.float32)[-head["window_rows"] :][None]
    np.save(tmp_path / "window.npy", window)
    version_dir = csv_run.parents[2] / metrics["export"]["path"]  # relative to the run's cwd
    result = subprocess.run(
        [sys.executable, "-c", SERVE_WINDOW, str(version_dir), str(tmp_path / "window.npy")],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=True,
    )
    served = json.loads(result.stdout.strip().splitlines()[-1])
    from dltoolkit.evaluation import load_model

    expected = float(
        np.reshape(load_model(csv_run / "model.keras").predict(window, verbose=0), -1)[0]
    )
    assert served["log_return"][0] == pytest.approx(expected, abs=1e-5)
    assert served["price"][0] == pytest.approx(window[0, -1, 0] * np.exp(expected), rel=1e-5)


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("name", "days", "first", "last"),
    [
        ("sp500", 5031, "1999-01-04", "2018-12-31"),
        ("nasdaq", 5031, "1999-01-04", "2018-12-31"),
        ("msft", 7983, "1986-03-13", "2017-11-10"),
    ],
)
def test_builtin_series_ship_inside_packages(name: str, days: int, first: str, last: str):
    features = ["log_return", "log_range", "volume_change"]
    config = DataConfig(source=f"builtin:{name}", series=SeriesConfig(features=features))
    series = load_series(config)
    assert series.raw.shape == (days, 4)
    assert (str(series.dates[0])[:10], str(series.dates[-1])[:10]) == (first, last)
    assert series.roles == ["price", "high", "low", "volume"]


def test_predict_forecasts_every_window_of_a_series(csv_run: Path, tmp_path: Path):
    path = write(tmp_path, prices(400).iloc[-60:].reset_index(drop=True))
    output = tmp_path / "forecasts.csv"
    result = invoke("predict", str(csv_run), "--data", f"csv:{path}", "--output", str(output))
    assert result.exit_code == 0, result.output
    forecasts = pd.read_csv(output)
    head = json.loads((csv_run / "metrics.json").read_text())["data"]["series"]
    assert len(forecasts) == 60 - head["window_rows"] + 1  # the last one forecasts a new day
    assert forecasts["date"].iloc[-1] == prices(400)["date"].iloc[-1]
    last_prices = prices(400)["close"].to_numpy()[-len(forecasts) :]
    expected = last_prices * np.exp(forecasts["log_return"].to_numpy())
    np.testing.assert_allclose(forecasts["price"].to_numpy(), expected, rtol=1e-5)
