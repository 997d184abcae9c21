"""Re-evaluating a finished run on its test split (``dltk evaluate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras

from dltoolkit.config import load_config
from dltoolkit.models import load_model
from dltoolkit.runs import read_run_metrics
from dltoolkit.tasks import get_task

__all__ = ["evaluate_run", "load_model"]


def evaluate_run(run_dir: str | Path) -> dict[str, Any]:
    """Re-build a run's test split from its config and score its ``model.keras`` on it.

    A table is encoded with the run's saved FeatureSpace, and the model is scored under
    the decision the run chose (a binary classifier's threshold), as the run scored it.
    """
    run_dir = Path(run_dir)
    task = get_task(load_config(run_dir / "config.yaml"))
    model = load_model(run_dir / "model.keras")
    data = task.load_data(saved_features=run_dir)
    decision = read_run_metrics(run_dir).get("decision", {})
    scores = task.score(data, task.outputs(model, data.x_test), decision)
    return {"run_dir": str(run_dir), "backend": keras.backend.backend(), "test": scores}
