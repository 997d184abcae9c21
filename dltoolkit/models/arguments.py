"""Argument checks shared by the model builders: one-line errors naming the config key."""

from __future__ import annotations

import keras

from dltoolkit.errors import ConfigError


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def check_activation(name: str, key: str = "model.activation") -> str:
    """``name`` must be a Keras activation (relu, gelu, elu, selu, leaky_relu, tanh ...)."""
    try:
        keras.activations.get(name)
    except ValueError:
        raise ConfigError(
            f"{key} {name!r} is not a Keras activation; try relu, gelu, elu, selu, "
            "leaky_relu, tanh or sigmoid."
        ) from None
    return name


def check_rate(value: float, key: str) -> float:
    """Dropout-style rates live in [0, 1)."""
    require(0.0 <= value < 1.0, f"{key} must be in [0, 1), received {value}.")
    return value


def check_units(units: list[int], key: str, allow_empty: bool = True) -> list[int]:
    """A list of positive layer sizes."""
    require(
        (allow_empty or len(units) > 0) and all(unit > 0 for unit in units),
        f"{key} must be a {'' if allow_empty else 'non-empty '}list of positive integers, "
        f"received {list(units)}.",
    )
    return list(units)


def kernel_regularizer(l1: float, l2: float) -> keras.regularizers.Regularizer | None:
    """An L1/L2 weight penalty, or None when both are zero."""
    require(l1 >= 0 and l2 >= 0, f"model.l1 and model.l2 must be >= 0, received {l1}, {l2}.")
    if l1 == 0 and l2 == 0:
        return None
    return keras.regularizers.L1L2(l1=l1, l2=l2)


def output_layer(
    units: int,
    activation: str | None,
    kernel_regularizer: keras.regularizers.Regularizer | None = None,
) -> keras.layers.Dense:
    """The head: float32 even under mixed precision, so probabilities are not rounded."""
    require(units > 0, f"output_units must be positive, received {units}.")
    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_regularizer=kernel_regularizer,
        dtype="float32",
        name="output",
    )
