"""Self-Organizing Map models and the measures used to judge and draw a trained map."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import keras
import numpy as np

from dltoolkit.errors import ConfigError
from dltoolkit.layers.som import SelfOrganizingMap, som_layers
from dltoolkit.models.arguments import require
from dltoolkit.models.registry import MODELS


@MODELS.register("som")
def som(
    input_shape: Sequence[int],
    output_units: int | None = None,
    output_activation: str | None = None,
    *,
    preprocessing: keras.layers.Layer | None = None,
    input_name: str = "inputs",
    name: str = "som",
    map_shape: list[int] = (10, 10),
    topology: Literal["rectangular", "hexagonal"] = "rectangular",
    neighborhood: Literal["gaussian", "bubble"] = "gaussian",
    sigma: float | None = None,
    sigma_end: float = 0.5,
    learning_rate: float = 0.5,
    learning_rate_end: float = 0.05,
    decay: Literal["exponential", "linear"] = "exponential",
) -> keras.Model:
    """A Self-Organizing Map model: (preprocessing) -> flatten -> SelfOrganizingMap.

    Train it with ``model.compile()`` and ``model.fit(x, epochs=..., batch_size=...,
    callbacks=[dltoolkit.layers.SOMSchedule()])``; the loss ``fit`` reports is the
    quantization error. ``predict`` returns a dict with ``bmu``, ``bmu_coordinates`` and
    ``distances`` (see :class:`~dltoolkit.layers.SelfOrganizingMap`).

    Args:
        input_shape: shape of one example, without the batch axis (flattened if rank > 1).
        output_units: must be None: a map has no output head, its size is ``map_shape``.
        output_activation: must be None, as ``output_units``.
        preprocessing: optional layer applied to the raw input (e.g. an adapted
            ``keras.layers.Normalization``, which a SOM needs when features differ in scale).
        input_name: name of the input.
        name: model name.
        map_shape: ``[rows, columns]`` of the map.
        topology: ``rectangular`` or ``hexagonal`` grid.
        neighborhood: ``gaussian`` or ``bubble``.
        sigma: starting neighbourhood radius; default half the longer side of the map.
        sigma_end: final neighbourhood radius.
        learning_rate: starting learning rate in (0, 1]; use about 1 with large batches.
        learning_rate_end: final learning rate.
        decay: ``exponential`` or ``linear`` decay of sigma and the learning rate.

    Returns:
        An uncompiled keras.Model.

    Example:
        >>> model = som((64,), map_shape=[20, 20], topology="hexagonal")
    """
    require(
        output_units is None and output_activation is None,
        "a som has no output head; its units are model.map_shape. Received output_units="
        f"{output_units}, output_activation={output_activation!r}.",
    )
    require(
        len(map_shape) == 2 and all(size > 0 for size in map_shape),
        f"model.map_shape must be [rows, columns] of positive integers, received {map_shape}.",
    )
    try:
        layer = SelfOrganizingMap(
            map_shape,
            topology=topology,
            neighborhood=neighborhood,
            sigma=sigma,
            sigma_end=sigma_end,
            learning_rate=learning_rate,
            learning_rate_end=learning_rate_end,
            decay=decay,
            name="som",
        )
    except ValueError as error:
        raise ConfigError(f"model: {error}") from None

    # === Layers ===
    inputs = keras.Input(shape=tuple(input_shape), name=input_name)
    x = preprocessing(inputs) if preprocessing is not None else inputs
    if len(input_shape) > 1:
        x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, layer(x), name=name)


def the_som_layer(model: keras.Model) -> SelfOrganizingMap:
    """The one SelfOrganizingMap layer of ``model`` (which may be the layer itself)."""
    if isinstance(model, SelfOrganizingMap):
        return model
    layers = som_layers(model)
    if len(layers) != 1:
        raise ValueError(
            f"expected a model with one SelfOrganizingMap layer, {model.name!r} has {len(layers)}."
        )
    return layers[0]


def _neighbour_reach(layer: SelfOrganizingMap) -> float:
    """Largest grid distance between neighbouring units (diagonals count on a rectangle)."""
    return (1.0 if layer.topology == "hexagonal" else np.sqrt(2.0)) + 1e-4


def map_examples(model: keras.Model, x, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """``model.predict`` as NumPy: ``bmu``, ``bmu_coordinates`` and ``distances`` per example."""
    outputs = model.predict(x, batch_size=batch_size, verbose=0)
    if not isinstance(outputs, dict) or "distances" not in outputs:
        raise ValueError(
            f"model {model.name!r} does not output a SelfOrganizingMap's dict; build it "
            "with dltoolkit.models.som or end it with a SelfOrganizingMap layer."
        )
    return {key: np.asarray(value) for key, value in outputs.items()}


def quantization_error(model: keras.Model, x, batch_size: int = 1024) -> float:
    """Mean Euclidean distance from each example to its best-matching unit."""
    distances = map_examples(model, x, batch_size)["distances"]
    return float(distances.min(axis=1).mean())


def topographic_error(model: keras.Model, x, batch_size: int = 1024) -> float:
    """Share of examples whose first and second best-matching units are not neighbours.

    Neighbours are units at grid distance 1 (hexagonal) or up to sqrt(2) (rectangular,
    diagonals included).
    """
    layer = the_som_layer(model)
    distances = map_examples(model, x, batch_size)["distances"]
    first_two = np.argpartition(distances, 1, axis=1)[:, :2]
    coordinates = layer.coordinates
    gap = np.linalg.norm(coordinates[first_two[:, 0]] - coordinates[first_two[:, 1]], axis=1)
    return float(np.mean(gap > _neighbour_reach(layer)))


def hit_map(model: keras.Model, x, batch_size: int = 1024) -> np.ndarray:
    """``(rows, columns)`` count of examples whose best-matching unit is each unit."""
    layer = the_som_layer(model)
    bmu = map_examples(model, x, batch_size)["bmu"]
    return np.bincount(bmu, minlength=layer.units).reshape(layer.map_shape)


def label_map(
    model: keras.Model, x, labels: Sequence, empty=-1, batch_size: int = 1024
) -> np.ndarray:
    """``(rows, columns)`` most frequent label among the examples each unit wins.

    Units that win no example hold ``empty``. Ties go to the label that sorts first.
    """
    layer = the_som_layer(model)
    labels = np.asarray(labels)
    if len(labels) != len(x):
        raise ValueError(f"label_map got {len(x)} examples and {len(labels)} labels.")
    classes, label_index = np.unique(labels, return_inverse=True)
    bmu = map_examples(model, x, batch_size)["bmu"]
    counts = np.zeros((layer.units, len(classes)), dtype=np.int64)
    np.add.at(counts, (bmu, label_index), 1)
    winners = classes[counts.argmax(axis=1)].astype(object)
    winners[counts.sum(axis=1) == 0] = empty
    return np.array(winners.tolist()).reshape(layer.map_shape)


def component_planes(model: keras.Model) -> np.ndarray:
    """``(features, rows, columns)``: each input feature's codebook value at every unit,
    for drawing one map per feature (how a feature varies across the map)."""
    layer = the_som_layer(model)
    codebook = keras.ops.convert_to_numpy(layer.codebook)
    return codebook.T.reshape((codebook.shape[1], *layer.map_shape))


def u_matrix(model: keras.Model) -> np.ndarray:
    """``(rows, columns)`` mean distance from each unit's codebook vector to its neighbours'.

    High values mark borders between clusters; low values mark their interiors.
    """
    layer = the_som_layer(model)
    codebook = keras.ops.convert_to_numpy(layer.codebook)
    coordinates = layer.coordinates
    reach = _neighbour_reach(layer)
    total = np.zeros(layer.units)
    count = np.zeros(layer.units)
    # Row by row keeps memory at O(units) per step, whatever the size of the map.
    for unit in range(layer.units):
        grid = np.linalg.norm(coordinates - coordinates[unit], axis=1)
        neighbours = np.flatnonzero((grid > 0) & (grid <= reach))
        total[unit] = np.linalg.norm(codebook[neighbours] - codebook[unit], axis=1).sum()
        count[unit] = len(neighbours)
    return (total / np.maximum(count, 1)).reshape(layer.map_shape)
