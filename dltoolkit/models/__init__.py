"""Model builders, registered by name and callable directly.

A builder is a function ``builder(input_shape, output_units, output_activation, *,
preprocessing=None, input_name="inputs", **hyperparameters) -> keras.Model``. The task
supplies the first arguments (shape, head); a recipe's ``model:`` section supplies the
hyperparameters by name. In Python they are plain functions:

>>> from dltoolkit import models
>>> net = models.mlp((20,), 1, "sigmoid", hidden_units=[32, 16], dropout=0.1)
>>> som = models.som((4,), map_shape=[8, 8])
"""

import zipfile
from pathlib import Path

import keras

from dltoolkit.errors import DltkError

# Importing a builder's module registers it (and the losses' module registers the losses).
from dltoolkit.models import losses  # noqa: F401
from dltoolkit.models.autoencoder import autoencoder
from dltoolkit.models.cnn import cnn
from dltoolkit.models.dec import dec
from dltoolkit.models.mlp import mlp
from dltoolkit.models.registry import (
    MODELS,
    builder_hyperparameters,
    reads_tokens,
    resolve_model_config,
    takes_argument,
)
from dltoolkit.models.rnn import rnn
from dltoolkit.models.som import som
from dltoolkit.models.text import text_cnn, text_rnn, text_transformer
from dltoolkit.models.text_transfer import text_backbone
from dltoolkit.models.transfer import backbone_of, set_trainable, transfer


def load_model(path: str | Path) -> keras.Model:
    """Load a ``.keras`` file in safe mode (no arbitrary code from the file); the toolkit's
    layers and losses are registered by this package's import. A missing, damaged or
    refused file is a DltkError saying which and what to do."""
    path = Path(path)
    if not path.is_file():
        raise DltkError(f"model file {str(path)!r} does not exist; pass a run's model.keras.")
    if not zipfile.is_zipfile(path):
        raise DltkError(
            f"{str(path)!r} is not a .keras model (a .keras file is a zip archive; this one "
            "is damaged or of another kind); train or save the model again."
        )
    _register_hub_layers(path)
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, TypeError, KeyError, OSError...
        text = " ".join(str(error).split())
        if "safe_mode" in text:
            raise DltkError(
                f"{str(path)!r} holds code (a Lambda layer or a function saved by value) that "
                "safe mode refuses to run, since loading it could run anything; rebuild the "
                "model without it."
            ) from None
        raise DltkError(
            f"{str(path)!r} could not be loaded as a Keras model "
            f"({type(error).__name__}: {text[:300]}); train or save the model again."
        ) from None


__all__ = [
    "MODELS",
    "autoencoder",
    "backbone_of",
    "builder_hyperparameters",
    "cnn",
    "dec",
    "load_model",
    "mlp",
    "reads_tokens",
    "resolve_model_config",
    "rnn",
    "set_trainable",
    "som",
    "takes_argument",
    "text_backbone",
    "text_cnn",
    "text_rnn",
    "text_transformer",
    "transfer",
]


def _register_hub_layers(path: Path) -> None:
    """Import keras-hub (which registers its layers) when the model holds some of them."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            config = archive.read("config.json") if "config.json" in names else b""
    except (OSError, zipfile.BadZipFile):
        return  # load_model names what is wrong with the file
    if b"keras_hub" in config:
        try:
            import keras_hub  # noqa: F401
        except ImportError:
            raise DltkError(
                f"{str(path)!r} holds a keras-hub backbone; install keras-hub with "
                "pip install 'dltoolkit[hub]'."
            ) from None
