"""Scores of a segmentation: its quality in the feature space it was made in (silhouette,
Davies-Bouldin, Calinski-Harabasz), the segments' profiles in raw units, and, against
known labels, Hungarian accuracy, NMI and ARI."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

SILHOUETTE_SAMPLE = 10_000  # silhouette is quadratic in rows: scored on a seeded sample


def cluster_quality(x: np.ndarray, segments: np.ndarray, seed: int) -> dict[str, float]:
    """Silhouette (on at most 10,000 rows), Davies-Bouldin and Calinski-Harabasz scores of
    a segmentation of ``x``; NaN where fewer than two segments are present."""
    from sklearn.metrics import (
        calinski_harabasz_score,
        davies_bouldin_score,
        silhouette_score,
    )

    if len(np.unique(segments)) < 2:
        return {"silhouette": math.nan, "davies_bouldin": math.nan, "calinski_harabasz": math.nan}
    sample = min(len(x), SILHOUETTE_SAMPLE)
    return {
        "silhouette": float(silhouette_score(x, segments, sample_size=sample, random_state=seed)),
        "davies_bouldin": float(davies_bouldin_score(x, segments)),
        "calinski_harabasz": float(calinski_harabasz_score(x, segments)),
    }


def profiles(frame: pd.DataFrame, segments: np.ndarray, numeric: list[str]) -> list[dict]:
    """Per segment: rows, share, and mean and median of every numeric feature (raw units)."""
    result = []
    for segment in range(int(segments.max()) + 1):
        rows = frame[segments == segment]
        entry: dict[str, Any] = {
            "segment": segment,
            "rows": len(rows),
            "share": round(len(rows) / len(frame), 4),
        }
        for column in numeric:
            entry[f"{column}_mean"] = float(rows[column].mean()) if len(rows) else math.nan
            entry[f"{column}_median"] = float(rows[column].median()) if len(rows) else math.nan
        result.append(entry)
    return result


def cluster_accuracy(labels: Sequence, clusters: Sequence[int]) -> float:
    """Accuracy under the best one-to-one mapping of clusters to labels.

    The mapping maximises the number of matched examples (Hungarian algorithm,
    scipy.optimize.linear_sum_assignment); clusters left without a label count as wrong.
    """
    from scipy.optimize import linear_sum_assignment

    labels, clusters = np.asarray(labels), np.asarray(clusters)
    if labels.shape != clusters.shape or labels.ndim != 1:
        raise ValueError(
            f"cluster_accuracy needs two 1-D arrays of equal length, received shapes "
            f"{labels.shape} and {clusters.shape}."
        )
    _, label_index = np.unique(labels, return_inverse=True)
    _, cluster_index = np.unique(clusters, return_inverse=True)
    size = max(label_index.max(), cluster_index.max()) + 1
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (cluster_index, label_index), 1)
    rows, columns = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, columns].sum() / len(labels))


def clustering_scores(labels: Sequence, clusters: Sequence[int]) -> dict[str, float]:
    """``accuracy`` (Hungarian), ``nmi`` (normalised mutual information) and ``ari``."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {
        "accuracy": cluster_accuracy(labels, clusters),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
    }
