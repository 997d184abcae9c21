"""Model builders, registered by name.

A builder is a function ``builder(input_shape, output_units, output_activation, *,
preprocessing=None, input_name="inputs", **hyperparameters) -> keras.Model``. The task
supplies the first arguments (shape, head); a recipe's ``model:`` section supplies the
hyperparameters by name.
"""

from dltoolkit.models.registry import MODELS, builder_hyperparameters, resolve_model_config

# Importing a builder module registers it.
from dltoolkit.models import autoencoder, cnn, dec, mlp, rnn, som  # noqa: F401  isort: skip

__all__ = ["MODELS", "builder_hyperparameters", "resolve_model_config"]
