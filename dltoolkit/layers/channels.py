"""Reversing the channel axis: RGB images into the BGR order some pretrained models take."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dltoolkit")
class ChannelReverse(keras.layers.Layer):
    """The input with its last (channel) axis reversed: RGB becomes BGR.

    Example:
        >>> [float(v) for v in ChannelReverse()(ops.convert_to_tensor([[1.0, 2.0, 3.0]]))[0]]
        [3.0, 2.0, 1.0]
    """

    def call(self, inputs):
        return ops.flip(inputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape
