"""Convolutional networks over 1-D sequences or 2-D images."""

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


def apply_conv_block(
    x,
    filters: int,
    *,
    rank: int,
    kernel_size: int,
    convolutions: int,
    pool_size: int,
    batch_norm: bool,
    activation: str,
    dropout: float,
    name: str,
):
    """Conv (+BN) + activation, ``convolutions`` times, then max pooling and dropout."""
    conv = keras.layers.Conv1D if rank == 1 else keras.layers.Conv2D
    pool = keras.layers.MaxPooling1D if rank == 1 else keras.layers.MaxPooling2D
    for index in range(convolutions):
        x = conv(
            filters,
            kernel_size,
            padding="same",
            use_bias=not batch_norm,
            name=f"{name}_conv{index + 1}",
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"{name}_bn{index + 1}")(x)
        x = keras.layers.Activation(activation, name=f"{name}_act{index + 1}")(x)
    # Tiny inputs (8x8 digits) run out of resolution: pool only while there is some left.
    spatial = x.shape[1 : 1 + rank]
    if pool_size > 1 and all(size is None or size >= 2 * pool_size for size in spatial):
        x = pool(pool_size, name=f"{name}_pool")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


FLIPS = ("none", "horizontal", "vertical", "horizontal_and_vertical")


def image_augmentation(
    rank: int,
    *,
    flip: str,
    rotation: float,
    zoom: float,
    translation: float,
    contrast: float,
) -> list[keras.layers.Layer]:
    """Keras' random image layers for the requested augmentations (active in training)."""
    require(
        flip in FLIPS, f"model.augment_flip must be one of {', '.join(FLIPS)}, received {flip!r}."
    )
    amounts = {"rotation": rotation, "zoom": zoom, "translation": translation, "contrast": contrast}
    for key, amount in amounts.items():
        require(0.0 <= amount < 1.0, f"model.augment_{key} must be in [0, 1), received {amount}.")
    requested = flip != "none" or any(amounts.values())
    require(
        not requested or rank == 2,
        "image augmentation (model.augment_*) needs 2-D images of shape (height, width, "
        "channels); set the augment_ options to their defaults for 1-D inputs.",
    )
    layers: list[keras.layers.Layer] = []
    if flip != "none":
        layers.append(keras.layers.RandomFlip(flip, name="augment_flip"))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, name="augment_rotation"))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, name="augment_zoom"))
    if translation:
        layers.append(
            keras.layers.RandomTranslation(translation, translation, name="augment_translation")
        )
    if contrast:
        layers.append(keras.layers.RandomContrast(contrast, name="augment_contrast"))
    return layers


