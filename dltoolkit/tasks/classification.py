"""Multi-class classification: softmax head, cross-entropy, accuracy/F1, logistic baseline."""

from __future__ import annotations

from typing import Any

import numpy as np

from dltoolkit.config import ThresholdConfig
from dltoolkit.tasks.base import Supervised, fit_baseline, flat, parameter_count


class ClassificationTask(Supervised):
    """Multi-class classification with a softmax output."""

    name = "classification"
    default_loss = "sparse_categorical_crossentropy"
    headline = "accuracy"
    summary = ("accuracy",)
    classes = True

    def head(self, num_classes: int) -> dict[str, Any]:
        """Builder arguments for the output layer."""
        return {"output_units": num_classes, "output_activation": "softmax"}

    def metrics(self) -> list[Any]:
        """Keras metrics compiled into the model."""
        return ["accuracy"]

    def decision(
        self, y_val: np.ndarray, outputs: np.ndarray, threshold: ThresholdConfig
    ) -> dict[str, Any]:
        """The most probable class wins; nothing to choose."""
        return {}

    def scores(
        self, y_true: np.ndarray, outputs: np.ndarray, decision: dict[str, Any] | None = None
    ) -> dict[str, float]:
        """Test metrics from true labels and predicted class probabilities."""
        from sklearn.metrics import accuracy_score, f1_score, log_loss

        probabilities = np.asarray(outputs, np.float64)
        predicted = probabilities.argmax(axis=-1)
        labels = np.arange(probabilities.shape[-1])
        return {
            "accuracy": float(accuracy_score(y_true, predicted)),
            "macro_f1": float(f1_score(y_true, predicted, average="macro", labels=labels)),
            "log_loss": float(log_loss(y_true, _normalised(probabilities), labels=labels)),
        }

    def baselines(
        self, splits: Any, threshold: ThresholdConfig, class_weight: str | None
    ) -> list[dict[str, Any]]:
        """Standardised multinomial logistic regression on the flattened inputs."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        estimator = make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=2000, class_weight=class_weight)
        )
        fitted, seconds = fit_baseline(estimator, splits.x_train, splits.y_train)
        probabilities = fitted.predict_proba(flat(splits.x_test))
        # Classes absent from the training split get zero probability columns.
        full = np.zeros((len(splits.x_test), splits.num_classes))
        full[:, fitted.classes_] = probabilities
        return [
            {
                "name": "logistic_regression",
                "test": self.scores(splits.y_test, full),
                "parameters": parameter_count(fitted),
                "train_seconds": seconds,
            }
        ]


def _normalised(probabilities: np.ndarray) -> np.ndarray:
    """Clip away exact zeros and renormalise rows (float32 softmax sums drift from 1)."""
    clipped = np.clip(probabilities, 1e-7, 1.0)
    return clipped / clipped.sum(axis=-1, keepdims=True)
