"""A Self-Organizing Map (Kohonen map) as a Keras layer that trains inside ``model.fit``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

TOPOLOGIES = ("rectangular", "hexagonal")
NEIGHBORHOODS = ("gaussian", "bubble")
DECAYS = ("exponential", "linear")


def grid_coordinates(map_shape: Sequence[int], topology: str = "rectangular") -> np.ndarray:
    """Planar coordinates ``(units, 2)`` of every unit, row-major, as ``(row, column)``.

    On a hexagonal grid odd rows are shifted half a unit right and rows are ``sqrt(3)/2``
    apart, so every unit's six neighbours are at distance 1.
    """
    rows, columns = map_shape
    row, column = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
    row, column = row.astype(np.float32).ravel(), column.astype(np.float32).ravel()
    if topology == "hexagonal":
        column = column + 0.5 * (row % 2)
        row = row * np.float32(math.sqrt(3) / 2)
    return np.stack([row, column], axis=1).astype(np.float32)


@keras.saving.register_keras_serializable(package="dltoolkit")
class SelfOrganizingMap(keras.layers.Layer):
    """A Self-Organizing Map whose codebook is learned by the batch SOM rule during ``fit``.

    The codebook is a non-trainable weight. In ``call(..., training=True)`` each batch
    moves every unit towards the neighbourhood-weighted mean of the examples in the batch,
    ``w_j += lr(t) * (sum_i h_ij x_i / sum_i h_ij - w_j)``, with ``h_ij`` the neighbourhood
    of example ``i``'s best-matching unit (BMU) evaluated at unit ``j``. The neighbourhood
    radius ``sigma`` and the learning rate decay from their start to their end values over
    ``decay_steps`` training steps (set it, or train with :class:`SOMSchedule` which sets it
    from ``epochs * steps``). The layer adds the quantization error (mean distance from an
    example to its BMU) as its loss, so ``fit`` reports it; there are no gradients.

    Args:
        map_shape: ``(rows, columns)`` of the map.
        topology: ``rectangular`` or ``hexagonal`` grid.
        neighborhood: ``gaussian`` (``exp(-d^2 / 2 sigma^2)``) or ``bubble``
            (1 within distance ``sigma``, else 0).
        sigma: starting neighbourhood radius in grid units; default ``max(map_shape) / 2``.
        sigma_end: final neighbourhood radius.
        learning_rate: starting learning rate, in (0, 1].
        learning_rate_end: final learning rate, in (0, 1].
        decay: ``exponential`` (geometric interpolation) or ``linear`` between start and end.
        decay_steps: training steps over which sigma and the learning rate decay.
        codebook_initializer: initializer of the ``(units, features)`` codebook; for faster
            training call :meth:`initialize_from` with data instead.

    Input shape:
        ``(batch, features)``.

    Output shape:
        A dict: ``bmu`` ``(batch,)`` int32 unit index (row-major), ``bmu_coordinates``
        ``(batch, 2)`` float32 ``(row, column)`` of the BMU on the grid, and ``distances``
        ``(batch, units)`` float32 Euclidean distance to every unit.

    Example:
        >>> som = SelfOrganizingMap((10, 10), decay_steps=1000)
        >>> outputs = som(keras.ops.ones((4, 3)))
        >>> tuple(outputs["distances"].shape)
        (4, 100)
    """

    def __init__(
        self,
        map_shape: Sequence[int],
        topology: str = "rectangular",
        neighborhood: str = "gaussian",
        sigma: float | None = None,
        sigma_end: float = 0.5,
        learning_rate: float = 0.5,
        learning_rate_end: float = 0.01,
        decay: str = "exponential",
        decay_steps: int | None = None,
        codebook_initializer: str | keras.initializers.Initializer = "random_uniform",
        **kwargs,
    ) -> None:
        # The update is a running average: keep it in float32 under mixed precision.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        map_shape = tuple(int(size) for size in map_shape)
        if len(map_shape) != 2 or min(map_shape) < 1:
            raise ValueError(
                f"map_shape must be (rows, columns) of positive integers. Received: "
                f"map_shape={map_shape}"
            )
        if topology not in TOPOLOGIES:
            raise ValueError(f"topology must be one of {TOPOLOGIES}. Received: {topology!r}")
        if neighborhood not in NEIGHBORHOODS:
            raise ValueError(
                f"neighborhood must be one of {NEIGHBORHOODS}. Received: {neighborhood!r}"
            )
        if decay not in DECAYS:
            raise ValueError(f"decay must be one of {DECAYS}. Received: {decay!r}")
        sigma = float(max(map_shape)) / 2 if sigma is None else float(sigma)
        if not 0 < sigma_end <= sigma:
            raise ValueError(
                f"Need 0 < sigma_end <= sigma. Received: sigma={sigma}, sigma_end={sigma_end}"
            )
        if not 0 < learning_rate_end <= learning_rate <= 1:
            raise ValueError(
                "Need 0 < learning_rate_end <= learning_rate <= 1. Received: "
                f"learning_rate={learning_rate}, learning_rate_end={learning_rate_end}"
            )
        if decay_steps is not None and decay_steps < 1:
            raise ValueError(f"decay_steps must be a positive integer. Received: {decay_steps}")
        self.map_shape = map_shape
        self.topology = topology
        self.neighborhood = neighborhood
        self.sigma = sigma
        self.sigma_end = float(sigma_end)
        self.learning_rate = float(learning_rate)
        self.learning_rate_end = float(learning_rate_end)
        self.decay = decay
        self.decay_steps = decay_steps
        self.codebook_initializer = keras.initializers.get(codebook_initializer)
        self.units = map_shape[0] * map_shape[1]
        self.coordinates = grid_coordinates(map_shape, topology)

    def build(self, input_shape) -> None:
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                "SelfOrganizingMap expects inputs of shape (batch, features); flatten first. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.features = int(input_shape[-1])
        self.codebook = self.add_weight(
            shape=(self.units, self.features),
            initializer=self.codebook_initializer,
            trainable=False,
            name="codebook",
        )
        # Training steps taken, and the length of the decay (0 until known).
        self.iterations = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="iterations"
        )
        self.total_steps = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.decay_steps or 0),
            trainable=False,
            name="total_steps",
        )

    def set_decay_steps(self, steps: int) -> None:
        """Decay sigma and the learning rate over ``steps`` training steps from now on."""
        if steps < 1:
            raise ValueError(f"decay_steps must be a positive integer. Received: {steps}")
        self.decay_steps = int(steps)
        if self.built:
            self.total_steps.assign(float(steps))

    def reset_schedule(self) -> None:
        """Start sigma and the learning rate from their start values again."""
        self.iterations.assign(0.0)

    def initialize_from(self, x: np.ndarray, method: str = "pca", seed: int = 0) -> None:
        """Set the codebook from data before training, which shortens training a lot.

        ``pca`` spreads the units over the plane of the two leading principal components
        (Kohonen's linear initialisation); ``sample`` picks random examples.
        """
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        if not self.built:
            self.build((None, x.shape[1]))
        if x.shape[1] != self.features:
            raise ValueError(
                f"initialize_from got {x.shape[1]} features; the map has {self.features}."
            )
        if method == "sample":
            rng = np.random.default_rng(seed)
            codebook = x[rng.choice(len(x), self.units, replace=len(x) < self.units)]
        elif method == "pca":
            mean = x.mean(axis=0)
            _, singular, components = np.linalg.svd(x - mean, full_matrices=False)
            count = min(2, len(singular))
            scale = singular[:count] / math.sqrt(max(len(x) - 1, 1))
            coordinates = self.coordinates - self.coordinates.mean(axis=0)
            coordinates /= np.maximum(np.abs(coordinates).max(axis=0), 1e-12)
            # The leading component runs along the longer side of the map.
            if self.map_shape[1] > self.map_shape[0]:
                coordinates = coordinates[:, ::-1]
            codebook = mean + (coordinates[:, :count] * scale) @ components[:count]
        else:
            raise ValueError(f"method must be 'pca' or 'sample'. Received: {method!r}")
        self.codebook.assign(codebook.astype(np.float32))

    def current_sigma_and_learning_rate(self):
        """Neighbourhood radius and learning rate at the current training step."""
        progress = ops.minimum(self.iterations / ops.maximum(self.total_steps, 1.0), 1.0)
        if self.decay == "linear":
            sigma = self.sigma + (self.sigma_end - self.sigma) * progress
            rate = self.learning_rate + (self.learning_rate_end - self.learning_rate) * progress
        else:
            sigma = self.sigma * ops.power(self.sigma_end / self.sigma, progress)
            rate = self.learning_rate * ops.power(
                self.learning_rate_end / self.learning_rate, progress
            )
        return sigma, rate

    def call(self, inputs, training=None):
        x = ops.cast(inputs, "float32")
        codebook = ops.convert_to_tensor(self.codebook)
        # |x - w|^2 = |x|^2 - 2 x.w + |w|^2: one matrix product for the whole batch.
        squared = (
            ops.sum(x * x, axis=1, keepdims=True)
            - 2.0 * ops.matmul(x, ops.transpose(codebook))
            + ops.sum(codebook * codebook, axis=1)[None, :]
        )
        squared = ops.maximum(squared, 0.0)
        bmu = ops.cast(ops.argmin(squared, axis=1), "int32")
        coordinates = ops.convert_to_tensor(self.coordinates)
        bmu_coordinates = ops.take(coordinates, bmu, axis=0)
        distances = ops.sqrt(squared)
        self.add_loss(ops.mean(ops.min(distances, axis=1)))  # the quantization error
        if training:
            if self.decay_steps is None:
                raise ValueError(
                    "SelfOrganizingMap needs decay_steps before training: pass "
                    "decay_steps=epochs * steps_per_epoch, call set_decay_steps(), or add "
                    "dltoolkit.layers.SOMSchedule() to fit's callbacks."
                )
            self._update(x, codebook, bmu_coordinates, coordinates)
        return {
            "bmu": bmu,
            "bmu_coordinates": bmu_coordinates,
            "distances": distances,
        }

    def _update(self, x, codebook, bmu_coordinates, coordinates) -> None:
        sigma, rate = self.current_sigma_and_learning_rate()
        grid_squared = ops.sum(
            ops.square(bmu_coordinates[:, None, :] - coordinates[None, :, :]), axis=-1
        )
        if self.neighborhood == "gaussian":
            influence = ops.exp(-grid_squared / (2.0 * sigma * sigma))
        else:
            influence = ops.cast(grid_squared <= sigma * sigma, "float32")
        weight = ops.sum(influence, axis=0)  # (units,)
        pulled = ops.matmul(ops.transpose(influence), x)  # (units, features)
        reached = ops.cast(weight > 1e-12, "float32")[:, None]
        target = pulled / ops.maximum(weight, 1e-12)[:, None]
        self.codebook.assign(codebook + rate * reached * (target - codebook))
        self.iterations.assign(self.iterations + 1.0)

    def compute_output_spec(self, inputs, training=None):
        batch = inputs.shape[0]
        return {
            "bmu": keras.KerasTensor((batch,), dtype="int32"),
            "bmu_coordinates": keras.KerasTensor((batch, 2), dtype="float32"),
            "distances": keras.KerasTensor((batch, self.units), dtype="float32"),
        }

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "map_shape": list(self.map_shape),
            "topology": self.topology,
            "neighborhood": self.neighborhood,
            "sigma": self.sigma,
            "sigma_end": self.sigma_end,
            "learning_rate": self.learning_rate,
            "learning_rate_end": self.learning_rate_end,
            "decay": self.decay,
            "decay_steps": self.decay_steps,
            "codebook_initializer": keras.initializers.serialize(self.codebook_initializer),
        }


class SOMSchedule(keras.callbacks.Callback):
    """Sets every SelfOrganizingMap's ``decay_steps`` to the length of this ``fit`` call.

    Sigma and the learning rate then reach their end values on the last step, whatever
    the number of epochs and the batch size. The schedule restarts at each ``fit``.
    """

    def on_train_begin(self, logs=None) -> None:
        steps = self.params.get("steps")
        epochs = self.params.get("epochs")
        if not steps or not epochs:
            raise ValueError(
                "SOMSchedule needs a known number of steps per epoch; pass arrays, or "
                "steps_per_epoch= with a dataset."
            )
        for layer in som_layers(self.model):
            layer.set_decay_steps(int(steps) * int(epochs))
            layer.reset_schedule()


def som_layers(model: keras.Model) -> list[SelfOrganizingMap]:
    """Every SelfOrganizingMap layer inside ``model`` (nested models included)."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, SelfOrganizingMap)]
