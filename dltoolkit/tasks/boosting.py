"""The gradient-boosting libraries finance teams already run, as baselines of a binary
table: LightGBM and XGBoost (``pip install "dltoolkit[boost]"``), each with early stopping
on the validation split and the class weighting the network gets.

A baseline that is not installed is left out with a warning that says how to install it.
"""

from __future__ import annotations

import importlib.util
import inspect
import warnings
from typing import Any

import numpy as np

from dltoolkit.data.rows import seeded_rows
from dltoolkit.data.streams import decoded_rows
from dltoolkit.tasks.base import flat

# Trees added until the validation log loss has not improved for EARLY_STOPPING rounds.
MAX_TREES = 2000
EARLY_STOPPING = 50
LEARNING_RATE = 0.05
# The validation rows boosting early-stops on (a seeded sample of a larger split).
VALIDATION_ROWS = 250_000

INSTALL_HINT = 'pip install "dltoolkit[boost]"'


class EarlyStopped:
    """A boosting classifier whose ``fit(x, y)`` adds trees until the log loss on the
    validation rows given here stops improving; ``predict_proba`` and the size of the
    fitted ensemble (``trees``, ``leaves``) as the other baselines give them."""

    def __init__(self, library: str, x_val: Any, y_val: np.ndarray, class_weight: str | None,
                 seed: int):  # fmt: skip
        self.library = library
        rows = seeded_rows(len(y_val), VALIDATION_ROWS, seed)
        self.x_val = flat(decoded_rows(x_val[rows], len(rows), seed))
        self.y_val = np.asarray(y_val)[rows]
        self.class_weight = class_weight
        self.seed = seed
        self.model: Any = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> EarlyStopped:
        """Fit on training rows ``x``, ``y``, early-stopped on the validation rows."""
        weights = None
        if self.class_weight == "balanced":
            from sklearn.utils.class_weight import compute_sample_weight

            weights = compute_sample_weight("balanced", y)
        if self.library == "lightgbm":
            import lightgbm

            self.model = lightgbm.LGBMClassifier(
                n_estimators=MAX_TREES,
                learning_rate=LEARNING_RATE,
                random_state=self.seed,
                verbose=-1,
            )
            self.model.fit(
                x,
                y,
                sample_weight=weights,
                **_lightgbm_validation(self.x_val, self.y_val),
                callbacks=[lightgbm.early_stopping(EARLY_STOPPING, verbose=False)],
            )
        else:
            import xgboost

            self.model = xgboost.XGBClassifier(
                n_estimators=MAX_TREES,
                learning_rate=LEARNING_RATE,
                early_stopping_rounds=EARLY_STOPPING,
                eval_metric="logloss",
                tree_method="hist",
                random_state=self.seed,
            )
            self.model.fit(
                x, y, sample_weight=weights, eval_set=[(self.x_val, self.y_val)], verbose=False
            )
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities of the early-stopped ensemble (its best iteration)."""
        return self.model.predict_proba(x)

    @property
    def trees(self) -> int:
        """Trees kept (up to the best validation iteration)."""
        return len(self._leaves_per_tree())

    @property
    def leaves(self) -> int:
        """Leaves over all kept trees: the ensemble's learned values."""
        return int(sum(self._leaves_per_tree()))

    def _leaves_per_tree(self) -> list[int]:
        if self.library == "lightgbm":
            booster = self.model.booster_
            kept = booster.best_iteration or booster.current_iteration()
            info = booster.dump_model(num_iteration=kept)["tree_info"]
            return [tree["num_leaves"] for tree in info]
        booster = self.model.get_booster()
        kept = self.model.best_iteration + 1
        frame = booster[:kept].trees_to_dataframe()
        return frame[frame["Feature"] == "Leaf"].groupby("Tree").size().tolist()


def _lightgbm_validation(x_val: np.ndarray, y_val: np.ndarray) -> dict[str, Any]:
    """LightGBM's validation-set arguments: eval_X/eval_y where it has them (4.7 on),
    the older eval_set otherwise."""
    import lightgbm

    if "eval_X" in inspect.signature(lightgbm.LGBMClassifier.fit).parameters:
        return {"eval_X": (x_val,), "eval_y": (y_val,)}
    return {"eval_set": [(x_val, y_val)]}


def installed_boosting(libraries: tuple[str, ...] = ("lightgbm", "xgboost")) -> list[str]:
    """The boosting libraries importable here; one warning names those that are not."""
    present = [name for name in libraries if importlib.util.find_spec(name) is not None]
    missing = [name for name in libraries if name not in present]
    if missing:
        warnings.warn(
            f"the {' and '.join(missing)} baseline(s) are left out: not installed; "
            f"install them with: {INSTALL_HINT}",
            stacklevel=2,
        )
    return present
