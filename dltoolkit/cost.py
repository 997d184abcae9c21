"""What a run costs: forward FLOPs per example, time per epoch, peak memory, devices.

FLOPs are counted from each layer's configuration and shapes, the same way on every
backend: a multiply-add is 2 FLOPs, and the multiply-adds of dense, convolution and
recurrent layers (every timestep, both directions of a bidirectional layer) are counted.
Activations, normalisation, pooling and other elementwise work are not (they are a small
share of these models' cost); layers whose cost is not known are listed by name.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import keras

_RECURRENT_GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}
# Layers with weights whose work is elementwise: cheap, not counted, not "unknown" either.
_ELEMENTWISE = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.Normalization,
    keras.layers.Rescaling,
    keras.layers.Embedding,
)


def forward_flops(model: keras.Model) -> dict[str, Any]:
    """FLOPs of one example's forward pass through ``model``.

    Returns ``{"per_example": int, "by_layer": {name: flops}, "not_counted": [names]}``;
    ``not_counted`` names layers with weights whose cost this count does not know.
    """
    by_layer: dict[str, int] = {}
    unknown: list[str] = []
    # A model of token ids reads a known number of them: a nested text backbone built
    # for any length (keras-hub's) is counted at that length.
    first = model.inputs[0].shape if model.inputs else ()
    steps = first[1] if len(first) == 2 and "int" in str(model.inputs[0].dtype) else None
    for layer, input_shape, output_shape in _leaf_layers(model):
        if steps is not None:
            input_shape, output_shape = (
                _at_length(input_shape, steps),
                _at_length(output_shape, steps),
            )
        # A nested model built for any image size (a keras-hub backbone) has no sizes to
        # count with: its weighted layers are named as not counted.
        sized = _known(input_shape) and _known(output_shape)
        flops = layer_flops(layer, input_shape, output_shape) if sized else None
        if flops is None and not sized and not layer.weights:
            continue
        if flops is None:
            unknown.append(layer.name)
        elif flops:
            by_layer[layer.name] = flops
    return {
        "per_example": int(sum(by_layer.values())),
        "by_layer": by_layer,
        "not_counted": unknown,
    }


def _at_length(shape: tuple, steps: int) -> tuple:
    """A (possibly nested) shape with an unknown sequence axis (axis 1) set to ``steps``."""
    if shape and isinstance(shape[0], tuple):
        return tuple(_at_length(part, steps) for part in shape)
    if len(shape) >= 2 and shape[1] is None:
        return (shape[0], steps, *shape[2:])
    return shape


def _known(shape: tuple) -> bool:
    """Whether a (possibly nested) shape has every size but the batch axis."""
    if shape and isinstance(shape[0], tuple):
        return all(_known(part) for part in shape)
    return all(size is not None for size in shape[1:])


def _leaf_layers(model: keras.Model):
    """(layer, input shape, output shape) of every layer, nested models opened."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
            continue
        try:
            input_shape, output_shape = _shape(layer.input), _shape(layer.output)
        except (AttributeError, ValueError):  # not called in a functional graph
            continue
        yield layer, input_shape, output_shape


def _shape(tensor: Any) -> tuple:
    if isinstance(tensor, (list, tuple)):
        return tuple(_shape(item) for item in tensor)
    if isinstance(tensor, dict):
        return tuple(_shape(item) for item in tensor.values())
    return tuple(tensor.shape)


def layer_flops(layer: keras.layers.Layer, input_shape: tuple, output_shape: tuple) -> int | None:
    """Forward FLOPs per example of one layer (2 per multiply-add); 0 for layers without
    weights or with elementwise work only; None when unknown."""
    if input_shape and isinstance(input_shape[0], tuple):  # (inputs, mask): the inputs
        input_shape = input_shape[0]
    if isinstance(layer, keras.layers.Bidirectional):
        return 2 * (layer_flops(layer.forward_layer, input_shape, output_shape) or 0)
    kind = type(layer).__name__
    if kind in ("TokenAndPositionEmbedding", "PositionEmbedding"):  # keras-hub's lookups
        return 0
    if kind == "TransformerEncoder":  # keras-hub's block of self-attention and feed-forward
        steps, width = input_shape[1], input_shape[-1]
        projections = 4 * width * width + 2 * width * layer.intermediate_dim
        return 2 * steps * projections + 4 * steps * steps * width
    if kind in _RECURRENT_GATES and isinstance(layer, keras.layers.RNN):
        steps, features = input_shape[1], input_shape[-1]
        units = layer.cell.units
        return 2 * steps * _RECURRENT_GATES[kind] * units * (features + units)
    if isinstance(layer, keras.layers.Dense):
        positions = math.prod(input_shape[1:-1])
        return 2 * positions * input_shape[-1] * layer.units
    if isinstance(layer, keras.layers.Conv1DTranspose | keras.layers.Conv2DTranspose):
        channels_last = layer.data_format == "channels_last"
        channels = input_shape[-1] if channels_last else input_shape[1]
        spatial = input_shape[1:-1] if channels_last else input_shape[2:]
        return 2 * math.prod(layer.kernel_size) * channels * layer.filters * math.prod(spatial)
    if isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Conv3D):
        channels_last = layer.data_format == "channels_last"
        channels = input_shape[-1] if channels_last else input_shape[1]
        spatial = output_shape[1:-1] if channels_last else output_shape[2:]
        per_position = math.prod(layer.kernel_size) * (channels // layer.groups)
        return 2 * per_position * layer.filters * math.prod(spatial)
    if not layer.weights or isinstance(layer, _ELEMENTWISE):
        return 0
    return None


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of every epoch (training and validation)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def peak_memory_mib() -> float:
    """This process's peak resident memory so far, in MiB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def devices() -> list[str]:
    """The devices the backend computes on, as it names them (``CPU:0``, ``cuda:0`` ...)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [device.name for device in tf.config.list_logical_devices()]
    if backend == "jax":
        import jax

        return [str(device) for device in jax.devices()]
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return [f"cuda:{index}" for index in range(torch.cuda.device_count())]
        return ["cpu"]
    return [backend]
