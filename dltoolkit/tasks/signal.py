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
from typing import Any

import numpy as np

from dltoolkit.config import ThresholdConfig
from dltoolkit.tasks.base import Supervised

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


class SignalTask(Supervised):
    """Next-day direction (class 1 = up) traded long/flat."""

    name = "signal"
    default_loss = "binary_crossentropy"
    headline = "sharpe"
    summary = ("accuracy", "sharpe", "cumulative_return")
    classes = True

    def __init__(self, cost_bps: float = 5.0):
        self.cost_bps = cost_bps

    def head(self, num_classes: int) -> dict[str, Any]:
        """One sigmoid unit: the probability of an up day."""
        return {"output_units": 1, "output_activation": "sigmoid"}

    def metrics(self) -> list[Any]:
        """Accuracy and ROC-AUC per epoch."""
        import keras

        return [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]

    def decision(
        self, y_val: np.ndarray, outputs: np.ndarray, threshold: ThresholdConfig
    ) -> dict[str, Any]:
        """Long at a probability of 0.5 or more (not tuned: tuning it on validation days
        fits the threshold to one stretch of the market)."""
        return {"threshold": 0.5}

    def scores(self, data: Any, outputs: np.ndarray) -> dict[str, Any]:
        """Direction and backtest scores of the model's probabilities on the test span."""
        probability = np.reshape(outputs, len(data.y_test))
        return signal_scores(
            data.y_test,
            probability,
            (probability >= 0.5).astype(np.int64),
            next_day_returns(data, data.ends_test),
            self.cost_bps,
        )

    def baselines(self, data: Any, features: tuple[np.ndarray, np.ndarray]) -> list[dict]:
        """Buy-and-hold and a logistic regression on the flattened window features
        (``features``: training and test feature windows)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        returns = next_day_returns(data, data.ends_test)
        train, test = (f.reshape(len(f), -1) for f in features)
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
