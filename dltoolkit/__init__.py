"""dltoolkit: a Keras 3 multi-backend deep-learning training toolkit.

The Python API (:mod:`dltoolkit.api`) is what the ``dltk`` commands call:

>>> import dltoolkit
>>> result = dltoolkit.run("cnn-image", overrides={"train.epochs": 3}, backend="jax")
>>> dltoolkit.tune("mlp-regression", max_trials=5)
>>> net = dltoolkit.models.mlp((20,), 1, "sigmoid", hidden_units=[32])

Importing this package does not import Keras, so the backend can still be chosen (the
``backend=`` argument, or ``dltoolkit.backend.use_backend``) after ``import dltoolkit``;
``dltoolkit.models`` and ``dltoolkit.tasks`` import Keras when first used.
"""

import importlib
from typing import Any

from dltoolkit.api import (
    configure,
    draw_report,
    evaluate,
    export_model,
    predictions,
    resolved,
    run,
    tune,
)
from dltoolkit.config import load_config

__version__ = "0.1.0"

_LAZY = ("models", "tasks")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"dltoolkit.{name}")
    raise AttributeError(f"module 'dltoolkit' has no attribute {name!r}")


__all__ = [
    "configure",
    "draw_report",
    "evaluate",
    "export_model",
    "load_config",
    "predictions",
    "resolved",
    "run",
    "tune",
]
