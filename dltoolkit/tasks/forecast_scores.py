"""Scores and baselines of price-series forecasts (the log return to t + horizon, or the
realised variance of the days t+1 .. t+horizon): the naive and classical forecasts a
quantitative analyst checks first, scored beside the network on the same test windows.

Returns: RMSE and MAE of returns and of the implied prices, and directional accuracy;
baselines: the random walk (tomorrow's price is today's: a zero return), the last return
repeated, and a linear autoregression on the window's daily returns. Variance: MSE and
QLIKE (``mean(log(forecast) + realised / forecast)``: the Gaussian negative
log-likelihood, lower is better, robust to the noise of a realised-variance proxy), in
squared percent; baselines: GARCH(1,1) fitted with ``arch`` on the training span and run
forward with those parameters, RiskMetrics' EWMA (lambda 0.94) and the last 20 days'
variance.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

PERCENT_SQUARED = 1e4  # variances are reported in squared percent (a daily 1% move = 1.0)
EWMA_DECAY = 0.94


def return_scores(
    y: np.ndarray, predicted: np.ndarray, last_log_price: np.ndarray
) -> dict[str, float | None]:
    """RMSE/MAE of log returns and of the prices they imply, and directional accuracy
    (None for a forecast that never takes a direction, such as the random walk)."""
    predicted = np.asarray(predicted, np.float64).reshape(len(y))
    price, forecast_price = np.exp(last_log_price + y), np.exp(last_log_price + predicted)
    directed = predicted != 0
    return {
        "rmse_return": float(np.sqrt(np.mean((predicted - y) ** 2))),
        "mae_return": float(np.mean(np.abs(predicted - y))),
        "rmse_price": float(np.sqrt(np.mean((forecast_price - price) ** 2))),
        "mae_price": float(np.mean(np.abs(forecast_price - price))),
        "directional_accuracy": (
            float(np.mean(np.sign(predicted[directed]) == np.sign(y[directed])))
            if directed.any()
            else None
        ),
    }


def qlike_losses(realised: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """Each day's QLIKE loss ``log(forecast) + realised / forecast``, in squared percent."""
    realised = np.asarray(realised, np.float64) * PERCENT_SQUARED
    forecast = np.asarray(forecast, np.float64).reshape(len(realised)) * PERCENT_SQUARED
    forecast = np.maximum(forecast, 1e-12)
    return np.log(forecast) + realised / forecast


