"""Binary classification: one sigmoid output, a decision threshold chosen on validation.

Scores cover ranking (ROC-AUC, PR-AUC as average precision, Gini, KS), probabilities
(Brier score, log loss, a reliability table and expected calibration error) and the
decisions at the threshold (precision, recall, F1,
confusion matrix). Class 1 (the second class name in sorted order) is the positive class.
Baselines: logistic regression and histogram gradient boosting, calibrated and thresholded
the same way.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from dltoolkit.data import ArraySplits
from dltoolkit.report.figures import TOP_SHARE
from dltoolkit.tasks.base import fit_baseline, outputs_of
from dltoolkit.tasks.boosting import EarlyStopped, installed_boosting
from dltoolkit.tasks.calibration import probability_scores
from dltoolkit.tasks.thresholded import Thresholded, positive


def top_share_scores(y: np.ndarray, score: np.ndarray, share: float = TOP_SHARE) -> dict[str, Any]:
    """Positives among the ``share`` of rows scored highest: their count, the share of all
    positives they are (cumulative gain) and that share over ``share`` (lift)."""
    rows = max(1, round(share * len(y)))
    top = np.argsort(-np.asarray(score, np.float64), kind="stable")[:rows]
    found = int(np.sum(y[top] == 1))
    captured = found / max(int(np.sum(y == 1)), 1)
    percent = round(share * 100)
    return {
        f"positives_in_top_{percent}pct": found,
        f"captured_top_{percent}pct": float(captured),
        f"lift_top_{percent}pct": float(captured * len(y) / rows),
    }


def ranking_scores(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, Any]:
    """Ranking scores (ROC-AUC, PR-AUC as average precision, Gini, KS, positives in the
    top 20%) of any score where higher means more likely positive, and the decisions
    ``score >= threshold``."""
    from sklearn.metrics import (
        average_precision_score,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
        roc_curve,
    )

    predicted = (score >= threshold).astype(np.int64)
    both = len(np.unique(y)) == 2
    false_positive_rate, true_positive_rate, _ = roc_curve(y, score) if both else ([0], [0], None)
    roc_auc = float(roc_auc_score(y, score)) if both else float("nan")
    return {
        "roc_auc": roc_auc,
        "pr_auc": float(average_precision_score(y, score)) if both else float("nan"),
        "gini": 2 * roc_auc - 1,
        "ks": float(np.max(np.asarray(true_positive_rate) - np.asarray(false_positive_rate))),
        **top_share_scores(y, score),
        "threshold": float(threshold),
        "accuracy": float(np.mean(predicted == y)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "confusion_matrix": confusion_matrix(y, predicted, labels=[0, 1]).tolist(),
    }


def binary_scores(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """Ranking, probability and decision scores of positive-class probabilities ``p``."""
    return {**ranking_scores(y, p, threshold), **probability_scores(y, p, interval=False)}


class BinaryTask(Thresholded):
    """Binary classification with a sigmoid output."""

    name = "binary"
    default_loss = "binary_crossentropy"
    summary = ("roc_auc", "pr_auc")
    headline_score = "roc_auc"
    fits_classes = True
    score_name = "probability"
    calibrations = ("platt", "isotonic", "temperature")

    def head(self, data: ArraySplits) -> dict[str, Any]:
        """One sigmoid unit; refuses labels with other than two classes."""
        self.two_classes(data, "use task: classification for more.")
        return {"output_units": 1, "output_activation": "sigmoid"}

    def metrics(self) -> list[Any]:
        """ROC-AUC and PR-AUC (Keras' AUC metrics), tracked per epoch."""
        import keras

        return [keras.metrics.AUC(name="auc"), keras.metrics.AUC(curve="PR", name="pr_auc")]

    def trained(self, model: keras.Model, data: ArraySplits) -> keras.Model:
        """The fitted network, calibrated where ``train.calibration`` says."""
        return self.calibrated(model, data)

    def ranked(self, y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
        """Binary scores of probabilities at ``threshold``."""
        return binary_scores(y, scores, threshold)

    def scores(
        self, y_true: np.ndarray, outputs: np.ndarray, decision: dict[str, Any]
    ) -> dict[str, Any]:
        """Binary scores at the chosen threshold."""
        return binary_scores(y_true, positive(outputs), decision["threshold"])

    def baseline_estimators(self, splits: ArraySplits) -> dict[str, Any]:
        """Logistic regression, histogram gradient boosting (no early stopping) and, where
        installed, LightGBM and XGBoost (early-stopped on validation), each with the
        network's class weighting."""
        class_weight = self.config.train.class_weight
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        candidates: dict[str, Any] = {
            "logistic_regression": make_pipeline(
                StandardScaler(), LogisticRegression(max_iter=5000, class_weight=class_weight)
            ),
            # The L2 penalty on leaf values (XGBoost's default of 1) keeps boosting stable
            # on rare positives: unpenalised, its PR-AUC on time-split card fraud falls below 0.3.
            "hist_gradient_boosting": HistGradientBoostingClassifier(
                early_stopping=False,
                l2_regularization=1.0,
                class_weight=class_weight,
                random_state=0,
            ),
        }
        for library in installed_boosting():
            candidates[library] = EarlyStopped(
                library, splits.x_val, splits.y_val, class_weight, self.config.seed
            )
        return candidates

    def baselines(self, splits: ArraySplits) -> list[dict[str, Any]]:
        """Every ``baseline_estimators`` model, calibrated and thresholded as the network is."""
        x_train, y_train, x_val, x_test = self.baseline_inputs(splits)
        results = []
        for name, estimator in self.baseline_estimators(splits).items():
            fitted, seconds, rows = fit_baseline(estimator, x_train, y_train, self.config)
            p_val = outputs_of(fitted.predict_proba, x_val)[:, 1]
            p_test = outputs_of(fitted.predict_proba, x_test)[:, 1]
            size = {}
            if isinstance(fitted, EarlyStopped):
                size = {"parameters": fitted.leaves, "trees": fitted.trees}
            result = self.baseline_result(
                name, fitted, seconds, rows, splits, p_val, p_test, size.get("parameters")
            )
            results.append({**result, **size})
        return results
