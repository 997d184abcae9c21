"""Calibrating scores into probabilities, and judging how calibrated probabilities are.

A calibration is fitted on the validation split after training (never on the rows the
model or baseline trained on, and never weighted by class weights: balanced weights are
what inflates a network's probabilities in the first place). Its parameters are those of
the :class:`~dltoolkit.layers.Calibration` layer, which applies it inside the saved and
exported model; :func:`apply_calibration` applies the same map to a baseline's NumPy
scores.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from dltoolkit.errors import DataError
from dltoolkit.layers import Calibration

# Isotonic regression fits a step per run of ties in the labels: with fewer validation
# positives (or negatives) than this its map is a handful of steps fitted to noise.
ISOTONIC_MIN_PER_CLASS = 30
# The least slope of a logistic map: it stays strictly increasing (ranking kept).
MIN_SLOPE = 1e-3
# Bootstrap resamples behind the interval of the expected calibration error.
BOOTSTRAP_RESAMPLES = 200


def fit_calibration(method: str, y: np.ndarray, scores: np.ndarray, transform: str) -> dict:
    """The :class:`Calibration` layer arguments of ``method`` (``platt``, ``temperature``
    or ``isotonic``) fitted on validation labels ``y`` and scores, which are probabilities
    (``transform="logit"``) or positive scores (``"log"``)."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y, np.int64)
    positives, negatives = check_validation_rows(method, y)
    z = transformed(np.asarray(scores, np.float64), transform)
    if method == "isotonic":
        fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(z, y)
        # The layer computes in float32: knots a few float64 ulps apart would fall together
        # there, so keep the last knot of each float32 value.
        knots_x = fitted.X_thresholds_.astype(np.float32)
        last = np.append(knots_x[1:] > knots_x[:-1], True)
        return {
            "method": "isotonic",
            "transform": transform,
            "knots_x": knots_x[last].astype(np.float64).tolist(),
            "knots_y": fitted.y_thresholds_[last].tolist(),
        }
    # An unpenalised logistic regression of the labels on z (C=inf: no shrinkage toward 0);
    # temperature scaling has no intercept, so its only number is the slope 1 / T.
    with_intercept = method == "platt"
    fitted = LogisticRegression(C=np.inf, fit_intercept=with_intercept, max_iter=1000)
    fitted.fit(z.reshape(-1, 1), y)
    slope = float(fitted.coef_[0, 0])
    intercept = float(fitted.intercept_[0]) if with_intercept else 0.0
    if not slope > MIN_SLOPE:
        # Higher scores are not more often positive on validation (an untrained or useless
        # model): the best increasing map is then nearly flat at the base rate. Keep it
        # strictly increasing, so the ranking the test split judges is the model's own.
        warnings.warn(
            f"train.calibration {method!r}: the validation scores do not rank the positives "
            f"(fitted slope {slope:.3g}); the calibrated probabilities are close to the base "
            "rate. The model is no better than chance on validation.",
            stacklevel=2,
        )
        slope = MIN_SLOPE
        intercept = (
            float(np.log(positives / negatives) - slope * np.mean(z)) if with_intercept else 0.0
        )
    return {"method": "logistic", "transform": transform, "slope": slope, "intercept": intercept}


def check_validation_rows(method: str, y: np.ndarray) -> tuple[int, int]:
    """The validation split's positive and negative rows, where ``method`` can be fitted
    on them; else a one-line error saying how many were found and how many are needed."""
    y = np.asarray(y)
    positives, negatives = int(np.sum(y == 1)), int(np.sum(y == 0))
    if min(positives, negatives) == 0:
        raise DataError(
            f"train.calibration {method!r} needs both classes in the validation split, which "
            f"holds {positives} positive and {negatives} negative rows; set "
            "train.calibration=none or use a larger data.validation_split."
        )
    if method == "isotonic" and min(positives, negatives) < ISOTONIC_MIN_PER_CLASS:
        raise DataError(
            f"train.calibration 'isotonic' needs at least {ISOTONIC_MIN_PER_CLASS} "
            f"validation rows of each class, found {positives} positive and {negatives} "
            "negative; use platt (two numbers) or a larger data.validation_split."
        )
    return positives, negatives


