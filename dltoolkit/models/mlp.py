"""Multi-layer perceptrons (fully connected networks)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from dltoolkit.models.arguments import (
    check_activation,
    check_rate,
    check_units,
    kernel_regularizer,
    output_layer,
)
from dltoolkit.models.registry import MODELS


def apply_dense_block(
    x,
    units: int,
    *,
    activation: str,
    batch_norm: bool,
    regularizer: keras.regularizers.Regularizer | None,
    name: str,
    dropout: float = 0.0,
):
    """Dense (+BN, which replaces the bias) + activation (+dropout), layers named ``name_*``."""
    x = keras.layers.Dense(
        units, use_bias=not batch_norm, kernel_regularizer=regularizer, name=name
    )(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    x = keras.layers.Activation(activation, name=f"{name}_act")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


@MODELS.register("mlp")
def mlp(
    input_shape: Sequence[int],
    output_units: int,
    output_activation: str | None = "softmax",
    *,
    preprocessing: keras.layers.Layer | None = None,
    input_name: str = "inputs",
    name: str = "mlp",
    hidden_units: list[int] = (64, 32),
    activation: str = "relu",
    dropout: float = 0.1,
    batch_norm: bool = False,
    l1: float = 0.0,
    l2: float = 0.0,
) -> keras.Model:
    """A fully connected network: Dense (+BN) + activation (+dropout) per hidden layer.

    Inputs of any rank are flattened first.

    Args:
        input_shape: shape of one example, without the batch axis.
        output_units: units of the output layer (classes, or regression targets).
        output_activation: ``softmax``/``sigmoid`` for classification, None for regression.
        preprocessing: optional layer applied to the raw input (e.g. an adapted
            ``keras.layers.Normalization``).
        input_name: name of the input (the serving signature's input name).
        name: model name.
        hidden_units: units of each hidden layer; ``[]`` gives a linear/logistic model.
        activation: hidden activation (``relu``, ``sigmoid``, ``tanh``, ``gelu``, ``elu``,
            ``selu``, ``leaky_relu`` ...).
        dropout: dropout rate after each hidden layer.
        batch_norm: batch normalisation before each hidden activation.
        l1: L1 penalty on the hidden and output kernels.
        l2: L2 penalty on the hidden and output kernels.

    Returns:
        An uncompiled keras.Model.

    Example:
        >>> model = mlp((30,), 1, "sigmoid", hidden_units=[64, 32], l2=1e-4)
    """
    check_units(hidden_units, "model.hidden_units")
    check_activation(activation)
    check_rate(dropout, "model.dropout")
    regularizer = kernel_regularizer(l1, l2)

    # === Layers ===
    inputs = keras.Input(shape=tuple(input_shape), name=input_name)
    x = preprocessing(inputs) if preprocessing is not None else inputs
    if len(input_shape) > 1:
        x = keras.layers.Flatten(name="flatten")(x)
    for index, units in enumerate(hidden_units):
        x = apply_dense_block(
            x,
            units,
            activation=activation,
            batch_norm=batch_norm,
            regularizer=regularizer,
            dropout=dropout,
            name=f"hidden{index + 1}",
        )
    outputs = output_layer(output_units, output_activation, regularizer)(x)
    return keras.Model(inputs, outputs, name=name)