def variance_scores(realised: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    """MSE, MAE and QLIKE of variance forecasts, in squared percent."""
    error = (np.reshape(forecast, len(realised)) - realised) * PERCENT_SQUARED
    return {
        "mse": float(np.mean(error**2)),
        "mae": float(np.mean(np.abs(error))),
        "qlike": float(np.mean(qlike_losses(realised, forecast))),
    }


def diebold_mariano(
    loss: np.ndarray, reference_loss: np.ndarray, horizon: int = 1
) -> dict[str, float]:
    """Diebold-Mariano test of equal expected loss of two forecasts of the same days.

    The loss differences' long-run variance is Newey-West with ``horizon - 1`` lags (the
    overlap of h-step forecasts). A negative statistic means the first forecast's losses
    are lower; ``p_value`` is two-sided under the normal approximation.
    """
    from scipy.stats import norm

    difference = np.asarray(loss, np.float64) - np.asarray(reference_loss, np.float64)
    count = len(difference)
    centred = difference - difference.mean()
    variance = float(centred @ centred) / count
    for lag in range(1, horizon):
        variance += 2 * (1 - lag / horizon) * float(centred[lag:] @ centred[:-lag]) / count
    if variance <= 0:
        return {"statistic": 0.0, "p_value": 1.0, "mean_loss_difference": 0.0}
    statistic = float(difference.mean() / np.sqrt(variance / count))
    return {
        "statistic": statistic,
        "p_value": float(2 * norm.sf(abs(statistic))),
        "mean_loss_difference": float(difference.mean()),
    }


def daily_returns(log_price: np.ndarray) -> np.ndarray:
    """Daily log returns; element i is the return of day i + 1."""
    return np.diff(log_price)


def _timed(function, *args) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function(*args)
    return result, round(time.perf_counter() - start, 4)


def return_baselines(data: Any) -> list[dict[str, Any]]:
    """Random walk, last return and a linear autoregression on the last ``lookback`` daily
    returns (fitted on the training windows), scored on the test windows."""
    from sklearn.linear_model import LinearRegression

    log_price, horizon = data.series.log_price, data.horizon
    returns = daily_returns(log_price)
    # The lookback's daily returns, as far back as the first training window allows (a
    # window without warm-up rows starts on the series' first day, which has no return).
    lags = min(data.lookback, int(data.ends_train[0]))

    def lagged(ends: np.ndarray) -> np.ndarray:
        # The window's last ``lags`` daily returns, oldest first (days t-lags+1 .. t).
        return np.stack([returns[ends - lags + step] for step in range(lags)], axis=1)

    ends = data.ends_test
    last = log_price[ends]
    forecasts = {
        "random_walk": (np.zeros(len(ends)), 0.0, 0),
        "last_return": (log_price[ends] - log_price[ends - horizon], 0.0, 0),
    }
    regression, seconds = _timed(LinearRegression().fit, lagged(data.ends_train), data.y_train)
    forecasts["autoregression"] = (regression.predict(lagged(ends)), seconds, lags + 1)
    return [
        {
            "name": name,
            "test": return_scores(data.y_test, predicted, last),
            "parameters": parameters,
            "train_seconds": seconds,
            "predictions": predicted,
        }
        for name, (predicted, seconds, parameters) in forecasts.items()
    ]


def garch_variance(data: Any) -> tuple[np.ndarray, float, dict[str, float]]:
    """GARCH(1,1) forecasts of the mean daily variance over each test window's horizon.

    Fitted (constant mean, normal errors) on the returns of the training span, then run
    forward over the whole series with those parameters: the forecast at day t uses
    returns up to t only.
    """
    try:
        from arch import arch_model
    except ImportError:
        from dltoolkit.errors import DltkError

        raise DltkError(
            "the GARCH baseline needs the arch package; install it with: "
            'pip install "dltoolkit[datasets]"'
        ) from None
    returns = daily_returns(data.series.log_price) * 100.0
    last_training_day = int(data.ends_train[-1]) + data.horizon
    model = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1, rescale=False)
    start = time.perf_counter()
    fitted = model.fit(last_obs=last_training_day, disp="off")
    seconds = round(time.perf_counter() - start, 4)
    # The forecast made after return index j (day j + 1) is the one for the window ending
    # at day t = j + 1.
    first = int(data.ends_test[0]) - 1
    forecast = fitted.forecast(horizon=data.horizon, start=first, reindex=False)
    variance = forecast.variance.to_numpy()[data.ends_test - 1 - first].mean(axis=1)
    parameters = {name: float(value) for name, value in fitted.params.items()}
    return variance / PERCENT_SQUARED, seconds, parameters


def ewma_variance(log_price: np.ndarray, ends: np.ndarray, decay: float = EWMA_DECAY):
    """RiskMetrics' exponentially weighted variance through each day t in ``ends``."""
    from scipy.signal import lfilter

    squared = daily_returns(log_price) ** 2
    start = squared[:20].mean()
    smoothed, _ = lfilter([1 - decay], [1, -decay], squared, zi=[decay * start])
    return smoothed[ends - 1]


def variance_baselines(data: Any) -> list[dict[str, Any]]:
    """GARCH(1,1), EWMA and the last 20 days' variance, scored on the test windows."""
    squared = daily_returns(data.series.log_price) ** 2
    ends = data.ends_test
    garch, seconds, parameters = garch_variance(data)
    forecasts = {
        "garch_1_1": (garch, seconds, len(parameters)),
        "ewma_0.94": (ewma_variance(data.series.log_price, ends), 0.0, 0),
        "historical_20d": (
            np.stack([squared[ends - 1 - lag] for lag in range(20)], axis=1).mean(axis=1),
            0.0,
            0,
        ),
    }
    results = []
    for name, (forecast, train_seconds, count) in forecasts.items():
        entry = {
            "name": name,
            "test": variance_scores(data.y_test, forecast),
            "parameters": count,
            "train_seconds": train_seconds,
            "predictions": forecast,
        }
        if name == "garch_1_1":
            entry["fitted"] = parameters
        results.append(entry)
    return results