@MODELS.register("cnn")
def cnn(
    input_shape: Sequence[int],
    output_units: int,
    output_activation: str | None = "softmax",
    *,
    preprocessing: keras.layers.Layer | None = None,
    input_name: str = "inputs",
    name: str = "cnn",
    filters: list[int] = (32, 64),
    kernel_size: int = 3,
    convolutions_per_block: int = 2,
    pool_size: int = 2,
    batch_norm: bool = True,
    activation: str = "relu",
    block_dropout: float = 0.1,
    global_pooling: Literal["avg", "max", "flatten"] = "avg",
    dense_units: list[int] = (128,),
    dense_dropout: float = 0.3,
    augment_flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = "none",
    augment_rotation: float = 0.0,
    augment_zoom: float = 0.0,
    augment_translation: float = 0.0,
    augment_contrast: float = 0.0,
) -> keras.Model:
    """A stack of convolution blocks, global pooling, dense layers and an output head.

    Inputs of rank 2 (steps, channels) get 1-D convolutions, rank 3 (height, width,
    channels) 2-D ones.

    Args:
        input_shape: shape of one example, without the batch axis.
        output_units: units of the output layer (classes, or targets).
        output_activation: activation of the output layer.
        preprocessing: optional layer applied to the raw input (e.g. an adapted
            ``keras.layers.Normalization``), so the model takes raw data.
        input_name: name of the input, which becomes the serving signature's input name.
        name: model name.
        filters: filters per convolution block; one block per entry.
        kernel_size: convolution kernel size.
        convolutions_per_block: convolutions before each pooling.
        pool_size: max-pooling size after each block (skipped when the input is too small).
        batch_norm: batch normalisation after each convolution.
        activation: activation name for hidden layers (``relu``, ``gelu``, ``elu`` ...).
        block_dropout: dropout rate after each block.
        global_pooling: ``avg``, ``max`` or ``flatten`` between the blocks and dense layers.
        dense_units: units of the dense layers before the output.
        dense_dropout: dropout rate after each dense layer.
        augment_flip: image augmentation in training: random ``horizontal``, ``vertical``
            or ``horizontal_and_vertical`` flips (``none``: off). Leave it off where a flip
            changes the class (digits, text).
        augment_rotation: random rotation by up to this fraction of a full turn.
        augment_zoom: random zoom in or out by up to this fraction.
        augment_translation: random shift by up to this fraction of height and width.
        augment_contrast: random contrast change by up to this fraction.

    Augmentation layers act on the raw image before ``preprocessing``, only in training;
    the exported model does not augment.

    Returns:
        An uncompiled keras.Model.

    Example:
        >>> model = cnn((8, 8, 1), 10, filters=[16, 32])
    """
    rank = len(input_shape) - 1
    require(
        rank in (1, 2),
        "cnn needs inputs of shape (steps, channels) or (height, width, channels), "
        f"received input_shape={tuple(input_shape)}.",
    )
    check_units(filters, "model.filters", allow_empty=False)
    require(kernel_size > 0, f"model.kernel_size must be positive, received {kernel_size}.")
    require(
        convolutions_per_block > 0,
        f"model.convolutions_per_block must be positive, received {convolutions_per_block}.",
    )
    check_units(dense_units, "model.dense_units")
    check_rate(block_dropout, "model.block_dropout")
    check_rate(dense_dropout, "model.dense_dropout")
    require(
        global_pooling in ("avg", "max", "flatten"),
        f"model.global_pooling must be avg, max or flatten, received {global_pooling!r}.",
    )
    check_activation(activation)
    augmentation = image_augmentation(
        rank,
        flip=augment_flip,
        rotation=augment_rotation,
        zoom=augment_zoom,
        translation=augment_translation,
        contrast=augment_contrast,
    )

    # === Layers ===
    inputs = keras.Input(shape=tuple(input_shape), name=input_name)
    x = inputs
    for layer in augmentation:
        x = layer(x)
    x = preprocessing(x) if preprocessing is not None else x
    for index, block_filters in enumerate(filters):
        x = apply_conv_block(
            x,
            block_filters,
            rank=rank,
            kernel_size=kernel_size,
            convolutions=convolutions_per_block,
            pool_size=pool_size,
            batch_norm=batch_norm,
            activation=activation,
            dropout=block_dropout,
            name=f"block{index + 1}",
        )
    if global_pooling == "flatten":
        x = keras.layers.Flatten(name="flatten")(x)
    else:
        pooling = {
            (1, "avg"): keras.layers.GlobalAveragePooling1D,
            (1, "max"): keras.layers.GlobalMaxPooling1D,
            (2, "avg"): keras.layers.GlobalAveragePooling2D,
            (2, "max"): keras.layers.GlobalMaxPooling2D,
        }[(rank, global_pooling)]
        x = pooling(name="global_pool")(x)
    for index, units in enumerate(dense_units):
        x = keras.layers.Dense(units, activation=activation, name=f"dense{index + 1}")(x)
        if dense_dropout > 0:
            x = keras.layers.Dropout(dense_dropout, name=f"dense{index + 1}_dropout")(x)
    outputs = output_layer(output_units, output_activation)(x)
    return keras.Model(inputs, outputs, name=name)
