"""Recurrent networks (SimpleRNN, LSTM, GRU) for sequence classification, regression and
multi-step forecasting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import keras

from dltoolkit.models.arguments import (
    check_activation,
    check_rate,
    check_units,
    output_layer,
    require,
)
from dltoolkit.models.registry import MODELS

CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple": keras.layers.SimpleRNN}


@MODELS.register("rnn")
def rnn(
    input_shape: Sequence[int],
    output_units: int,
    output_activation: str | None = None,
    *,
    preprocessing: keras.layers.Layer | None = None,
    input_name: str = "inputs",
    name: str = "rnn",
    cell: Literal["lstm", "gru", "simple"] = "lstm",
    units: list[int] = (64,),
    bidirectional: bool = False,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    dense_units: list[int] = (),
    activation: str = "relu",
) -> keras.Model:
    """Stacked (optionally bidirectional) recurrent layers, then dense layers and a head.

    Every recurrent layer but the last returns sequences; the last returns its final state,
    which the head maps to ``output_units`` values: classes, one regression target, or
    ``horizon`` future steps for direct multi-step forecasting.

    Args:
        input_shape: ``(steps, features)``; ``steps`` may be None for variable lengths.
        output_units: units of the output layer.
        output_activation: None for regression/forecasting, ``softmax``/``sigmoid`` for
            classification.
        preprocessing: optional layer applied to the raw input.
        input_name: name of the input (the serving signature's input name).
        name: model name.
        cell: ``lstm``, ``gru`` or ``simple`` (keras.layers.SimpleRNN).
        units: units of each recurrent layer, first to last.
        bidirectional: wrap each recurrent layer in keras.layers.Bidirectional.
        dropout: dropout rate on each recurrent layer's inputs.
        recurrent_dropout: dropout rate on the recurrent state.
        dense_units: dense layers between the last recurrent layer and the head.
        activation: activation of those dense layers.

    Returns:
        An uncompiled keras.Model.

    Example:
        >>> model = rnn((30, 4), 5, cell="gru", units=[64, 32])  # 5-step forecast
    """
    require(
        len(input_shape) == 2,
        f"rnn needs inputs of shape (steps, features), received input_shape={tuple(input_shape)}.",
    )
    require(cell in CELLS, f"model.cell must be one of lstm, gru, simple, received {cell!r}.")
    check_units(units, "model.units", allow_empty=False)
    check_units(dense_units, "model.dense_units")
    check_rate(dropout, "model.dropout")
    check_rate(recurrent_dropout, "model.recurrent_dropout")
    check_activation(activation)

    # === Layers ===
    inputs = keras.Input(shape=tuple(input_shape), name=input_name)
    x = preprocessing(inputs) if preprocessing is not None else inputs
    for index, layer_units in enumerate(units):
        layer = CELLS[cell](
            layer_units,
            return_sequences=index < len(units) - 1,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            name=f"{cell}{index + 1}",
        )
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bidirectional{index + 1}")
        x = layer(x)
    for index, dense in enumerate(dense_units):
        x = keras.layers.Dense(dense, activation=activation, name=f"dense{index + 1}")(x)
    outputs = output_layer(output_units, output_activation)(x)
    return keras.Model(inputs, outputs, name=name)
