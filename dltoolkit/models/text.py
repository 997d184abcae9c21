"""Text classifiers over token ids: a 1-D convolution, a bidirectional recurrent network and
a small Transformer encoder.

Each takes ``(max_tokens,)`` int token ids, zero-padded at the end (what
:class:`dltoolkit.data.text.Vocabulary` gives), embeds them in ``vocabulary_size`` rows
and ends in the task's head. Padding is masked where a layer can use the mask (the
recurrent layers, the Transformer's attention and its average pooling); the convolutions
read the padding id as a token of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import keras

from dltoolkit.errors import ConfigError
from dltoolkit.models.arguments import (
    check_activation,
    check_rate,
    check_units,
    kernel_regularizer,
    output_layer,
    require,
)
from dltoolkit.models.registry import MODELS
from dltoolkit.models.rnn import CELLS


def token_inputs(input_shape: Sequence[int], input_name: str, builder: str) -> keras.KerasTensor:
    """The int32 input of ``(max_tokens,)`` token ids, or a one-line error for other shapes."""
    require(
        len(input_shape) == 1,
        f"{builder} reads token ids of shape (max_tokens,), received input_shape="
        f"{tuple(input_shape)}; it is a builder for task text_classification or text_binary.",
    )
    return keras.Input(shape=tuple(input_shape), dtype="int32", name=input_name)


def _head(
    x: keras.KerasTensor,
    dense_units: list[int],
    activation: str,
    dropout: float,
    output_units: int,
    output_activation: str | None,
    regularizer: keras.regularizers.Regularizer | None = None,
) -> keras.KerasTensor:
    for index, units in enumerate(dense_units):
        x = keras.layers.Dense(
            units, activation=activation, kernel_regularizer=regularizer, name=f"dense{index + 1}"
        )(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dense_dropout{index + 1}")(x)
    return output_layer(output_units, output_activation, regularizer)(x)


@MODELS.register("text_cnn")
def text_cnn(
    input_shape: Sequence[int],
    output_units: int,
    output_activation: str | None = None,
    *,
    vocabulary_size: int,
    preprocessing: keras.layers.Layer | None = None,
    input_name: str = "tokens",
    name: str = "text_cnn",
    embedding_dim: int = 128,
    filters: int = 128,
    kernel_sizes: list[int] = (3, 4, 5),
    dense_units: list[int] = (),
    activation: str = "relu",
    dropout: float = 0.3,
    l1: float = 0.0,
    l2: float = 0.0,
) -> keras.Model:
    """Embeddings, parallel 1-D convolutions of several widths (n-gram detectors), each
    max-pooled over the text, concatenated, then dense layers and the head (Kim, 2014).

    Args:
        input_shape: ``(max_tokens,)``.
        output_units: units of the output layer.
        output_activation: ``softmax`` or ``sigmoid``.
        vocabulary_size: token ids the embedding takes (the task supplies it).
        preprocessing: unused (token ids are computed outside the network).
        input_name: name of the input.
        name: model name.
        embedding_dim: size of a token's embedding.
        filters: filters of each convolution.
        kernel_sizes: widths (tokens) of the convolutions.
        dense_units: dense layers before the head.
        activation: activation of the convolutions and dense layers.
        dropout: dropout rate after the pooled features and each dense layer.
        l1: L1 penalty on the convolution and dense kernels.
        l2: L2 penalty on them.

    Returns:
        An uncompiled keras.Model.
    """
    check_units([embedding_dim, filters], "model.embedding_dim and model.filters", False)
    check_units(kernel_sizes, "model.kernel_sizes", allow_empty=False)
    check_units(dense_units, "model.dense_units")
    check_rate(dropout, "model.dropout")
    check_activation(activation)
    regularizer = kernel_regularizer(l1, l2)

    inputs = token_inputs(input_shape, input_name, "text_cnn")
    embedded = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")(inputs)
    pooled = []
    for width in kernel_sizes:
        features = keras.layers.Conv1D(
            filters,
            width,
            padding="same",
            activation=activation,
            kernel_regularizer=regularizer,
            name=f"conv{width}",
        )(embedded)
        pooled.append(keras.layers.GlobalMaxPooling1D(name=f"max_pool{width}")(features))
    x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="ngrams")(pooled)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    head = (output_units, output_activation, regularizer)
    outputs = _head(x, dense_units, activation, dropout, *head)
    return keras.Model(inputs, outputs, name=name)


@MODELS.register("text_rnn")
def text_rnn(
    input_shape: Sequence[int],
    output_units: int,
    output_activation: str | None = None,
    *,
    vocabulary_size: int,
    preprocessing: keras.layers.Layer | None = None,
    input_name: str = "tokens",
    name: str = "text_rnn",
    embedding_dim: int = 128,
    cell: Literal["lstm", "gru"] = "gru",
    units: list[int] = (64,),
    bidirectional: bool = True,
    dense_units: list[int] = (),
    activation: str = "relu",
    dropout: float = 0.3,
) -> keras.Model:
    """Embeddings (padding masked), stacked recurrent layers read both ways, the last
    one's final states, dense layers and the head.

    Args:
        input_shape: ``(max_tokens,)``.
        output_units: units of the output layer.
        output_activation: ``softmax`` or ``sigmoid``.
        vocabulary_size: token ids the embedding takes (the task supplies it).
        preprocessing: unused (token ids are computed outside the network).
        input_name: name of the input.
        name: model name.
        embedding_dim: size of a token's embedding.
        cell: ``gru`` or ``lstm``.
        units: units of each recurrent layer, first to last.
        bidirectional: read the text both ways (keras.layers.Bidirectional).
        dense_units: dense layers before the head.
        activation: activation of the dense layers.
        dropout: dropout rate on the recurrent layers' inputs and after each dense layer.

    Returns:
        An uncompiled keras.Model.
    """
    require(cell in ("lstm", "gru"), f"model.cell must be lstm or gru, received {cell!r}.")
    check_units([embedding_dim], "model.embedding_dim", False)
    check_units(units, "model.units", allow_empty=False)
    check_units(dense_units, "model.dense_units")
    check_rate(dropout, "model.dropout")
    check_activation(activation)

    inputs = token_inputs(input_shape, input_name, "text_rnn")
    x = keras.layers.Embedding(vocabulary_size, embedding_dim, mask_zero=True, name="embedding")(
        inputs
    )
    for index, layer_units in enumerate(units):
        layer = CELLS[cell](
            layer_units,
            return_sequences=index < len(units) - 1,
            dropout=dropout,
            name=f"{cell}{index + 1}",
        )
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bidirectional{index + 1}")
        x = layer(x)
    outputs = _head(x, dense_units, activation, dropout, output_units, output_activation)
    return keras.Model(inputs, outputs, name=name)


@MODELS.register("text_transformer")
def text_transformer(
    input_shape: Sequence[int],
    output_units: int,
    output_activation: str | None = None,
    *,
    vocabulary_size: int,
    preprocessing: keras.layers.Layer | None = None,
    input_name: str = "tokens",
    name: str = "text_transformer",
    embedding_dim: int = 128,
    layers: int = 2,
    heads: int = 4,
    intermediate_dim: int = 256,
    dense_units: list[int] = (),
    activation: str = "relu",
    dropout: float = 0.1,
) -> keras.Model:
    """keras-hub's token and position embeddings and Transformer encoder blocks (padding
    masked in the attention), averaged over the tokens, then dense layers and the head.

    Args:
        input_shape: ``(max_tokens,)``.
        output_units: units of the output layer.
        output_activation: ``softmax`` or ``sigmoid``.
        vocabulary_size: token ids the embedding takes (the task supplies it).
        preprocessing: unused (token ids are computed outside the network).
        input_name: name of the input.
        name: model name.
        embedding_dim: size of the token embeddings and the encoder's hidden state.
        layers: Transformer encoder blocks.
        heads: attention heads per block (they divide ``embedding_dim``).
        intermediate_dim: width of each block's feed-forward layer.
        dense_units: dense layers before the head.
        activation: activation of the feed-forward and dense layers.
        dropout: dropout rate in the blocks and after each dense layer.

    Returns:
        An uncompiled keras.Model.
    """
    try:
        import keras_hub
    except ImportError:
        raise ConfigError(
            "model.builder text_transformer uses keras-hub's Transformer layers; install "
            "them with: pip install 'dltoolkit[hub]'"
        ) from None
    sizes = "model.embedding_dim, model.layers, model.heads and model.intermediate_dim"
    check_units([embedding_dim, layers, heads, intermediate_dim], sizes, allow_empty=False)
    require(
        embedding_dim % heads == 0,
        f"model.heads ({heads}) must divide model.embedding_dim ({embedding_dim}).",
    )
    check_units(dense_units, "model.dense_units")
    check_rate(dropout, "model.dropout")
    check_activation(activation)

    inputs = token_inputs(input_shape, input_name, "text_transformer")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size, int(input_shape[0]), embedding_dim, mask_zero=True, name="embedding"
    )(inputs)
    for index in range(layers):
        x = keras_hub.layers.TransformerEncoder(
            intermediate_dim,
            heads,
            dropout=dropout,
            activation=activation,
            name=f"encoder{index + 1}",
        )(x)
    x = keras.layers.GlobalAveragePooling1D(name="mean_pool")(x)
    outputs = _head(x, dense_units, activation, dropout, output_units, output_activation)
    return keras.Model(inputs, outputs, name=name)
