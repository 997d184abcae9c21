"""What binary classification and anomaly detection share: one score per row, calibrated
into a probability where configured, a decision threshold chosen on the validation split
(by F1, a precision or recall target, or least cost in money), and a test report of the
ranking, the probabilities and the money."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np

from dltoolkit import distribute
from dltoolkit.config import RunConfig
from dltoolkit.data import ArraySplits
from dltoolkit.data.tabular import fold_validation_labels
from dltoolkit.errors import DataError
from dltoolkit.layers import Calibration
from dltoolkit.report.figures import (
    Figure,
    confusion_matrix_plot,
    load_test_extra,
    points_plot,
    ranking_plots,
    reliability_plot,
)
from dltoolkit.tasks import scorecard, thresholds
from dltoolkit.tasks.base import Evaluation, parameter_count
from dltoolkit.tasks.calibration import (
    apply_calibration,
    calibration_layer,
    check_validation_rows,
    ece_interval,
    fit_calibration,
    probability_scores,
    reliability,
)
from dltoolkit.tasks.classification import class_names
from dltoolkit.tasks.fairness import audit, group_column, group_labels
from dltoolkit.tasks.supervised import SupervisedTask, rows_with_ids
from dltoolkit.tasks.thresholds import RowCosts, choose_threshold, has_cost_model, money_view
from dltoolkit.training import Fitted


def positive(outputs: np.ndarray) -> np.ndarray:
    """Positive-class scores from an output of shape (N, 1) or (N,)."""
    return np.asarray(outputs, np.float64).reshape(len(outputs))


def calibration_of(model: keras.Model) -> Calibration | None:
    """The model's calibration layer (its last), or None for an uncalibrated model."""
    last = model.layers[-1] if model.layers else None
    return last if isinstance(last, Calibration) else None


