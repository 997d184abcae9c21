"""Re-evaluating a finished run and predicting with a saved model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit.config import DataConfig, load_config
from dltoolkit.data import load_dataset, load_unlabelled
from dltoolkit.errors import DataError
from dltoolkit.tasks import get_task


def load_model(path: str | Path) -> keras.Model:
    """Load a ``.keras`` file in safe mode (no arbitrary code from the file)."""
    import dltoolkit.models  # noqa: F401  registers the toolkit's custom objects

    return keras.saving.load_model(path, safe_mode=True)


def evaluate_run(run_dir: str | Path) -> dict[str, Any]:
    """Re-build a run's test split from its config and score its ``model.keras`` on it."""
    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml")
    data = load_dataset(config.data, config.seed)
    model = load_model(run_dir / "model.keras")
    probabilities = np.asarray(
        model.predict(data.x_test, batch_size=config.train.batch_size, verbose=0), np.float64
    )
    scores = get_task(config.task).scores(data.y_test, probabilities)
    return {"run_dir": str(run_dir), "backend": keras.backend.backend(), "test": scores}


def _data_config_for(model: keras.Model) -> DataConfig:
    """Image size and colour mode that match the model's input."""
    shape = model.inputs[0].shape
    config = DataConfig()
    if len(shape) == 4:
        config.image_size = [int(shape[1]), int(shape[2])]
        config.color_mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(int(shape[3]), "rgb")
    return config


def predict_source(
    model_path: str | Path,
    source: str,
    batch_size: int = 256,
    class_names: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Predict every input of ``source``; one row per input: id, class, probabilities."""
    model = load_model(model_path)
    x, identifiers = load_unlabelled(source, _data_config_for(model))
    expected = tuple(model.inputs[0].shape[1:])
    if tuple(x.shape[1:]) != expected:
        raise DataError(
            f"inputs from {source!r} have shape {tuple(x.shape[1:])} per example, the model "
            f"expects {expected}; pass data shaped like the training data."
        )
    probabilities = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    names = class_names or [str(index) for index in range(probabilities.shape[-1])]
    rows = []
    for identifier, row in zip(identifiers, probabilities, strict=True):
        predicted = int(row.argmax())
        rows.append(
            {
                "id": identifier,
                "class_id": predicted,
                "class_name": names[predicted],
                **{f"probability_{name}": float(p) for name, p in zip(names, row, strict=True)},
            }
        )
    return rows
