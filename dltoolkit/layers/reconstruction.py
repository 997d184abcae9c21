"""The mean squared difference between an input and its reconstruction: an anomaly score."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dltoolkit")
class ReconstructionError(keras.layers.Layer):
    """Per-example mean squared error between ``[target, reconstruction]``.

    Put after an autoencoder, it turns the model into an anomaly scorer: examples unlike
    the (normal) training data reconstruct badly and score high.

    Input shape:
        a list of two tensors of the same shape ``(batch, ...)``.

    Output shape:
        ``(batch,)``.

    Example:
        >>> layer = ReconstructionError()
        >>> [float(v) for v in layer([ops.zeros((2, 3)), ops.ones((2, 3))])]
        [1.0, 1.0]
    """

    def call(self, inputs):
        target, reconstruction = inputs
        dtype = self.compute_dtype
        squared = ops.square(ops.cast(reconstruction, dtype) - ops.cast(target, dtype))
        return ops.mean(ops.reshape(squared, (ops.shape(squared)[0], -1)), axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],)
