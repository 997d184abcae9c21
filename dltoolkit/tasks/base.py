"""What every task provides, and the classical baselines' shared fitting and timing."""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np

from dltoolkit.config import ThresholdConfig


class Task(Protocol):
    """Everything a run needs to know that is specific to its kind of problem."""

    name: str
    default_loss: str
    headline: str  # the test score cross-validation and comparisons quote
    summary: tuple[str, ...]  # the test scores a run's summary line prints
    classes: bool  # labels are classes (indices into class names)

    def head(self, num_classes: int) -> dict[str, Any]:
        """Builder arguments for the output layer."""

    def metrics(self) -> list[Any]:
        """Keras metrics compiled into the model."""

    def fit_arrays(self, data: Any) -> tuple[np.ndarray, ...]:
        """``(x_train, y_train, x_val, y_val)`` that ``model.fit`` trains and validates on."""

    def trained(self, model: Any, data: Any) -> Any:
        """The model a run evaluates, saves and exports, made from the fitted one."""

    def decision(
        self, y_val: np.ndarray, outputs: np.ndarray, threshold: ThresholdConfig
    ) -> dict[str, Any]:
        """Settings chosen on the validation split (a binary decision threshold), or {}."""

    def scores(
        self, y_true: np.ndarray, outputs: np.ndarray, decision: dict[str, Any]
    ) -> dict[str, Any]:
        """Test scores from true labels and the model's outputs."""

    def baselines(
        self, splits: Any, threshold: ThresholdConfig, class_weight: str | None
    ) -> list[dict[str, Any]]:
        """Classical models fitted on the same training split, scored the same way."""


class Supervised:
    """Tasks whose network fits the labels as they are and is used as fitted."""

    def fit_arrays(self, data: Any) -> tuple[np.ndarray, ...]:
        """The training and validation splits unchanged."""
        return data.x_train, data.y_train, data.x_val, data.y_val

    def trained(self, model: Any, data: Any) -> Any:
        """The fitted model itself."""
        return model


def flat(x: np.ndarray) -> np.ndarray:
    """Examples as rows of a 2-D matrix."""
    return x.reshape(len(x), -1)


def fit_baseline(estimator: Any, x_train: np.ndarray, y_train: np.ndarray) -> tuple:
    """Fit a scikit-learn estimator on the flattened inputs; return it and the seconds taken."""
    start = time.perf_counter()
    estimator.fit(flat(x_train), y_train)
    return estimator, round(time.perf_counter() - start, 4)


def parameter_count(estimator: Any) -> int | None:
    """Learned numbers of a fitted linear model (None for tree ensembles)."""
    final = estimator[-1] if hasattr(estimator, "steps") else estimator
    if hasattr(final, "coef_"):
        return int(np.size(final.coef_) + np.size(final.intercept_))
    return None
