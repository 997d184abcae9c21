"""Trading signals: classify the next day's direction, then trade the prediction.

The signal computed from the window ending at day t (data up to t's close) sets the
position held over day t+1: long (1) when the probability of an up day is at least 0.5,
otherwise flat (0). It earns that day's simple return, less ``cost_bps`` basis points per
unit of position change (entering the market from flat at the start counts as one). The
backtest reports cumulative return, annualised Sharpe ratio (252 days, no risk-free
rate), maximum drawdown, hit rate (share of days in the market that gained), exposure and
trades, beside buy-and-hold and a logistic regression on the same window features.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit.config import RunConfig, fail
from dltoolkit.data.series import SeriesSplits
from dltoolkit.plots import pyplot, save_figure
from dltoolkit.tasks.series import SeriesTask, target_dates, window_features

TRADING_DAYS = 252


def daily_net_returns(
    positions: np.ndarray, log_returns: np.ndarray, cost_bps: float
) -> np.ndarray:
    """Each day's simple return of a long/flat position after costs: ``position *
    (exp(log_return) - 1) - cost * |position change|`` (starting flat)."""
    positions = np.asarray(positions, np.float64)
    changes = np.abs(np.diff(positions, prepend=0.0))
    return positions * np.expm1(np.asarray(log_returns, np.float64)) - changes * cost_bps / 1e4


def backtest(
    positions: np.ndarray, log_returns: np.ndarray, cost_bps: float
) -> dict[str, float | int]:
    """Long/flat backtest of ``positions[i]`` (0 or 1) held over a day whose log return is
    ``log_returns[i]``.

    Returns cumulative return, annualised Sharpe ratio, maximum drawdown (a fraction of the
    running peak), hit rate, exposure (share of days long) and trades (position changes).
    """
    positions = np.asarray(positions, np.float64)
    simple = np.expm1(np.asarray(log_returns, np.float64))
    changes = np.abs(np.diff(positions, prepend=0.0))
    net = daily_net_returns(positions, log_returns, cost_bps)
    equity = np.cumprod(1.0 + net)
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    spread = float(np.std(net, ddof=1)) if len(net) > 1 else 0.0
    invested = positions > 0
    return {
        "cumulative_return": float(equity[-1] - 1.0),
        "sharpe": float(np.mean(net) / spread * math.sqrt(TRADING_DAYS)) if spread > 0 else 0.0,
        "max_drawdown": float(np.max(1.0 - equity / peak)),
        "hit_rate": float(np.mean(simple[invested] > 0)) if invested.any() else None,
        "exposure": float(np.mean(invested)),
        "trades": int(changes.sum()),
    }


def signal_scores(
    y: np.ndarray, probability: np.ndarray | None, positions: np.ndarray, log_returns, cost_bps
) -> dict[str, Any]:
    """Accuracy and ROC-AUC of the direction calls, and the backtest of the positions."""
    from sklearn.metrics import roc_auc_score

    positions = np.asarray(positions).reshape(len(y))
    both = len(np.unique(y)) == 2 and probability is not None
    return {
        "accuracy": float(np.mean(positions == y)),
        "roc_auc": float(roc_auc_score(y, np.reshape(probability, len(y)))) if both else None,
        "up_days": float(np.mean(y)),
        **backtest(positions, log_returns, cost_bps),
    }


def next_day_returns(data: Any, ends: np.ndarray) -> np.ndarray:
    """The log return of day t+1 for each window ending at day t."""
    log_price = data.series.log_price
    return log_price[ends + 1] - log_price[ends]


class SignalTask(SeriesTask):
    """Next-day direction (class 1 = up) traded long/flat."""

    name = "signal"
    default_loss = "binary_crossentropy"
    summary = ("accuracy", "sharpe", "cumulative_return")
    classes = True
    reference = "buy_and_hold"
    class_names = ("down", "up")
    headline_score = "sharpe"

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """A direction target, traded every next day."""
        super().check_config(config)
        series = config.data.series
        if series.target != "direction":
            fail("data.series.target", series.target, "direction for task signal")
        if series.horizon != 1 or series.stride != 1:
            fail(
                "data.series.horizon and stride",
                [series.horizon, series.stride],
                "[1, 1] for task signal (the backtest trades every next day)",
            )

    def __init__(self, config: RunConfig):
        super().__init__(config)
        self.cost_bps = config.data.series.cost_bps

    def head(self, data: SeriesSplits) -> dict[str, Any]:
        """One sigmoid unit: the probability of an up day."""
        return {"output_units": 1, "output_activation": "sigmoid"}

    def metrics(self) -> list[Any]:
        """Accuracy and ROC-AUC per epoch."""
        return [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]

    def decision(self, data: SeriesSplits, model: keras.Model) -> dict[str, Any]:
        """Long at a probability of 0.5 or more (not tuned: tuning it on validation days
        fits the threshold to one stretch of the market)."""
        return {"threshold": 0.5}

    def score(self, data: SeriesSplits, outputs: np.ndarray, decision: Any) -> dict[str, Any]:
        """Direction and backtest scores of the model's probabilities on the test span."""
        probability = np.reshape(outputs, len(data.y_test))
        return signal_scores(
            data.y_test,
            probability,
            (probability >= 0.5).astype(np.int64),
            next_day_returns(data, data.ends_test),
            self.cost_bps,
        )

    def baselines(self, data: SeriesSplits) -> list[dict[str, Any]]:
        """Buy-and-hold and a logistic regression on the flattened window features."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        returns = next_day_returns(data, data.ends_test)
        train, test = (
            window_features(data, x).reshape(len(x), -1) for x in (data.x_train, data.x_test)
        )
        start = time.perf_counter()
        logistic = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        logistic.fit(train, data.y_train)
        seconds = round(time.perf_counter() - start, 4)
        probability = logistic.predict_proba(test)[:, 1]
        always = np.ones(len(data.y_test), np.int64)
        return [
            {
                "name": "buy_and_hold",
                "test": signal_scores(data.y_test, None, always, returns, self.cost_bps),
                "parameters": 0,
                "train_seconds": 0.0,
                "predictions": always.astype(np.float64),
            },
            {
                "name": "logistic_regression",
                "test": signal_scores(
                    data.y_test,
                    probability,
                    (probability >= 0.5).astype(np.int64),
                    returns,
                    self.cost_bps,
                ),
                "parameters": int(train.shape[1] + 1),
                "train_seconds": seconds,
                "predictions": probability,
            },
        ]

    def daily_losses(self, data: SeriesSplits, predictions: np.ndarray) -> np.ndarray:
        """The negative net return of trading the signal."""
        returns = next_day_returns(data, data.ends_test)
        return -daily_net_returns(predictions >= 0.5, returns, self.cost_bps)

    def plot(
        self,
        run_dir: Path,
        data: SeriesSplits,
        outputs: np.ndarray,
        baselines: dict[str, np.ndarray],
    ) -> None:
        """``forecast.png``: the strategies' equity curves over the test span."""
        plt = pyplot()
        dates = target_dates(data)
        figure, axis = plt.subplots(figsize=(10, 4.5))
        returns = next_day_returns(data, data.ends_test)
        for label, positions in (
            ("network long/flat", outputs >= 0.5),
            ("logistic regression long/flat", baselines["logistic_regression"] >= 0.5),
            ("buy and hold", np.ones(len(outputs))),
        ):
            net = daily_net_returns(positions, returns, self.cost_bps)
            axis.plot(dates, np.cumprod(1.0 + net), label=label)
        axis.set_ylabel("equity (start = 1)")
        axis.set_title(f"{self.config.name}: test span, costs {self.cost_bps:g} bps")
        axis.legend()
        figure.autofmt_xdate()
        save_figure(figure, run_dir / "forecast.png", dpi=110)

    @classmethod
    def serving_outputs(cls, model: Any, head: dict[str, Any]) -> Callable:
        """``probability`` of an up day and the long/flat ``signal``."""
        import tensorflow as tf

        threshold = float(head.get("decision", {}).get("threshold", 0.5))

        def signal(output, _):
            probability = tf.reshape(output, (-1,))
            return {
                "probability": probability,
                "signal": tf.cast(probability >= threshold, tf.int64),
            }

        return signal

    @classmethod
    def window_rows(
        cls,
        outputs: np.ndarray,
        dates: list[str],
        last_prices: np.ndarray,
        written: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """``probability_up`` and the ``signal`` at the run's threshold."""
        threshold = float(written.get("decision", {}).get("threshold", 0.5))
        return [
            {"date": d, "probability_up": float(p), "signal": int(p >= threshold)}
            for d, p in zip(dates, outputs, strict=True)
        ]
