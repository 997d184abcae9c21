"""Soft cluster assignment by a Student's t kernel (the clustering layer of DEC and IDEC)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="dltoolkit")
class ClusteringLayer(keras.layers.Layer):
    """Soft assignment of embedded points to trainable cluster centres.

    ``q_ij = (1 + |z_i - mu_j|^2 / alpha) ** (-(alpha + 1) / 2)``, normalised over the
    clusters ``j`` (Xie et al., 2016): the probability that point ``i`` belongs to cluster
    ``j`` under a Student's t distribution with ``alpha`` degrees of freedom. The centres
    ``mu`` are trainable; set them from k-means before training.

    Args:
        num_clusters: number of clusters.
        alpha: degrees of freedom of the Student's t kernel.
        centres_initializer: initializer of the ``(num_clusters, features)`` centres.

    Input shape:
        ``(batch, features)``.

    Output shape:
        ``(batch, num_clusters)``, rows summing to 1.

    Example:
        >>> layer = ClusteringLayer(3)
        >>> tuple(layer(keras.ops.zeros((4, 2))).shape)
        (4, 3)
    """

    def __init__(
        self,
        num_clusters: int,
        alpha: float = 1.0,
        centres_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        **kwargs,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if int(num_clusters) < 1:
            raise ValueError(f"num_clusters must be a positive integer. Received: {num_clusters}")
        if alpha <= 0:
            raise ValueError(f"alpha must be positive. Received: alpha={alpha}")
        self.num_clusters = int(num_clusters)
        self.alpha = float(alpha)
        self.centres_initializer = keras.initializers.get(centres_initializer)

    def build(self, input_shape) -> None:
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                "ClusteringLayer expects inputs of shape (batch, features). Received: "
                f"input_shape={tuple(input_shape)}"
            )
        self.centres = self.add_weight(
            shape=(self.num_clusters, int(input_shape[-1])),
            initializer=self.centres_initializer,
            name="centres",
        )

    def call(self, inputs):
        z = ops.cast(inputs, "float32")
        squared = ops.sum(ops.square(z[:, None, :] - self.centres[None, :, :]), axis=-1)
        kernel = ops.power(1.0 + squared / self.alpha, -(self.alpha + 1.0) / 2.0)
        return kernel / ops.sum(kernel, axis=1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_clusters)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_clusters": self.num_clusters,
            "alpha": self.alpha,
            "centres_initializer": keras.initializers.serialize(self.centres_initializer),
        }


def target_distribution(q: np.ndarray) -> np.ndarray:
    """DEC's sharpened targets ``p_ij ∝ q_ij^2 / f_j`` with cluster frequencies ``f_j``.

    Squaring puts more weight on confident assignments; dividing by the soft cluster sizes
    keeps large clusters from swallowing the others. Rows sum to 1.
    """
    q = np.asarray(q, dtype=np.float64)
    weight = q**2 / q.sum(axis=0)
    return (weight / weight.sum(axis=1, keepdims=True)).astype(np.float32)
