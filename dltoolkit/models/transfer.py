"""Builder ``transfer``: a pretrained backbone, its own input preprocessing, and a new head.

``model.backbone`` names where the backbone comes from:

- ``hub:PRESET`` — a keras-hub preset, by name (downloaded by keras-hub, so it needs the
  internet) or by the path of a preset folder saved with ``save_to_preset`` (works
  offline). Its image converter (resizing and rescaling, as the preset was trained) goes
  inside the model. Needs ``pip install 'dltoolkit[hub]'``.
- ``applications:NAME`` — a ``keras.applications`` model (``ResNet50``, ``MobileNetV2``,
  ``EfficientNetB0``, ...) without its top, with the weights file ``model.weights``
  (``null``: random weights); its family's ``preprocess_input`` is rebuilt from Keras
  layers inside the model.
- ``run:PATH`` — a previous run's ``model.keras`` (or its run folder): every layer up to its
  output layer, its input Normalization included.

The exported SavedModel therefore takes raw pixels, as every image model here does. The
backbone is called in inference mode (its BatchNormalization layers keep their moving
statistics) and is one nested layer, which ``train.fine_tune`` freezes and unfreezes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np

from dltoolkit import hub
from dltoolkit.errors import ConfigError, DltkError
from dltoolkit.models.arguments import check_rate, check_units, output_layer, require
from dltoolkit.models.registry import MODELS

BACKBONE_KINDS = ("hub", "applications", "run")

# keras.applications families and the preprocess_input each expects: "tf" scales to
# [-1, 1], "torch" to ImageNet mean/std, "caffe" flips RGB to BGR and subtracts the
# ImageNet mean; None: the model rescales inside itself.
_APPLICATION_MODES = {
    "ResNet": "caffe", "VGG": "caffe", "ResNetV2": "tf", "MobileNet": "tf",
    "Inception": "tf", "Xception": "tf", "NASNet": "tf", "DenseNet": "torch",
    "EfficientNet": None, "ConvNeXt": None, "RegNet": None, "MobileNetV3": None,
}  # fmt: skip
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406]) * 255.0
_IMAGENET_STD = np.array([0.229, 0.224, 0.225]) * 255.0


@MODELS.register("transfer")
def transfer(
    input_shape: Sequence[int],
    output_units: int,
    output_activation: str | None = "softmax",
    *,
    preprocessing: keras.layers.Layer | None = None,
    input_name: str = "image",
    name: str = "transfer",
    backbone: str = "",
    weights: str | None = None,
    pooling: Literal["avg", "max"] = "avg",
    dense_units: list[int] = (),
    dropout: float = 0.2,
) -> keras.Model:
    """A pretrained backbone with a new classification or regression head.

    Args:
        input_shape: shape of one image (height, width, channels).
        output_units: units of the new output layer.
        output_activation: activation of the output layer.
        preprocessing: the task's adapted Normalization; unused, since a backbone brings
            its own preprocessing (the one it was trained with).
        input_name: name of the input (the serving signature's).
        name: model name.
        backbone: ``hub:PRESET``, ``applications:NAME`` or ``run:PATH`` (module docstring).
        weights: ``applications:`` only: the weights file (``.weights.h5`` or ``.h5``
            without the top); null: random weights.
        pooling: ``avg`` or ``max`` global pooling of the backbone's feature map.
        dense_units: units of dense layers between the pooled features and the output.
        dropout: dropout rate before each dense layer and the output.

    Returns:
        An uncompiled keras.Model whose layer ``backbone`` holds the pretrained layers.
    """
    require(len(input_shape) == 3, "model.builder transfer needs images (height, width, "
            f"channels), received input_shape={tuple(input_shape)}.")  # fmt: skip
    require(pooling in ("avg", "max"), f"model.pooling must be avg or max, received {pooling!r}.")
    check_units(dense_units, "model.dense_units")
    check_rate(dropout, "model.dropout")
    kind, _, location = backbone.partition(":")
    if kind not in BACKBONE_KINDS or not location:
        raise ConfigError(
            f"model.backbone {backbone!r} is not hub:PRESET, applications:NAME or run:PATH; "
            "name the pretrained backbone to start from (e.g. run:runs/cnn-image/RUN)."
        )
    if weights is not None and kind != "applications":
        raise ConfigError(
            f"model.weights {weights!r} is for applications: backbones; a {kind}: backbone "
            "brings its own weights. Set model.weights=null."
        )
    inputs = keras.Input(shape=tuple(input_shape), name=input_name)
    loader = {"hub": _hub_backbone, "applications": _application_backbone, "run": _run_backbone}
    layers, pretrained = loader[kind](location, tuple(input_shape), weights)
    x = inputs
    for layer in layers:
        x = layer(x)
    x = pretrained(x, training=False)
    if len(x.shape) == 4:
        pool = (
            keras.layers.GlobalAveragePooling2D
            if pooling == "avg"
            else keras.layers.GlobalMaxPooling2D
        )
        x = pool(name="global_pool")(x)
    for index, units in enumerate(dense_units):
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"dense{index + 1}_dropout")(x)
        x = keras.layers.Dense(units, activation="relu", name=f"dense{index + 1}")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = output_layer(output_units, output_activation)(x)
    return keras.Model(inputs, outputs, name=name)


def backbone_of(model: keras.Model) -> keras.Model | None:
    """The pretrained backbone inside a ``transfer`` model (its one nested model), or None."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[0] if len(nested) == 1 else None


def set_trainable(backbone: keras.Model, unfreeze: int | str) -> int:
    """Make the backbone's last ``unfreeze`` weighted layers trainable (``all``: every one;
    0: none), the rest frozen; BatchNormalization layers stay frozen either way (their
    statistics suit the pretrained weights). Returns the number of layers unfrozen."""
    weighted = [
        layer
        for layer in _leaf_layers(backbone)
        if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)
    ]
    count = len(weighted) if unfreeze == "all" else min(int(unfreeze), len(weighted))
    backbone.trainable = True
    for layer in _leaf_layers(backbone):
        layer.trainable = False
    for layer in weighted[len(weighted) - count :]:
        layer.trainable = True
    # Making a composite layer (a keras-hub block) trainable makes its sublayers so: its
    # BatchNormalization layers are frozen again, wherever they sit.
    for layer in backbone._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return count


