"""Task ``clustering`` (run by :mod:`dltoolkit.segmentation`), and scores of a clustering
against known labels: Hungarian accuracy, NMI and ARI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class ClusteringTask:
    """Segments of an unlabelled table; the run itself is dltoolkit.segmentation's."""

    name = "clustering"
    default_loss = "mse"
    headline = "silhouette"
    summary = ("silhouette",)
    classes = False

    def head(self, num_classes: int) -> dict[str, Any]:
        """No output head: the ``dec`` model's size is ``model.num_clusters``."""
        return {}

    def metrics(self) -> list[Any]:
        """None: DEC trains on its own losses."""
        return []


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
