"""Losses the toolkit's tasks train on, registered so that saved models load by name."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dltoolkit")
def log_variance_qlike(y_true, y_pred):
    """QLIKE of a log-variance output: ``log_variance + variance_true / exp(log_variance)``.

    Minimised where ``exp(log_variance)`` is the expected realised variance; written on
    the log scale so the forecast stays positive without a constraint.
    """
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "float32")
    log_variance = ops.cast(ops.reshape(y_pred, (-1,)), "float32")
    return ops.mean(log_variance + y_true * ops.exp(-log_variance))
