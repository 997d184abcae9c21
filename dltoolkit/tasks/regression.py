"""Regression: one linear output in the target's units; RMSE, MAE, R2; ridge and boosting."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit.data import ArraySplits
from dltoolkit.report.figures import Figure, regression_plots
from dltoolkit.tasks.base import fit_baseline, flat, parameter_count
from dltoolkit.tasks.supervised import SupervisedTask, rows_with_ids


def regression_scores(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R2 of predictions."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    predicted = np.asarray(predicted, np.float64).reshape(len(y))
    return {
        "rmse": float(np.sqrt(mean_squared_error(y, predicted))),
        "mae": float(mean_absolute_error(y, predicted)),
        "r2": float(r2_score(y, predicted)),
    }


def target_scale(y_train: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of a regression target on the training split."""
    return float(np.mean(y_train)), float(np.std(y_train)) or 1.0


class RegressionTask(SupervisedTask):
    """Regression of one number."""

    name = "regression"
    default_loss = "mse"
    summary = ("rmse", "r2")
    headline_score = "rmse"
    needs_table = True

    def head(self, data: ArraySplits) -> dict[str, Any]:
        """One linear unit (the run rescales it to the target's mean and spread)."""
        return {"output_units": 1, "output_activation": "linear"}

    def metrics(self) -> list[Any]:
        """RMSE and MAE per epoch."""
        return ["root_mean_squared_error", "mae"]

    def fit_arrays(self, data: Any) -> tuple[np.ndarray, ...]:
        """The splits with the target standardised by the training mean and spread, so that
        losses and L1/L2 penalties keep their scale whatever the target's units."""
        mean, spread = target_scale(data.y_train)
        return (
            data.x_train,
            (data.y_train - mean) / spread,
            data.x_val,
            (data.y_val - mean) / spread,
        )

    def trained(self, model: Any, data: Any) -> Any:
        """The model followed by ``output * spread + mean``: answers in the target's units."""
        mean, spread = target_scale(data.y_train)
        outputs = keras.layers.Rescaling(spread, offset=mean, name="target_scale")(model.outputs[0])
        return keras.Model(model.inputs, outputs, name=model.name)

    def scores(
        self, y_true: np.ndarray, outputs: np.ndarray, decision: dict[str, Any]
    ) -> dict[str, Any]:
        """RMSE, MAE, R2."""
        return regression_scores(y_true, outputs)

    def baselines(self, splits: ArraySplits) -> list[dict[str, Any]]:
        """Ridge regression (penalty by cross-validation) and histogram gradient boosting."""
        from sklearn.ensemble import HistGradientBoostingRegressor
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        candidates = {
            "ridge_regression": make_pipeline(
                StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))
            ),
            "hist_gradient_boosting": HistGradientBoostingRegressor(random_state=0),
        }
        results = []
        for name, estimator in candidates.items():
            fitted, seconds, rows = fit_baseline(
                estimator, splits.x_train, splits.y_train, self.config
            )
            predicted = fitted.predict(flat(splits.x_test))
            results.append(
                {
                    "name": name,
                    "test": regression_scores(splits.y_test, predicted),
                    "parameters": parameter_count(fitted),
                    "train_seconds": seconds,
                    "train_rows": rows,
                }
            )
        return results

    @classmethod
    def output_figures(
        cls, metrics: dict[str, Any], y: np.ndarray, outputs: np.ndarray, run_dir: Path
    ) -> list[Figure]:
        """Predicted against actual, and the residuals."""
        return regression_plots(y.reshape(-1), outputs.reshape(-1), run_dir)

    @classmethod
    def serving_outputs(cls, model: Any, head: dict[str, Any]) -> Callable:
        """``prediction``, in the target's units."""
        import tensorflow as tf

        return lambda output, _: {"prediction": tf.reshape(output, (-1,))}

    @classmethod
    def prediction_rows(
        cls, outputs: np.ndarray, identifiers: list[str], written: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """``prediction``, in the target's units."""
        return rows_with_ids(identifiers, outputs[:, 0], lambda v: {"prediction": float(v)})
