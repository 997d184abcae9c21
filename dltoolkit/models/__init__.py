"""Model builders, registered by name and callable directly.

A builder is a function ``builder(input_shape, output_units, output_activation, *,
preprocessing=None, input_name="inputs", **hyperparameters) -> keras.Model``. The task
supplies the first arguments (shape, head); a recipe's ``model:`` section supplies the
hyperparameters by name. In Python they are plain functions:

>>> from dltoolkit import models
>>> net = models.mlp((20,), 1, "sigmoid", hidden_units=[32, 16], dropout=0.1)
>>> som = models.som((4,), map_shape=[8, 8])
"""

from pathlib import Path

import keras

# Importing a builder's module registers it (and the losses' module registers the losses).
from dltoolkit.models import losses  # noqa: F401
from dltoolkit.models.autoencoder import autoencoder
from dltoolkit.models.cnn import cnn
from dltoolkit.models.dec import dec
from dltoolkit.models.mlp import mlp
from dltoolkit.models.registry import MODELS, builder_hyperparameters, resolve_model_config
from dltoolkit.models.rnn import rnn
from dltoolkit.models.som import som


def load_model(path: str | Path) -> keras.Model:
    """Load a ``.keras`` file in safe mode (no arbitrary code from the file); the toolkit's
    layers and losses are registered by this package's import."""
    return keras.saving.load_model(path, safe_mode=True)


__all__ = [
    "MODELS",
    "autoencoder",
    "builder_hyperparameters",
    "cnn",
    "dec",
    "load_model",
    "mlp",
    "resolve_model_config",
    "rnn",
    "som",
]