def _leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(_leaf_layers(layer))
        else:
            found.append(layer)
    return found


# === Where backbones come from ===


def _check_input(shape: tuple[int, ...], expected: tuple, where: str) -> None:
    """One line when the data's images do not fit what the backbone takes."""
    height, width, channels = shape
    want = tuple(expected[1:]) if len(expected) == 4 else tuple(expected)
    if want[-1] is not None and want[-1] != channels:
        raise DltkError(
            f"backbone {where} takes images with {want[-1]} channels, the data has {channels}; "
            f"set data.color_mode to {'rgb' if want[-1] == 3 else 'grayscale'}."
        )
    if want[0] is not None and tuple(want[:2]) != (height, width):
        raise DltkError(
            f"backbone {where} takes {want[0]}x{want[1]} images, data.image_size gives "
            f"{height}x{width}; set data.image_size=[{want[0]},{want[1]}]."
        )


def _run_backbone(location: str, shape: tuple, weights: Any) -> tuple[list, keras.Model]:
    from dltoolkit.models import load_model

    path = Path(location)
    path = path / "model.keras" if path.is_dir() else path
    source = load_model(path)
    try:
        features = source.get_layer("output").input
    except ValueError:
        raise DltkError(
            f"model {str(path)!r} has no layer named 'output' to cut its head at; use a "
            "run of a toolkit builder as backbone."
        ) from None
    _check_input(shape, tuple(source.inputs[0].shape), f"run:{location}")
    return [], keras.Model(source.inputs, features, name="backbone")


def _application_backbone(name: str, shape: tuple, weights: str | None) -> tuple[list, Any]:
    constructor = getattr(keras.applications, name, None)
    if constructor is None or not callable(constructor) or not name[:1].isupper():
        known = sorted(n for n in dir(keras.applications) if n[:1].isupper())
        raise ConfigError(
            f"model.backbone applications:{name} is not a keras.applications model; "
            f"expected one of {', '.join(known[:8])}, ..."
        )
    if shape[-1] != 3:
        raise DltkError(
            f"backbone applications:{name} takes RGB images, the data has {shape[-1]} "
            "channel(s); set data.color_mode=rgb."
        )
    if weights is not None and not Path(weights).is_file():
        raise DltkError(
            f"model.weights {weights!r} does not exist; pass the path of a weights file for "
            f"{name} without its top (downloads are not attempted), or null for random weights."
        )
    try:
        model = constructor(include_top=False, weights=weights, input_shape=shape, name="backbone")
    except (ValueError, OSError) as error:
        raise DltkError(
            f"backbone applications:{name} could not be built for {shape[0]}x{shape[1]} "
            f"images with weights {weights!r} ({' '.join(str(error).split())[:200]})."
        ) from None
    return _application_preprocessing(name), model


def _application_preprocessing(name: str) -> list[keras.layers.Layer]:
    """``keras.applications.<family>.preprocess_input`` as serialisable layers."""
    family = max((f for f in _APPLICATION_MODES if name.startswith(f)), key=len, default=None)
    mode = _APPLICATION_MODES.get(family) if family else "tf"
    if mode is None:
        return []
    if mode == "tf":
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="backbone_preprocess")]
    if mode == "torch":
        return [
            keras.layers.Normalization(
                mean=_IMAGENET_MEAN, variance=_IMAGENET_STD**2, name="backbone_preprocess"
            )
        ]
    from dltoolkit.layers import ChannelReverse

    # caffe: RGB to BGR, then the ImageNet mean in BGR order subtracted.
    return [
        ChannelReverse(name="backbone_rgb_to_bgr"),
        keras.layers.Normalization(
            mean=np.array([103.939, 116.779, 123.68]), variance=np.ones(3),
            name="backbone_preprocess",
        ),
    ]  # fmt: skip


def _hub_backbone(preset: str, shape: tuple, weights: Any) -> tuple[list, Any]:
    keras_hub = hub.keras_hub("model.backbone hub:...")
    backbone = hub.from_preset(
        keras_hub.models.Backbone.from_preset, preset, "backbone", "mobilenet_v3_small_100_imagenet"
    )
    layers: list = []
    with contextlib.suppress(Exception):  # a preset without an image converter rescales nothing
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
        layers.append(converter)
    channels = getattr(backbone, "image_shape", (None, None, shape[-1]))[-1]
    if channels is not None and channels != shape[-1]:
        raise DltkError(
            f"backbone hub:{preset} takes images with {channels} channels, the data has "
            f"{shape[-1]}; set data.color_mode to {'rgb' if channels == 3 else 'grayscale'}."
        )
    return layers, backbone
