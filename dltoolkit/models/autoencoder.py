"""Autoencoders (dense, convolutional, LSTM) with separate encoder and decoder models."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import keras
import numpy as np

from dltoolkit.models.arguments import (
    check_activation,
    check_rate,
    check_units,
    kernel_regularizer,
    require,
)
from dltoolkit.models.mlp import apply_dense_block
from dltoolkit.models.registry import MODELS

KINDS = ("dense", "conv", "lstm")


@MODELS.register("autoencoder")
def autoencoder(
    input_shape: Sequence[int],
    output_units: int | None = None,
    output_activation: str | None = None,
    *,
    preprocessing: keras.layers.Layer | None = None,
    input_name: str = "inputs",
    name: str = "autoencoder",
    kind: Literal["dense", "conv", "lstm"] = "dense",
    latent_dim: int = 10,
    hidden_units: list[int] = (256, 128),
    filters: list[int] = (32, 64),
    kernel_size: int = 3,
    units: list[int] = (64,),
    activation: str = "relu",
    latent_activation: str | None = None,
    reconstruction_activation: str | None = None,
    batch_norm: bool = False,
    noise_stddev: float = 0.0,
    input_dropout: float = 0.0,
    l1: float = 0.0,
    l2: float = 0.0,
) -> keras.Model:
    """An autoencoder ``inputs -> encoder -> latent -> decoder -> reconstruction``.

    The returned model holds two sub-models, ``model.get_layer("encoder")`` (inputs to the
    ``latent_dim`` code) and ``model.get_layer("decoder")`` (code to reconstruction), for
    dimensionality reduction, compression and reconstruction-error anomaly scores. Train it
    with ``model.fit(x, reconstruction_target(model, x))``. With ``noise_stddev`` or
    ``input_dropout`` it is a denoising autoencoder: the encoder corrupts its input during
    training only and learns to reconstruct the clean input.

    Args:
        input_shape: ``(features,)`` for ``dense`` (higher ranks are flattened),
            ``(steps, channels)`` or ``(height, width, channels)`` for ``conv``,
            ``(steps, features)`` for ``lstm``.
        output_units: must be None; the output has the input's shape.
        output_activation: must be None; see ``reconstruction_activation``.
        preprocessing: optional layer applied to the raw input inside the encoder (e.g. an
            adapted ``keras.layers.Normalization``). The decoder then reconstructs the
            *preprocessed* input; :func:`reconstruction_target` computes that target.
        input_name: name of the input.
        name: model name.
        kind: ``dense`` (an MLP), ``conv`` (strided convolutions and transposed
            convolutions) or ``lstm`` (sequence to sequence).
        latent_dim: size of the code.
        hidden_units: ``dense``: encoder layer sizes; the decoder mirrors them.
        filters: ``conv``: filters per encoder block, each halving the resolution.
        kernel_size: ``conv``: kernel size.
        units: ``lstm``: units per encoder LSTM layer; the decoder mirrors them.
        activation: hidden activation.
        latent_activation: activation of the code (None: linear).
        reconstruction_activation: activation of the reconstruction (None: linear;
            ``sigmoid`` for data scaled to [0, 1]).
        batch_norm: batch normalisation after hidden dense/conv layers (not for lstm).
        noise_stddev: Gaussian noise added to the encoder's input in training (denoising).
        input_dropout: share of input values zeroed in training (masking noise).
        l1: L1 penalty on hidden kernels.
        l2: L2 penalty on hidden kernels.

    Returns:
        An uncompiled keras.Model with ``encoder`` and ``decoder`` sub-models.

    Example:
        >>> model = autoencoder((64,), latent_dim=8, hidden_units=[32], noise_stddev=0.1)
        >>> model.get_layer("encoder").output_shape
        (None, 8)
    """
    require(
        output_units is None and output_activation is None,
        "an autoencoder reconstructs its input and has no output head. Received "
        f"output_units={output_units}, output_activation={output_activation!r}.",
    )
    require(kind in KINDS, f"model.kind must be one of {', '.join(KINDS)}, received {kind!r}.")
    require(latent_dim > 0, f"model.latent_dim must be positive, received {latent_dim}.")
    check_activation(activation)
    if latent_activation is not None:
        check_activation(latent_activation, "model.latent_activation")
    if reconstruction_activation is not None:
        check_activation(reconstruction_activation, "model.reconstruction_activation")
    require(noise_stddev >= 0, f"model.noise_stddev must be >= 0, received {noise_stddev}.")
    check_rate(input_dropout, "model.input_dropout")
    regularizer = kernel_regularizer(l1, l2)
    shape = tuple(input_shape)
    settings = {
        "activation": activation,
        "batch_norm": batch_norm,
        "regularizer": regularizer,
        "latent_dim": latent_dim,
        "latent_activation": latent_activation,
        "reconstruction_activation": reconstruction_activation,
    }

    # === Encoder ===
    inputs = keras.Input(shape=shape, name=input_name)
    x = preprocessing(inputs) if preprocessing is not None else inputs
    # Named, so that reconstruction_target finds what the decoder must reproduce.
    x = keras.layers.Identity(name="preprocessed")(x)
    if noise_stddev > 0:
        x = keras.layers.GaussianNoise(noise_stddev, name="noise")(x)
    if input_dropout > 0:
        x = keras.layers.Dropout(input_dropout, name="input_dropout")(x)
    if kind == "dense":
        check_units(hidden_units, "model.hidden_units")
        encoder_body, decoder = _dense_halves(shape, hidden_units, **settings)
    elif kind == "conv":
        check_units(filters, "model.filters", allow_empty=False)
        require(kernel_size > 0, f"model.kernel_size must be positive, received {kernel_size}.")
        encoder_body, decoder = _conv_halves(shape, filters, kernel_size, **settings)
    else:
        check_units(units, "model.units", allow_empty=False)
        require(
            not batch_norm,
            "model.batch_norm is not available for kind 'lstm' (recurrent layers are not "
            "batch-normalised here); set model.batch_norm=false or use kind 'dense' or 'conv'.",
        )
        encoder_body, decoder = _lstm_halves(shape, units, **settings)
    encoder = keras.Model(inputs, encoder_body(x), name="encoder")

    # === Autoencoder ===
    model_inputs = keras.Input(shape=shape, name=input_name)
    reconstruction = decoder(encoder(model_inputs))
    return keras.Model(model_inputs, reconstruction, name=name)


def _dense_halves(
    shape, hidden_units, *, latent_dim, latent_activation, reconstruction_activation, **block
):
    features = math.prod(shape)

    def encode(x):
        if len(shape) > 1:
            x = keras.layers.Flatten(name="flatten")(x)
        for index, size in enumerate(hidden_units):
            x = apply_dense_block(x, size, name=f"encoder{index + 1}", **block)
        return keras.layers.Dense(latent_dim, activation=latent_activation, name="latent")(x)

    code = keras.Input(shape=(latent_dim,), name="code")
    y = code
    for index, size in enumerate(reversed(hidden_units)):
        y = apply_dense_block(y, size, name=f"decoder{index + 1}", **block)
    y = keras.layers.Dense(
        features, activation=reconstruction_activation, dtype="float32", name="reconstruction"
    )(y)
    if len(shape) > 1:
        y = keras.layers.Reshape(shape, name="unflatten")(y)
    return encode, keras.Model(code, y, name="decoder")


def _conv_halves(
    shape,
    filters,
    kernel_size,
    *,
    activation,
    batch_norm,
    regularizer,
    latent_dim,
    latent_activation,
    reconstruction_activation,
):
    rank = len(shape) - 1
    require(
        rank in (1, 2) and all(size is not None for size in shape),
        "a conv autoencoder needs inputs of fixed shape (steps, channels) or (height, width, "
        f"channels), received input_shape={shape}.",
    )
    conv = keras.layers.Conv1D if rank == 1 else keras.layers.Conv2D
    transpose = keras.layers.Conv1DTranspose if rank == 1 else keras.layers.Conv2DTranspose
    spatial = list(shape[:rank])
    for _ in filters:  # each stride-2 "same" convolution rounds the size up
        spatial = [math.ceil(size / 2) for size in spatial]

    def convolve(layer, x, size, strides, name):
        x = layer(
            size,
            kernel_size,
            strides=strides,
            padding="same",
            use_bias=not batch_norm,
            kernel_regularizer=regularizer,
            name=name,
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
        return keras.layers.Activation(activation, name=f"{name}_act")(x)

    def encode(x):
        for index, size in enumerate(filters):
            x = convolve(conv, x, size, 2, f"encoder_conv{index + 1}")
        x = keras.layers.Flatten(name="flatten")(x)
        return keras.layers.Dense(latent_dim, activation=latent_activation, name="latent")(x)

    code = keras.Input(shape=(latent_dim,), name="code")
    y = keras.layers.Dense(math.prod(spatial) * filters[-1], activation=activation)(code)
    y = keras.layers.Reshape((*spatial, filters[-1]), name="unflatten")(y)
    for index, size in enumerate(reversed(filters)):
        y = convolve(transpose, y, size, 2, f"decoder_deconv{index + 1}")
    y = conv(
        shape[-1],
        kernel_size,
        padding="same",
        activation=reconstruction_activation,
        dtype="float32",
        name="reconstruction",
    )(y)
    # Upsampling overshoots sizes that are not multiples of 2**blocks: crop the excess.
    upsampled = [size * 2 ** len(filters) for size in spatial]
    excess = [size - target for size, target in zip(upsampled, shape[:rank], strict=True)]
    if any(excess):
        crop = keras.layers.Cropping1D if rank == 1 else keras.layers.Cropping2D
        cropping = (0, excess[0]) if rank == 1 else tuple((0, extra) for extra in excess)
        y = crop(cropping, name="crop")(y)
    return encode, keras.Model(code, y, name="decoder")


def _lstm_halves(
    shape,
    units,
    *,
    activation,
    batch_norm,
    regularizer,
    latent_dim,
    latent_activation,
    reconstruction_activation,
):
    require(
        len(shape) == 2 and shape[0] is not None,
        "an lstm autoencoder needs inputs of shape (steps, features) with a fixed number of "
        f"steps, received input_shape={shape}.",
    )
    steps, features = shape

    def encode(x):
        for index, size in enumerate(units):
            x = keras.layers.LSTM(
                size,
                return_sequences=index < len(units) - 1,
                kernel_regularizer=regularizer,
                name=f"encoder_lstm{index + 1}",
            )(x)
        return keras.layers.Dense(latent_dim, activation=latent_activation, name="latent")(x)

    code = keras.Input(shape=(latent_dim,), name="code")
    y = keras.layers.RepeatVector(steps, name="repeat")(code)
    for index, size in enumerate(reversed(units)):
        y = keras.layers.LSTM(
            size,
            return_sequences=True,
            kernel_regularizer=regularizer,
            name=f"decoder_lstm{index + 1}",
        )(y)
    y = keras.layers.Dense(
        features, activation=reconstruction_activation, dtype="float32", name="reconstruction"
    )(y)
    return encode, keras.Model(code, y, name="decoder")


def reconstruction_target(model: keras.Model, x, batch_size: int = 256) -> np.ndarray:
    """What ``model`` learns to reconstruct from ``x``: ``x`` after the model's preprocessing.

    Without preprocessing that is ``x`` itself.
    """
    encoder = model.get_layer("encoder")
    preprocessed = encoder.get_layer("preprocessed")
    if encoder.get_layer(index=1) is preprocessed:  # nothing between input and target
        return np.asarray(x, dtype=np.float32)
    target = keras.Model(encoder.inputs, preprocessed.output)
    return np.asarray(target.predict(x, batch_size=batch_size, verbose=0))


def reconstruction_error(model: keras.Model, x, batch_size: int = 256) -> np.ndarray:
    """Mean squared reconstruction error per example (an anomaly score)."""
    target = reconstruction_target(model, x, batch_size)
    reconstruction = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    return np.mean((reconstruction - target) ** 2, axis=tuple(range(1, target.ndim)))
