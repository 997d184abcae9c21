"""Disparate impact of a binary decision across groups of applicants or customers.

A group is the rows sharing a value of a column (``personal_status_and_sex``), or the two
sides of a cut of a numeric column (``age_in_years<25``: below 25, and 25 or more). A row
is approved when it is not flagged (a credit application accepted, a transaction let
through). Per group: rows, approval rate, true and false positive rates, and the
disparate-impact ratio, its approval rate over that of the most approved group; a ratio
below 0.8 breaks the four-fifths rule of thumb used in US fair-lending and employment
practice.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from dltoolkit.errors import ConfigError, DataError

FOUR_FIFTHS = 0.8
_CUT = re.compile(r"^(?P<column>.+?)\s*<\s*(?P<value>[-+]?\d+(\.\d*)?([eE][-+]?\d+)?)$")


def group_column(spec: str) -> tuple[str, float | None]:
    """The column a ``report.fairness_groups`` entry audits, and its cut (or None)."""
    match = _CUT.match(spec.strip())
    if match:
        return match["column"].strip(), float(match["value"])
    if "<" in spec:
        raise ConfigError(
            f"report.fairness_groups entry {spec!r} is not COLUMN or COLUMN<NUMBER "
            "(e.g. age_in_years<25); fix the entry."
        )
    return spec.strip(), None


def group_labels(values: pd.Series, spec: str, source: str) -> np.ndarray:
    """Each test row's group under ``spec``; one line where a group has no test rows."""
    column, cut = group_column(spec)
    if cut is None:
        labels = values.astype(str).to_numpy()
    else:
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.isna().any():
            raise DataError(
                f"report.fairness_groups {spec!r}: column {column!r} of {source!r} is not "
                "numeric in every test row, so it cannot be cut; audit it by value "
                f"(report.fairness_groups: [{column}])."
            )
        below = numbers.to_numpy() < cut
        labels = np.where(below, f"{column} < {cut:g}", f"{column} >= {cut:g}")
        for name, count in ((f"< {cut:g}", below.sum()), (f">= {cut:g}", (~below).sum())):
            if count == 0:
                raise DataError(
                    f"report.fairness_groups {spec!r}: the test split of {source!r} has no "
                    f"row with {column} {name}; choose another cut."
                )
    return labels


def audit(y: np.ndarray, flagged: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Per group: rows, approval rate, true and false positive rates, disparate impact."""
    y, flagged = np.asarray(y), np.asarray(flagged, bool)
    groups: dict[str, Any] = {}
    for group in sorted(set(labels.tolist())):
        rows = labels == group
        positives, negatives = rows & (y == 1), rows & (y == 0)
        groups[group] = {
            "rows": int(rows.sum()),
            "approval_rate": float(1.0 - flagged[rows].mean()),
            "true_positive_rate": _rate(flagged, positives),
            "false_positive_rate": _rate(flagged, negatives),
        }
    most = max(group["approval_rate"] for group in groups.values())
    for group in groups.values():
        ratio = group["approval_rate"] / most if most > 0 else None
        group["disparate_impact"] = ratio
        group["four_fifths_violated"] = ratio is not None and ratio < FOUR_FIFTHS
    return {
        "groups": groups,
        "most_approved": max(groups, key=lambda name: groups[name]["approval_rate"]),
        "violations": [name for name, group in groups.items() if group["four_fifths_violated"]],
    }


def _rate(flagged: np.ndarray, rows: np.ndarray) -> float | None:
    return float(flagged[rows].mean()) if rows.any() else None
