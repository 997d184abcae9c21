"""Multi-class classification: softmax head, cross-entropy, accuracy/F1, logistic baseline."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class ClassificationTask:
    """Everything a run needs to know that is specific to classification."""

    name = "classification"
    default_loss = "sparse_categorical_crossentropy"
    monitor_metric = "val_accuracy"

    def head(self, num_classes: int) -> dict[str, Any]:
        """Builder arguments for the output layer."""
        return {"output_units": num_classes, "output_activation": "softmax"}

    def metrics(self) -> list[str]:
        """Keras metrics compiled into the model."""
        return ["accuracy"]

    def scores(self, y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
        """Test metrics from true labels and predicted class probabilities."""
        from sklearn.metrics import accuracy_score, f1_score, log_loss

        predicted = probabilities.argmax(axis=-1)
        labels = np.arange(probabilities.shape[-1])
        return {
            "accuracy": float(accuracy_score(y_true, predicted)),
            "macro_f1": float(f1_score(y_true, predicted, average="macro", labels=labels)),
            "log_loss": float(log_loss(y_true, _normalised(probabilities), labels=labels)),
        }

    def baseline(
        self,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_test: np.ndarray,
        y_test: np.ndarray,
        num_classes: int,
    ) -> dict[str, Any]:
        """Standardised multinomial logistic regression on the flattened inputs."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        start = time.perf_counter()
        model.fit(x_train.reshape(len(x_train), -1), y_train)
        train_seconds = time.perf_counter() - start
        probabilities = model.predict_proba(x_test.reshape(len(x_test), -1))
        # Classes absent from the training split get zero probability columns.
        full = np.zeros((len(x_test), num_classes))
        full[:, model.classes_] = probabilities
        logistic = model[-1]
        return {
            "name": "logistic_regression",
            "test": self.scores(y_test, full),
            "parameters": int(logistic.coef_.size + logistic.intercept_.size),
            "train_seconds": round(train_seconds, 4),
        }


def _normalised(probabilities: np.ndarray) -> np.ndarray:
    """Clip away exact zeros and renormalise rows (float32 softmax sums drift from 1)."""
    clipped = np.clip(probabilities, 1e-7, 1.0)
    return clipped / clipped.sum(axis=-1, keepdims=True)
