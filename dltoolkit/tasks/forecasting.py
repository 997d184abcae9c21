"""Forecasting a price series: the log return to t + horizon (``data.series.target:
return``), or the realised variance of the days t+1 .. t+horizon (``volatility``), scored
beside the random walk, the last return and an autoregression, or GARCH(1,1), EWMA and
the last 20 days' variance (:mod:`dltoolkit.tasks.forecast_scores`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit.config import RunConfig, fail
from dltoolkit.data.series import SeriesSplits
from dltoolkit.models.losses import log_variance_qlike
from dltoolkit.plots import pyplot, save_figure
from dltoolkit.tasks.forecast_scores import (
    diebold_mariano,
    ewma_variance,
    qlike_losses,
    return_baselines,
    return_scores,
    variance_baselines,
    variance_scores,
)
from dltoolkit.tasks.series import SeriesTask, target_dates

__all__ = [
    "ForecastingTask",
    "diebold_mariano",
    "ewma_variance",
    "return_baselines",
    "variance_baselines",
]


class ForecastingTask(SeriesTask):
    """Regression of a series' future: a log return or a realised variance (by
    ``data.series.target``; the arrays carry it as ``data.target``)."""

    name = "forecasting"
    summary = ("rmse_return", "directional_accuracy")
    headline_score = "rmse_return"

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """A return or volatility target; a variance trains on QLIKE only."""
        super().check_config(config)
        series = config.data.series
        if series.target == "direction":
            fail("data.series.target", series.target, "return or volatility for task forecasting")
        if series.target == "volatility" and config.train.loss is not None:
            fail(
                "train.loss",
                config.train.loss,
                "null for target volatility (the network outputs a log variance trained on QLIKE)",
            )

    @property
    def volatility(self) -> bool:
        """Whether the target is a realised variance (else a log return)."""
        return self.config.data.series.target == "volatility"

    @property
    def headline(self) -> str:
        """QLIKE for a variance, RMSE of the log return otherwise."""
        return "qlike" if self.volatility else "rmse_return"

    @classmethod
    def headline_for(cls, written: dict[str, Any]) -> str:
        """QLIKE where the run scored variances, RMSE of the log return otherwise."""
        return "qlike" if "qlike" in written.get("test", {}) else "rmse_return"

    @property
    def reference(self) -> str:
        """GARCH(1,1) for a variance, the random walk for a return."""
        return "garch_1_1" if self.volatility else "random_walk"

    # === The network ===

    def head(self, data: SeriesSplits) -> dict[str, Any]:
        """One linear unit: a standardised return, or a log variance."""
        return {"output_units": 1, "output_activation": None}

    def loss(self) -> Any:
        """Mean squared error of a standardised return; QLIKE of a log variance."""
        return log_variance_qlike if self.volatility else "mse"

    def fit_arrays(self, data: SeriesSplits) -> tuple[np.ndarray, ...]:
        """Returns standardised by the training mean and spread; variances divided by the
        training mean variance, so a zero output means "an average day"."""
        offset, scale = self.target_scale(data)
        return (
            data.x_train,
            (data.y_train - offset) / scale,
            data.x_val,
            (data.y_val - offset) / scale,
        )

    def trained(self, model: keras.Model, data: SeriesSplits) -> keras.Model:
        """The model answering in the target's units: a log return, or a variance."""
        offset, scale = self.target_scale(data)
        output = model.outputs[0]
        if self.volatility:
            output = keras.layers.Activation("exponential", name="variance_ratio")(output)
        output = keras.layers.Rescaling(scale, offset=offset, name="target_scale")(output)
        return keras.Model(model.inputs, output, name=model.name)

    def target_scale(self, data: SeriesSplits) -> tuple[float, float]:
        """Offset and scale of the target on the training windows."""
        if self.volatility:
            return 0.0, float(np.mean(data.y_train)) or 1.0
        return float(np.mean(data.y_train)), float(np.std(data.y_train)) or 1.0

    # === Evaluation ===

    def decision(self, data: SeriesSplits, model: keras.Model) -> dict[str, Any]:
        """Nothing to decide."""
        return {}

    def score(self, data: SeriesSplits, outputs: np.ndarray, decision: Any) -> dict[str, Any]:
        """Test scores of the trained model's outputs."""
        outputs = np.reshape(outputs, -1)
        if self.volatility:
            return variance_scores(data.y_test, outputs)
        return return_scores(data.y_test, outputs, data.series.log_price[data.ends_test])

    def baselines(self, data: SeriesSplits) -> list[dict[str, Any]]:
        """The target's baselines on the same test windows."""
        return variance_baselines(data) if self.volatility else return_baselines(data)

    def daily_losses(self, data: SeriesSplits, predictions: np.ndarray) -> np.ndarray:
        """QLIKE of a variance, the squared error of a return."""
        if self.volatility:
            return qlike_losses(data.y_test, predictions)
        return (np.reshape(predictions, len(data.y_test)) - data.y_test) ** 2

    def plot(
        self,
        run_dir: Path,
        data: SeriesSplits,
        outputs: np.ndarray,
        baselines: dict[str, np.ndarray],
    ) -> None:
        """``forecast.png``: realised and forecast volatility, or actual and forecast
        prices above the returns."""
        plt = pyplot()
        dates = target_dates(data)
        name = self.config.name
        if self.volatility:
            figure, axis = plt.subplots(figsize=(10, 4.5))
            annualise = lambda v: np.sqrt(np.asarray(v) * 252) * 100  # noqa: E731
            axis.plot(dates, annualise(data.y_test), color="0.7", lw=0.8, label="realised")
            axis.plot(dates, annualise(outputs), label="network")
            axis.plot(dates, annualise(baselines["garch_1_1"]), label="GARCH(1,1)")
            axis.set_ylabel(f"annualised volatility % (next {data.horizon} days)")
            axis.set_title(f"{name}: test span")
        else:
            figure, (top, axis) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
            last = data.series.log_price[data.ends_test]
            top.plot(dates, np.exp(last + data.y_test), color="0.3", lw=0.9, label="actual")
            top.plot(dates, np.exp(last + outputs), lw=0.9, label="network forecast")
            top.set_ylabel(f"price in {data.horizon} day(s)")
            top.set_title(f"{name}: test span")
            top.legend()
            axis.plot(dates, data.y_test, color="0.7", lw=0.6, label="actual")
            axis.plot(dates, outputs, lw=0.9, label="network")
            axis.plot(dates, baselines["autoregression"], lw=0.9, label="autoregression")
            axis.set_ylabel("log return")
        axis.legend()
        figure.autofmt_xdate()
        save_figure(figure, run_dir / "forecast.png", dpi=110)

    # === Serving ===

    @classmethod
    def serving_outputs(cls, model: Any, head: dict[str, Any]) -> Callable:
        """``variance`` and ``volatility``, or ``log_return`` and the ``price`` it implies
        from the window's last price."""
        import tensorflow as tf

        if head.get("series", {}).get("target") == "volatility":

            def volatility(output, _):
                variance = tf.reshape(output, (-1,))
                return {"variance": variance, "volatility": tf.sqrt(variance)}

            return volatility

        def price(output, window):
            log_return = tf.reshape(output, (-1,))
            last_price = tf.cast(window[:, -1, 0], log_return.dtype)
            return {"log_return": log_return, "price": last_price * tf.exp(log_return)}

        return price

    @classmethod
    def window_rows(
        cls,
        outputs: np.ndarray,
        dates: list[str],
        last_prices: np.ndarray,
        written: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """``variance`` and ``volatility``, or ``log_return`` and ``price``."""
        if written["data"]["series"]["target"] == "volatility":
            return [
                {"date": d, "variance": float(v), "volatility": float(np.sqrt(v))}
                for d, v in zip(dates, outputs, strict=True)
            ]
        return [
            {"date": d, "log_return": float(r), "price": float(p * np.exp(r))}
            for d, r, p in zip(dates, outputs, last_prices, strict=True)
        ]
