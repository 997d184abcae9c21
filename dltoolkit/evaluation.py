"""Loading a saved model safely and re-evaluating a finished run on its test split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras

from dltoolkit.config import SERIES_TASKS, load_config
from dltoolkit.runs import read_run_metrics
from dltoolkit.tasks import get_task


def load_model(path: str | Path) -> keras.Model:
    """Load a ``.keras`` file in safe mode (no arbitrary code from the file)."""
    # Importing these registers the toolkit's custom objects (layers, the variance loss).
    import dltoolkit.models
    import dltoolkit.tasks.forecasting  # noqa: F401

    return keras.saving.load_model(path, safe_mode=True)


def evaluate_run(run_dir: str | Path) -> dict[str, Any]:
    """Re-build a run's test split from its config and score its ``model.keras`` on it.

    A table is encoded with the run's saved FeatureSpace, and a binary classifier is
    scored at the threshold the run chose; a segmentation's held-out rows are assigned
    and scored by silhouette, Davies-Bouldin and Calinski-Harabasz.
    """
    from dltoolkit.training import predict_outputs, prepare_data

    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml")
    model = load_model(run_dir / "model.keras")
    if config.task == "clustering":
        from dltoolkit.features import load_table_dataset
        from dltoolkit.segmentation import cluster_quality

        data = load_table_dataset(config.data, config.seed, False, run_dir, labelled=False)
        segments = predict_outputs(model, data.x_test, config.train.batch_size).argmax(axis=1)
        scores = cluster_quality(data.x_test, segments, config.seed)
        return {"run_dir": str(run_dir), "backend": keras.backend.backend(), "test": scores}
    if config.task in SERIES_TASKS:
        from dltoolkit.timeseries import prepare_series, series_task

        data = prepare_series(config)
        outputs = predict_outputs(model, data.x_test, config.train.batch_size).reshape(-1)
        scores = series_task(config).scores(data, outputs)
        return {"run_dir": str(run_dir), "backend": keras.backend.backend(), "test": scores}
    data = prepare_data(config, saved_features=run_dir)
    outputs = predict_outputs(model, data.x_test, config.train.batch_size)
    decision = read_run_metrics(run_dir).get("decision", {})
    scores = get_task(config.task).scores(data.y_test, outputs, decision)
    return {"run_dir": str(run_dir), "backend": keras.backend.backend(), "test": scores}
