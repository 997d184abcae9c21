"""Anomaly detection: an autoencoder trained on normal rows scores rows by reconstruction error.

The labels (class 1 = anomaly) are not used to train the network: it learns to reconstruct
the normal (class 0) training rows only, and a row's anomaly score is its mean squared
reconstruction error. Labels are used on the validation split, to choose the score threshold
that flags an anomaly, and on the test split, to score the ranking (ROC-AUC, PR-AUC) and
the decisions. Baselines are unsupervised too, fitted on the same normal training rows:
an isolation forest and the reconstruction error of a PCA (a linear autoencoder).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit.config import RunConfig, fail
from dltoolkit.data import ArraySplits
from dltoolkit.data.rows import seeded_rows
from dltoolkit.data.streams import decoded_rows
from dltoolkit.errors import ConfigError, DataError
from dltoolkit.layers import ReconstructionError
from dltoolkit.report.figures import latent_picture
from dltoolkit.tasks.base import Evaluation, fit_baseline, outputs_of
from dltoolkit.tasks.binary import ranking_scores
from dltoolkit.tasks.calibration import probability_scores
from dltoolkit.tasks.thresholded import Thresholded


class AnomalyTask(Thresholded):
    """Unsupervised anomaly scores from an autoencoder's reconstruction error."""

    name = "anomaly"
    default_loss = "mse"
    summary = ("pr_auc", "roc_auc")
    headline_score = "pr_auc"
    needs_table = True
    score_name = "anomaly_score"
    # A reconstruction error is a positive number, not a probability: calibrated on its
    # logarithm (platt) or by isotonic regression, where validation has labels.
    calibrations = ("platt", "isotonic")
    calibration_transform = "log"
    scores_probabilities = False

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """The shared rules, and an autoencoder to reconstruct the rows."""
        super().check_config(config)
        if config.model.get("builder") != "autoencoder":
            raise ConfigError(
                f"task anomaly needs model.builder 'autoencoder', received "
                f"{config.model.get('builder')!r}. Set model.builder=autoencoder."
            )
        if config.export.scorecard.enabled and config.train.calibration == "none":
            fail(
                "export.scorecard.enabled",
                True,
                "false for an uncalibrated anomaly score (points need a probability; set "
                "train.calibration=platt)",
            )

    def head(self, data: ArraySplits) -> dict[str, Any]:
        """No output head (the autoencoder reconstructs its input); labels must be 0/1."""
        if data.num_classes != 2:
            raise DataError(
                f"task anomaly needs a label with 2 classes (normal, anomaly), the data has "
                f"{data.num_classes}; set data.positive_class to the anomaly class."
            )
        return {}

    def fit_arrays(self, data: Any) -> tuple[np.ndarray, ...]:
        """Normal training and validation rows, each its own target."""
        x_train, x_val = data.x_train[data.y_train == 0], data.x_val[data.y_val == 0]
        if len(x_train) == 0 or len(x_val) == 0:
            raise DataError(
                "task anomaly trains on normal rows (class 0), but the training or "
                "validation split has none; check data.positive_class."
            )
        return x_train, x_train, x_val, x_val

    def trained(self, model: Any, data: Any) -> Any:
        """The autoencoder followed by its reconstruction error: an anomaly scorer."""
        score = ReconstructionError(name="anomaly_score")([model.inputs[0], model.outputs[0]])
        return self.calibrated(keras.Model(model.inputs, score, name=model.name), data)

    def ranked(self, y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
        """Ranking scores and the decisions at the threshold; where the scores are
        calibrated into probabilities, how good those are too."""
        ranked = ranking_scores(y, scores, threshold)
        if self.config.train.calibration != "none":
            ranked.update(probability_scores(y, scores, interval=False))
        return ranked

    def scores(
        self, y_true: np.ndarray, outputs: np.ndarray, decision: dict[str, Any]
    ) -> dict[str, Any]:
        """Ranking scores of the anomaly scores and the decisions at the threshold."""
        scores = np.asarray(outputs, np.float64).reshape(-1)
        return self.ranked(y_true, scores, decision["threshold"])

    def baselines(self, splits: ArraySplits) -> list[dict[str, Any]]:
        """Isolation forest and PCA reconstruction error, fitted on normal training rows."""
        from sklearn.decomposition import PCA
        from sklearn.ensemble import IsolationForest

        normal = splits.x_train[splits.y_train == 0]
        candidates = {
            "isolation_forest": (
                IsolationForest(n_estimators=200, random_state=0),
                lambda fitted, x: -fitted.score_samples(x),
            ),
            "pca_reconstruction": (
                PCA(n_components=0.9, random_state=0),
                lambda fitted, x: np.mean(
                    (fitted.inverse_transform(fitted.transform(x)) - x) ** 2, axis=1
                ),
            ),
        }
        results = []
        for name, (estimator, score) in candidates.items():
            fitted, seconds, rows = fit_baseline(estimator, normal, None, self.config)
            scorer = functools.partial(score, fitted)  # a chunk at a time where streamed
            parameters = int(fitted.components_.size) if hasattr(fitted, "components_") else None
            results.append(
                self.baseline_result(
                    name,
                    fitted,
                    seconds,
                    rows,
                    splits,
                    outputs_of(scorer, splits.x_val),
                    outputs_of(scorer, splits.x_test),
                    parameters,
                )
            )
        return results

    def explain(
        self,
        evaluation: Evaluation,
        data: ArraySplits,
        run_dir: Path,
        echo: Callable[[str], None],
    ) -> dict[str, Any]:
        """Permutation importance, and the autoencoder's latent space of test rows by class."""
        found = super().explain(evaluation, data, run_dir, echo)
        rows = seeded_rows(len(data.x_test), 5000, self.config.seed)
        latent_picture(
            evaluation.model.get_layer("encoder"),
            decoded_rows(data.x_test[rows], len(rows), 0),
            np.asarray(data.y_test)[rows],
            data.class_names or ["normal", "anomaly"],
            "Autoencoder latent space of test rows, by class",
            run_dir,
        )
        return found
