"""Credit-scorecard points from a probability of default: ``offset + factor * ln(odds)``
with good:bad odds ``(1 - p) / p``, ``factor = PDO / ln 2`` and ``offset`` putting the base
score at the base odds (600 points at 50:1 with 20 points to double the odds, by default).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dltoolkit.config import ScorecardConfig

# Probabilities are clipped to [EPSILON, 1 - EPSILON] before taking odds (finite points).
EPSILON = 1e-6


def scale(config: ScorecardConfig) -> dict[str, float]:
    """The scale of ``config``: its settings, ``factor`` and ``offset``."""
    factor = config.points_to_double_odds / math.log(2.0)
    return {
        "base_score": config.base_score,
        "base_odds": config.base_odds,
        "points_to_double_odds": config.points_to_double_odds,
        "factor": factor,
        "offset": config.base_score - factor * math.log(config.base_odds),
    }


def points(probability: np.ndarray, scale: dict[str, float]) -> np.ndarray:
    """Scorecard points of probabilities of the positive (bad) class."""
    p = np.clip(np.asarray(probability, np.float64), EPSILON, 1 - EPSILON)
    return scale["offset"] + scale["factor"] * (np.log1p(-p) - np.log(p))


def points_tensor(probability: Any, scale: dict[str, float]) -> Any:
    """:func:`points` in TensorFlow, for a SavedModel's serving signature."""
    import tensorflow as tf

    p = tf.clip_by_value(tf.cast(probability, tf.float64), EPSILON, 1 - EPSILON)
    return scale["offset"] + scale["factor"] * (tf.math.log1p(-p) - tf.math.log(p))


def distribution(y: np.ndarray, probability: np.ndarray, scale: dict[str, float]) -> dict:
    """Points of the test rows by class: count, mean and quartiles of goods and bads."""
    scored = points(probability, scale)
    summary = {}
    for name, rows in (("goods", np.asarray(y) == 0), ("bads", np.asarray(y) == 1)):
        values = scored[rows]
        summary[name] = {
            "count": int(rows.sum()),
            "mean": float(values.mean()) if len(values) else None,
            "quartiles": np.percentile(values, [25, 50, 75]).tolist() if len(values) else [],
        }
    return summary