class Thresholded(SupervisedTask):
    """Tasks that flag a row as positive when its one score reaches a threshold chosen on
    the validation split (class 1 is the positive class)."""

    classes = True
    score_name: ClassVar[str]  # the score's name in serving outputs and predictions
    # How a score is put on an unbounded scale before calibration: "logit" (a probability)
    # or "log" (a positive score).
    calibration_transform: ClassVar[str] = "logit"
    # The uncalibrated score is a probability (judged as one before calibration too).
    scores_probabilities: ClassVar[bool] = True
    pools_folds = True
    decides = True

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """The shared rules, and fairness groups that read as COLUMN or COLUMN<NUMBER."""
        super().check_config(config)
        for spec in config.report.fairness_groups:
            group_column(spec)

    # === Data ===

    def kept_columns(self) -> list[str]:
        """The columns audited for fairness."""
        columns = [group_column(spec)[0] for spec in self.config.report.fairness_groups]
        return list(dict.fromkeys(columns))

    def load_data(self, saved_features: Path | None = None) -> ArraySplits:
        """The splits; the fairness groups (test split) and the rows the calibration is
        fitted on (validation split) checked before training."""
        data = super().load_data(saved_features)
        self.fairness_groups(data)
        method = self.config.train.calibration
        if method != "none":
            check_validation_rows(method, data.y_val)
            for fold in fold_validation_labels(self.table_config(), self.config.seed, self.classes):
                check_validation_rows(method, fold)
        return data

    def fairness_groups(self, data: ArraySplits) -> dict[str, np.ndarray]:
        """Each test row's group for every ``report.fairness_groups`` entry."""
        specs = self.config.report.fairness_groups
        if not specs:
            return {}
        kept = data.table.kept_test
        return {
            spec: group_labels(kept[group_column(spec)[0]], spec, data.source) for spec in specs
        }

    # === Scores of one model ===

    def ranked(self, y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
        """The task's test scores of ``scores`` (probabilities or raw) at ``threshold``."""
        raise NotImplementedError

    def row_costs(self, data: ArraySplits, split: str) -> RowCosts | None:
        """The cost of flagging or passing each row of ``split`` (``validation`` or
        ``test``), or None without a cost model."""
        config = self.config
        if not has_cost_model(config.train.costs, config.data):
            return None
        y = data.y_val if split == "validation" else data.y_test
        amounts = None
        if config.data.amount_column is not None:
            amounts = data.table.amounts[split]
        return thresholds.row_costs(y, config.train.costs, amounts)

    def threshold(self, data: ArraySplits, validation_scores: np.ndarray) -> dict[str, Any]:
        """The decision threshold chosen on the validation split's scores."""
        costs = self.row_costs(data, "validation")
        return choose_threshold(data.y_val, validation_scores, self.config.train.threshold, costs)

    def judged(
        self,
        data: ArraySplits,
        test_scores: np.ndarray,
        threshold: float,
        uncalibrated: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Test scores at ``threshold``: ranking and decisions, the probabilities (before
        calibration too), and the money view where decisions are priced."""
        scores = self.ranked(data.y_test, test_scores, threshold)
        if "expected_calibration_error" in scores:
            scores["expected_calibration_error_interval"] = ece_interval(data.y_test, test_scores)
        if uncalibrated is not None and self.scores_probabilities:
            scores["before_calibration"] = probability_scores(data.y_test, uncalibrated)
        costs = self.row_costs(data, "test")
        if costs is not None:
            money = money_view(
                data.y_test, test_scores, threshold, costs, self.config.train.costs.currency
            )
            scores["total_cost"] = money["total_cost"]
            scores["money"] = money
        return scores

    # === The network ===

    def calibrated(self, model: keras.Model, data: ArraySplits) -> keras.Model:
        """``model`` followed by the calibration of ``train.calibration`` fitted on its
        validation scores (the model itself where none is configured)."""
        method = self.config.train.calibration
        if method == "none":
            return model
        scores = positive(self.outputs(model, data.x_val))
        arguments = fit_calibration(method, data.y_val, scores, self.calibration_transform)
        with distribute.current().scope():
            output = calibration_layer(arguments)(model.outputs[0])
            return keras.Model(model.inputs, output, name=model.name)

    def decision(self, data: ArraySplits, model: keras.Model) -> dict[str, Any]:
        """The decision threshold chosen on the validation split."""
        return self.threshold(data, positive(self.outputs(model, data.x_val)))

    def score(
        self, data: ArraySplits, outputs: np.ndarray, decision: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Test scores under the decision."""
        return self.judged(data, positive(outputs), (decision or {})["threshold"])

    def evaluate(self, fitted: Fitted, data: ArraySplits) -> Evaluation:
        """The decision and test scores; for a calibrated model also the scores of its
        probabilities before calibration, and the fitted calibration."""
        model = fitted.model
        layer = calibration_of(model)
        decision = self.decision(data, model)
        outputs = self.outputs(model, data.x_test)
        raw = None
        if layer is not None:
            raw = positive(self.outputs(keras.Model(model.inputs, layer.input), data.x_test))
        test = self.judged(data, positive(outputs), decision["threshold"], raw)
        evaluation = Evaluation(model, test, outputs, decision, uncalibrated=raw)
        if self.config.export.scorecard.enabled:
            points_scale = scorecard.scale(self.config.export.scorecard)
            evaluation.sections["scorecard"] = {
                **points_scale,
                "test": scorecard.distribution(data.y_test, positive(outputs), points_scale),
            }
        if layer is not None:
            evaluation.sections["calibration"] = {
                "method": self.config.train.calibration,
                "fitted_on": "validation",
                "validation_rows": len(data.y_val),
                "validation_positives": int(np.sum(data.y_val == 1)),
                "map": {
                    key: value
                    for key, value in layer.get_config().items()
                    if key in ("method", "transform", "slope", "intercept", "knots_x", "knots_y")
                },
            }
        return evaluation

    # === Baselines ===

    def baseline_result(
        self,
        name: str,
        fitted: Any,
        seconds: float,
        rows: int,
        data: ArraySplits,
        validation_scores: np.ndarray,
        test_scores: np.ndarray,
        parameters: int | None = None,
    ) -> dict[str, Any]:
        """A baseline's entry: its scores calibrated as the network's are (the same method,
        fitted on its own validation scores), thresholded on validation the same way."""
        raw = None
        method = self.config.train.calibration
        if method != "none":
            arguments = fit_calibration(
                method, data.y_val, validation_scores, self.calibration_transform
            )
            raw = test_scores
            validation_scores = apply_calibration(arguments, validation_scores)
            test_scores = apply_calibration(arguments, test_scores)
        chosen = self.threshold(data, validation_scores)
        return {
            "name": name,
            "test": self.judged(data, test_scores, chosen["threshold"], raw),
            "parameters": parameter_count(fitted) if parameters is None else parameters,
            "train_seconds": seconds,
            "train_rows": rows,
            "predictions": test_scores,
            "uncalibrated_predictions": raw,
        }

    def pooled_scores(
        self, y: np.ndarray, outputs: np.ndarray, uncalibrated: np.ndarray | None
    ) -> dict[str, Any]:
        """Scores of one model's out-of-fold test outputs pooled over all folds (every row
        scored once, by the fold that held it out): ranking, and the probabilities' Brier
        score, log loss and calibration error (before calibration too)."""
        from sklearn.metrics import average_precision_score, roc_auc_score

        scores = positive(outputs)
        pooled: dict[str, Any] = {
            "rows": len(y),
            "roc_auc": float(roc_auc_score(y, scores)),
            "pr_auc": float(average_precision_score(y, scores)),
        }
        calibrated = uncalibrated is not None
        if calibrated or self.scores_probabilities:
            pooled.update(probability_scores(y, scores))
        if calibrated and self.scores_probabilities:
            pooled["before_calibration"] = {
                "roc_auc": float(roc_auc_score(y, uncalibrated)),
                **probability_scores(y, uncalibrated),
            }
        return pooled

    # === What a run leaves ===

    def artefacts(
        self,
        run_dir: Path,
        data: ArraySplits,
        fitted: Fitted,
        evaluation: Evaluation,
        baselines: list[dict[str, Any]],
        echo: Callable[[str], None],
    ) -> dict[str, Any]:
        """The shared artefacts, and the fairness audit of every model's test decisions."""
        found = super().artefacts(run_dir, data, fitted, evaluation, baselines, echo)
        groups = self.fairness_groups(data)
        if not groups:
            return found
        flagged = {"network": positive(evaluation.outputs) >= evaluation.decision["threshold"]}
        for baseline in baselines:
            flagged[baseline["name"]] = baseline["predictions"] >= baseline["test"]["threshold"]
        found["fairness"] = {}
        for spec, labels in groups.items():
            audits = {name: audit(data.y_test, rows, labels) for name, rows in flagged.items()}
            found["fairness"][spec] = audits
            broken = [
                f"{name} ({', '.join(result['violations'])})"
                for name, result in audits.items()
                if result["violations"]
            ]
            verdict = "no group approved at under four fifths of the most approved group's rate"
            if broken:
                verdict = "four-fifths rule broken by " + "; ".join(broken)
            echo(f"fairness by {spec}: {verdict}")
        return found

    def summary_line(self, metrics: dict[str, Any]) -> str:
        """The shared line, then the calibration's effect and the money view where set."""
        line = super().summary_line(metrics)
        test = metrics["test"]
        if "calibration" in metrics and "expected_calibration_error" in test:
            before = test.get("before_calibration", {}).get("expected_calibration_error")
            change = f"{before:.4f} -> " if before is not None else ""
            line += (
                f" | {metrics['calibration']['method']} calibration: test ECE "
                f"{change}{test['expected_calibration_error']:.4f}"
            )
        if "money" in test:
            money = test["money"]
            currency = f" {money['currency']}" if money["currency"] else ""
            line += (
                f" | test cost{currency} {money['total_cost']:,.2f} (no model "
                f"{money['cost_without_model']:,.2f}), {money['alerts_per_1000']:.1f} alerts "
                "per 1,000 rows"
            )
        return line

    def two_classes(self, data: ArraySplits, hint: str) -> None:
        """Refuse labels with other than two classes."""
        if data.num_classes != 2:
            raise DataError(
                f"task {self.name} needs a label with exactly 2 classes, the data has "
                f"{data.num_classes}; {hint}"
            )

    def test_extras(self, evaluation: Evaluation) -> dict[str, np.ndarray]:
        """The uncalibrated test scores, kept beside the test outputs for the report."""
        if evaluation.uncalibrated is None:
            return {}
        return {"uncalibrated": evaluation.uncalibrated}

    @classmethod
    def output_figures(
        cls, metrics: dict[str, Any], y: np.ndarray, outputs: np.ndarray, run_dir: Path
    ) -> list[Figure]:
        """ROC and precision-recall curves, the confusion matrix at the threshold, and the
        reliability diagram of the probabilities (before and after calibration)."""
        scores = outputs.reshape(len(outputs))
        threshold = float(metrics.get("decision", {}).get("threshold", 0.5))
        names = metrics.get("data", {}).get("class_names") or ["0", "1"]
        note = f" at the threshold {threshold:.3g} chosen on validation"
        predicted = (scores >= threshold).astype(int)
        figures = [
            *ranking_plots(y, scores, threshold, run_dir),
            confusion_matrix_plot(y, predicted, names, run_dir, note),
        ]
        calibrated = "calibration" in metrics
        if cls.scores_probabilities or calibrated:
            method = metrics.get("calibration", {}).get("method")
            tables = {}
            before = load_test_extra(run_dir, "uncalibrated")
            if before is not None and cls.scores_probabilities:
                tables["before calibration"] = reliability(y, before)
            tables[f"after {method} calibration" if calibrated else "network"] = reliability(
                y, scores
            )
            figures.append(reliability_plot(tables, len(y), run_dir))
        if metrics.get("scorecard"):
            points = scorecard.points(scores, metrics["scorecard"])
            figures.append(points_plot(points[y == 0], points[y == 1], names, run_dir))
        return figures

    # === Serving ===

    @classmethod
    def serving_outputs(cls, model: Any, head: dict[str, Any]) -> Callable:
        """The score, and ``class_id`` and ``class_name`` at the chosen threshold."""
        import tensorflow as tf

        name_table = tf.constant(class_names(head.get("class_names"), 2))
        threshold = float(head.get("decision", {}).get("threshold", 0.5))
        key = cls.score_name

        points_scale = head.get("scorecard")

        def thresholded(output, _):
            score = tf.reshape(output, (-1,))
            class_id = tf.cast(score >= threshold, tf.int64)
            named = {
                key: score,
                "class_id": class_id,
                "class_name": tf.gather(name_table, class_id),
            }
            if points_scale:
                named["points"] = scorecard.points_tensor(score, points_scale)
            return named

        return thresholded

    @classmethod
    def prediction_rows(
        cls, outputs: np.ndarray, identifiers: list[str], written: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The score, and the class (id and name) at the run's threshold."""
        names = written.get("data", {}).get("class_names") or ["0", "1"]
        threshold = float(written.get("decision", {}).get("threshold", 0.5))
        key = cls.score_name
        points_scale = written.get("scorecard")

        def row(score: float) -> dict[str, Any]:
            class_id = int(score >= threshold)
            answer = {key: float(score), "class_id": class_id, "class_name": names[class_id]}
            if points_scale:
                answer["points"] = float(scorecard.points(np.array([score]), points_scale)[0])
            return answer

        return rows_with_ids(identifiers, outputs.reshape(len(outputs)), row)
