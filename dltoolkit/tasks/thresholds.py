"""Decision thresholds, chosen on the validation split by F1, a precision or recall
target, or least cost in money; what flagging or passing each row costs, and the test
split's money view (cost with the model, without one, value caught).

Per row, flagging costs the review fee, plus the false-positive cost when the row is a
negative; letting it through costs the false-negative cost (or the row's amount) when it
is a positive. Letting everything through is the "no model" reference.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dltoolkit.config import CostConfig, DataConfig, ThresholdConfig
from dltoolkit.errors import DataError


@dataclasses.dataclass
class RowCosts:
    """What each row costs when flagged and when let through, and its amount (if any)."""

    flagged: np.ndarray
    passed: np.ndarray
    amounts: np.ndarray | None = None


def has_cost_model(costs: CostConfig, data: DataConfig) -> bool:
    """Whether a run prices its decisions (any cost set, or an amount column)."""
    return costs.priced() or data.amount_column is not None


def row_costs(y: np.ndarray, costs: CostConfig, amounts: np.ndarray | None) -> RowCosts:
    """Each row's cost when flagged and when let through, for labels ``y`` (1 positive)."""
    y = np.asarray(y)
    flagged = costs.review + np.where(y == 0, costs.false_positive, 0.0)
    missed = costs.false_negative if amounts is None else np.asarray(amounts, np.float64)
    passed = np.where(y == 1, missed, 0.0)
    return RowCosts(flagged.astype(np.float64), passed.astype(np.float64), amounts)


def choose_threshold(
    y: np.ndarray, p: np.ndarray, config: ThresholdConfig, costs: RowCosts | None = None
) -> dict[str, Any]:
    """The decision threshold for ``config.objective`` on validation labels and scores
    (``costs``: the validation rows' costs, for the ``cost`` objective).

    Returns ``{"threshold", "objective", "target", "met"}``; ``met`` is False when no
    threshold reaches a precision or recall target (then the best-F1 threshold is used).
    """
    from sklearn.metrics import precision_recall_curve

    chosen = {"objective": config.objective, "target": config.target, "met": True}
    if config.objective == "fixed":
        return {"threshold": float(config.target), **chosen}
    if config.objective == "cost":
        if costs is None:
            raise DataError("train.threshold.objective 'cost' needs a cost model (train.costs).")
        return {**least_cost_threshold(p, costs), **chosen}
    precision, recall, thresholds = precision_recall_curve(y, p)
    # precision[i], recall[i] hold for predicting positive when p >= thresholds[i].
    precision, recall = precision[:-1], recall[:-1]
    f1 = np.where(
        precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0
    )
    best_f1 = int(np.argmax(f1))
    if config.objective == "f1":
        index = best_f1
    elif config.objective == "precision":
        reached = np.flatnonzero(precision >= config.target)
        chosen["met"] = len(reached) > 0
        index = int(reached[np.argmax(recall[reached])]) if chosen["met"] else best_f1
    else:
        reached = np.flatnonzero(recall >= config.target)
        chosen["met"] = len(reached) > 0
        index = int(reached[-1]) if chosen["met"] else best_f1
    return {"threshold": float(thresholds[index]), **chosen}


def least_cost_threshold(scores: np.ndarray, costs: RowCosts) -> dict[str, Any]:
    """The threshold (flag ``score >= threshold``) of least total cost on these rows.

    Every distinct score is a candidate, and so is flagging nothing (a threshold above the
    highest score). Ties in the total cost go to the higher threshold (fewer alerts).
    """
    scores = np.asarray(scores, np.float64)
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    # Flagging the top k rows: the flagged costs of those, the passed costs of the rest.
    extra = np.concatenate([[0.0], np.cumsum(costs.flagged[order] - costs.passed[order])])
    totals = costs.passed.sum() + extra
    # Only cut between distinct scores: k rows flagged where ranked[k - 1] > ranked[k].
    cuts = np.concatenate([[True], ranked[:-1] > ranked[1:], [True]])
    candidates = np.flatnonzero(cuts)
    best = int(candidates[np.argmin(totals[candidates])])
    if best == 0:  # above every score, also where a served model compares in float32
        threshold = float(np.nextafter(np.float32(ranked[0]), np.float32(np.inf)))
    else:
        threshold = float(ranked[best - 1])
    return {"threshold": threshold, "validation_cost": float(totals[best])}


def money_view(
    y: np.ndarray, scores: np.ndarray, threshold: float, costs: RowCosts, currency: str = ""
) -> dict[str, Any]:
    """The money figures of the decisions ``scores >= threshold`` on labelled rows."""
    y = np.asarray(y)
    flagged = np.asarray(scores) >= threshold
    total = float(np.where(flagged, costs.flagged, costs.passed).sum())
    without = float(costs.passed.sum())
    view = {
        "currency": currency,
        "total_cost": total,
        "cost_without_model": without,
        "saving": without - total,
        "cost_per_row": total / max(len(y), 1),
        "alerts_per_1000": float(1000 * flagged.mean()) if len(y) else 0.0,
        "positives_caught": int(np.sum(flagged & (y == 1))),
        "positives": int(np.sum(y == 1)),
    }
    if costs.amounts is not None:
        positive_value = float(costs.amounts[y == 1].sum())
        caught = float(costs.amounts[flagged & (y == 1)].sum())
        view["value_caught"] = caught
        view["value_of_positives"] = positive_value
        view["share_of_value_caught"] = caught / positive_value if positive_value else None
    return view
