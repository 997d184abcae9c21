"""The model-builder registry and validation of a recipe's ``model:`` section."""

from __future__ import annotations

import inspect
import typing
from typing import Any

from dltoolkit.config import coerce
from dltoolkit.errors import ConfigError, did_you_mean
from dltoolkit.registry import Registry

MODELS: Registry = Registry("model builder")

# Arguments the task and the data decide; a recipe cannot set them.
STRUCTURAL_ARGUMENTS = frozenset(
    {
        "input_shape",
        "output_units",
        "output_activation",
        "preprocessing",
        "input_name",
        "name",
        "vocabulary_size",
        "pad_id",
    }
)


def builder_hyperparameters(builder_name: str) -> dict[str, inspect.Parameter]:
    """The hyperparameters (keyword arguments a recipe may set) of a builder."""
    builder = MODELS.get(builder_name)
    return {
        name: parameter
        for name, parameter in inspect.signature(builder).parameters.items()
        if name not in STRUCTURAL_ARGUMENTS
        and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    }


def reads_tokens(builder_name: str) -> bool:
    """Whether a builder takes token ids (it is sized by ``vocabulary_size``): a builder
    for the text tasks."""
    return "vocabulary_size" in inspect.signature(MODELS.get(builder_name)).parameters


def takes_argument(builder_name: str, argument: str) -> bool:
    """Whether a builder takes ``argument`` (a structural one the task may supply, such as
    ``pad_id``: the padding id of a pretrained backbone's tokenizer)."""
    return argument in inspect.signature(MODELS.get(builder_name)).parameters


def resolve_model_config(model: dict[str, Any]) -> dict[str, Any]:
    """Fill a ``model:`` section with the builder's defaults and type-check every value.

    Raises ConfigError for an unknown builder, an unknown hyperparameter (with the dotted
    path and a suggestion) or a value of the wrong type.
    """
    builder_name = model.get("builder")
    parameters = builder_hyperparameters(builder_name)
    hints = typing.get_type_hints(MODELS.get(builder_name))
    for key in model:
        if key != "builder" and key not in parameters:
            suggestion = did_you_mean(f"model.{key}", [f"model.{name}" for name in parameters])
            raise ConfigError(
                f"unknown config key 'model.{key}'{suggestion} for builder "
                f"{builder_name!r}; valid keys: builder, {', '.join(parameters)}."
            )
    resolved: dict[str, Any] = {"builder": builder_name}
    for name, parameter in parameters.items():
        value = model.get(name, parameter.default)
        if value is inspect.Parameter.empty:
            raise ConfigError(f"model.{name} is required by builder {builder_name!r}.")
        if isinstance(value, tuple):
            value = list(value)
        resolved[name] = coerce(value, hints.get(name, Any), f"model.{name}")
    return resolved
