"""Regression: one linear output in the target's units; RMSE, MAE, R2; ridge and boosting."""

from __future__ import annotations

from typing import Any

import numpy as np

from dltoolkit.config import ThresholdConfig
from dltoolkit.tasks.base import fit_baseline, flat, parameter_count


def regression_scores(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R2 of predictions."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    predicted = np.asarray(predicted, np.float64).reshape(len(y))
    return {
        "rmse": float(np.sqrt(mean_squared_error(y, predicted))),
        "mae": float(mean_absolute_error(y, predicted)),
        "r2": float(r2_score(y, predicted)),
    }


class RegressionTask:
    """Regression of one number."""

    name = "regression"
    default_loss = "mse"
    headline = "rmse"
    classes = False

    def head(self, num_classes: int) -> dict[str, Any]:
        """One linear unit (the run rescales it to the target's mean and spread)."""
        return {"output_units": 1, "output_activation": "linear"}

    def metrics(self) -> list[Any]:
        """RMSE and MAE per epoch."""
        return ["root_mean_squared_error", "mae"]

    def decision(
        self, y_val: np.ndarray, outputs: np.ndarray, threshold: ThresholdConfig
    ) -> dict[str, Any]:
        """Nothing to decide."""
        return {}

    def scores(
        self, y_true: np.ndarray, outputs: np.ndarray, decision: dict[str, Any]
    ) -> dict[str, Any]:
        """RMSE, MAE, R2."""
        return regression_scores(y_true, outputs)

    def baselines(
        self, splits: Any, threshold: ThresholdConfig, class_weight: str | None
    ) -> list[dict[str, Any]]:
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
            fitted, seconds = fit_baseline(estimator, splits.x_train, splits.y_train)
            predicted = fitted.predict(flat(splits.x_test))
            results.append(
                {
                    "name": name,
                    "test": regression_scores(splits.y_test, predicted),
                    "parameters": parameter_count(fitted),
                    "train_seconds": seconds,
                }
            )
        return results
