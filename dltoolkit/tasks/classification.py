"""Multi-class classification: softmax head, cross-entropy, accuracy/F1, logistic baseline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dltoolkit.data import ArraySplits
from dltoolkit.data.streams import decoded_rows
from dltoolkit.interpret import saliency_figure
from dltoolkit.report.figures import Figure, confusion_matrix_plot
from dltoolkit.tasks.base import Evaluation, fit_baseline, outputs_of, parameter_count
from dltoolkit.tasks.supervised import SupervisedTask, rows_with_ids


class ClassificationTask(SupervisedTask):
    """Multi-class classification with a softmax output; the most probable class wins."""

    name = "classification"
    default_loss = "sparse_categorical_crossentropy"
    summary = ("accuracy",)
    headline_score = "accuracy"
    classes = True
    fits_classes = True

    def head(self, data: ArraySplits) -> dict[str, Any]:
        """One softmax unit per class."""
        return {"output_units": data.num_classes, "output_activation": "softmax"}

    def metrics(self) -> list[Any]:
        """Accuracy per epoch."""
        return ["accuracy"]

    def scores(
        self, y_true: np.ndarray, outputs: np.ndarray, decision: dict[str, Any] | None = None
    ) -> dict[str, float]:
        """Test metrics from true labels and predicted class probabilities."""
        from sklearn.metrics import (
            accuracy_score,
            confusion_matrix,
            f1_score,
            log_loss,
            precision_recall_fscore_support,
        )

        probabilities = np.asarray(outputs, np.float64)
        predicted = probabilities.argmax(axis=-1)
        labels = np.arange(probabilities.shape[-1])
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, predicted, labels=labels, zero_division=0
        )
        matrix = confusion_matrix(y_true, predicted, labels=labels)
        return {
            "accuracy": float(accuracy_score(y_true, predicted)),
            "macro_f1": float(
                f1_score(y_true, predicted, average="macro", labels=labels, zero_division=0)
            ),
            "log_loss": float(log_loss(y_true, _normalised(probabilities), labels=labels)),
            "per_class": {
                "precision": precision.round(6).tolist(),
                "recall": recall.round(6).tolist(),
                "f1": f1.round(6).tolist(),
                "support": support.tolist(),
            },
            "confusion_matrix": matrix.tolist(),
            "most_confused": most_confused(matrix),
        }

    def baseline_estimators(self, splits: ArraySplits) -> dict[str, Any]:
        """The classical models, by name: standardised multinomial logistic regression on
        the flattened inputs."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return {
            "logistic_regression": make_pipeline(
                StandardScaler(),
                LogisticRegression(max_iter=2000, class_weight=self.config.train.class_weight),
            )
        }

    def baselines(self, splits: ArraySplits) -> list[dict[str, Any]]:
        """Every ``baseline_estimators`` model fitted on the training split and scored on
        the test split."""
        x_train, y_train, _, x_test = self.baseline_inputs(splits)
        results = []
        for name, estimator in self.baseline_estimators(splits).items():
            fitted, seconds, rows = fit_baseline(estimator, x_train, y_train, self.config)
            probabilities = outputs_of(fitted.predict_proba, x_test)
            # Classes absent from the training split get zero probability columns.
            full = np.zeros((len(probabilities), splits.num_classes))
            full[:, fitted.classes_] = probabilities
            results.append(
                {
                    "name": name,
                    "test": self.scores(splits.y_test, full),
                    "parameters": parameter_count(fitted),
                    "train_seconds": seconds,
                    "train_rows": rows,
                }
            )
        return results

    def explain(
        self,
        evaluation: Evaluation,
        data: ArraySplits,
        run_dir: Path,
        echo: Callable[[str], None],
    ) -> dict[str, Any]:
        """Permutation importance for tables; gradient saliency maps of a few test images."""
        found = super().explain(evaluation, data, run_dir, echo)
        images = self.config.report.saliency_images
        if len(data.input_shape) == 3 and images:
            rows = np.random.default_rng(self.config.seed).choice(
                len(data.x_test), min(images, len(data.x_test)), replace=False
            )
            rows = np.sort(rows)
            found["saliency"] = saliency_figure(
                evaluation.model,
                decoded_rows(data.x_test[rows], len(rows), 0),
                data.y_test[rows],
                data.class_names,
                run_dir,
            )
        return found

    @classmethod
    def output_figures(
        cls, metrics: dict[str, Any], y: np.ndarray, outputs: np.ndarray, run_dir: Path
    ) -> list[Figure]:
        """The test split's confusion matrix."""
        names = metrics.get("data", {}).get("class_names") or []
        names = names or [str(i) for i in range(outputs.shape[-1])]
        return [confusion_matrix_plot(y, outputs.argmax(axis=-1), names, run_dir)]

    @classmethod
    def serving_outputs(cls, model: Any, head: dict[str, Any]) -> Callable:
        """``probabilities``, and the most probable ``class_id`` and ``class_name``."""
        import tensorflow as tf

        units = int(model.outputs[0].shape[-1])
        name_table = tf.constant(class_names(head.get("class_names"), units))

        def classification(probabilities, _):
            class_id = tf.argmax(probabilities, axis=-1)
            return {
                "probabilities": probabilities,
                "class_id": class_id,
                "class_name": tf.gather(name_table, class_id),
            }

        return classification

    @classmethod
    def prediction_rows(
        cls, outputs: np.ndarray, identifiers: list[str], written: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The most probable class (id and name) and every class's probability."""
        names = written.get("data", {}).get("class_names") or []
        names = names or [str(index) for index in range(outputs.shape[-1])]

        def row(probabilities: np.ndarray) -> dict[str, Any]:
            predicted = int(probabilities.argmax())
            return {
                "class_id": predicted,
                "class_name": names[predicted],
                **{f"probability_{n}": float(p) for n, p in zip(names, probabilities, strict=True)},
            }

        return rows_with_ids(identifiers, outputs, row)


def class_names(names: list[str] | None, count: int) -> list[str]:
    """The run's class names, checked against the model's ``count`` classes ("0", "1", ...
    where the run has none)."""
    from dltoolkit.errors import DltkError

    names = names or [str(index) for index in range(count)]
    if len(names) != count:
        raise DltkError(f"{len(names)} class names given for a model with {count} classes.")
    return names


def most_confused(matrix: np.ndarray, count: int = 5) -> list[dict[str, Any]]:
    """The ``count`` commonest mistakes of a confusion matrix (rows true, columns
    predicted): ``{"true", "predicted", "rows", "share"}`` with class indices, ``share``
    being the true class's rows that went to the predicted one."""
    mistakes = np.array(matrix, np.int64)
    np.fill_diagonal(mistakes, 0)
    order = np.argsort(mistakes, axis=None, kind="stable")[::-1][:count]
    totals = np.asarray(matrix).sum(axis=1)
    found = []
    for true, predicted in zip(*np.unravel_index(order, mistakes.shape), strict=True):
        rows = int(mistakes[true, predicted])
        if rows:
            share = round(rows / int(totals[true]), 4)
            entry = {"true": int(true), "predicted": int(predicted), "rows": rows}
            found.append({**entry, "share": share})
    return found


def _normalised(probabilities: np.ndarray) -> np.ndarray:
    """Clip away exact zeros and renormalise rows (float32 softmax sums drift from 1)."""
    clipped = np.clip(probabilities, 1e-7, 1.0)
    return clipped / clipped.sum(axis=-1, keepdims=True)