def calibration_layer(arguments: dict, name: str = "calibration") -> Calibration:
    """The layer that applies a fitted calibration inside a model."""
    return Calibration(**arguments, name=name)


def apply_calibration(arguments: dict, scores: np.ndarray) -> np.ndarray:
    """The probabilities a fitted calibration gives ``scores`` (the layer's map in NumPy)."""
    z = transformed(np.asarray(scores, np.float64), arguments["transform"])
    if arguments["method"] == "logistic":
        return 1.0 / (1.0 + np.exp(-(arguments["slope"] * z + arguments["intercept"])))
    return np.interp(z, arguments["knots_x"], arguments["knots_y"])


def transformed(scores: np.ndarray, transform: str) -> np.ndarray:
    """Scores on the unbounded scale the calibration is fitted on (as the layer computes)."""
    if transform == "logit":
        # The layer's float32 bounds, so that saturated scores map alike in both.
        p = np.clip(scores, float(np.float32(1e-7)), float(np.float32(1 - 1e-7)))
        return np.log(p) - np.log1p(-p)
    return np.log(np.maximum(scores, 0.0) + 1e-12)


# === How calibrated probabilities are ===


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Reliability table over equal-count bins of ``p``, and the expected calibration
    error (bin-size-weighted mean gap between predicted and observed positive rates)."""
    order = np.argsort(p, kind="stable")
    groups = [group for group in np.array_split(order, min(bins, len(p))) if len(group)]
    predicted = [float(np.mean(p[group])) for group in groups]
    observed = [float(np.mean(y[group])) for group in groups]
    sizes = [len(group) for group in groups]
    gaps = np.abs(np.asarray(predicted) - np.asarray(observed))
    return {
        "calibration": {"predicted": predicted, "observed": observed, "count": sizes},
        "expected_calibration_error": float(np.average(gaps, weights=sizes)),
    }


def ece_interval(y: np.ndarray, p: np.ndarray, level: float = 0.9, bins: int = 10) -> list[float]:
    """A bootstrap interval (``level``, percentile method, seeded) of the expected
    calibration error: on a few hundred rows a perfectly calibrated model shows an ECE
    of several hundredths from sampling alone, so the point figure needs its spread.

    The rows are sorted once; a resample is a count of draws per row, and its equal-count
    bins are cut on the running count (a row drawn several times goes to the bin where
    its first draw falls), so each resample costs a few passes over the rows, not a sort.
    """
    rng = np.random.default_rng(0)
    order = np.argsort(np.asarray(p, np.float64), kind="stable")
    p, y = np.asarray(p, np.float64)[order], np.asarray(y, np.float64)[order]
    rows = len(p)
    draws = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        counts = np.bincount(rng.integers(0, rows, rows), minlength=rows)
        first = np.cumsum(counts) - counts  # the resample's position of each row's first draw
        group = np.minimum(first * min(bins, rows) // rows, bins - 1)
        size = np.bincount(group, weights=counts, minlength=bins)
        predicted = np.bincount(group, weights=counts * p, minlength=bins)
        observed = np.bincount(group, weights=counts * y, minlength=bins)
        used = size > 0
        gaps = np.abs(predicted[used] - observed[used]) / size[used]
        draws.append(float(np.sum(gaps * size[used]) / rows))
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))]


def probability_scores(y: np.ndarray, p: np.ndarray, interval: bool = True) -> dict[str, Any]:
    """How good ``p`` is as a probability: Brier score, log loss, the reliability table,
    the expected calibration error and (``interval``) its bootstrap interval."""
    from sklearn.metrics import brier_score_loss, log_loss

    y = np.asarray(y)
    scores = {
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        **reliability(y, p),
    }
    if interval:
        scores["expected_calibration_error_interval"] = ece_interval(y, p)
    return scores
