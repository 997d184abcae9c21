"""Re-evaluating a finished run and predicting with a saved model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit import features
from dltoolkit.config import SERIES_TASKS, DataConfig, load_config
from dltoolkit.data import load_unlabelled
from dltoolkit.errors import DataError
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
    written: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Predict every input of ``source``; one row per input with the task's outputs.

    Args:
        model_path: a ``.keras`` file; a ``features.keras`` beside it marks a table model,
            whose inputs are raw columns read from ``csv:PATH`` or ``parquet:PATH``.
        source: the inputs.
        batch_size: prediction batch size.
        written: the run's metrics.json (task, class names, decision); {} for a bare model.

    Returns:
        Rows with ``id`` and, by task, class id/name and probabilities (or the anomaly
        score), or ``prediction``.
    """
    written = written or {}
    model = load_model(model_path)
    if written.get("task") in SERIES_TASKS:
        return _predict_series(model, Path(model_path), source, batch_size, written)
    saved = features.load(Path(model_path).parent)
    if saved is None:
        x, identifiers = load_unlabelled(source, _data_config_for(model))
    else:
        x, identifiers = _encoded_table(source, *saved)
    expected = tuple(model.inputs[0].shape[1:])
    if tuple(x.shape[1:]) != expected:
        raise DataError(
            f"inputs from {source!r} have shape {tuple(x.shape[1:])} per example, the model "
            f"expects {expected}; pass data shaped like the training data."
        )
    outputs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float64)
    task = written.get("task", "classification")
    names = written.get("data", {}).get("class_names") or []
    if task == "regression":
        return [
            {"id": i, "prediction": float(v)}
            for i, v in zip(identifiers, outputs[:, 0], strict=True)
        ]
    if task in ("binary", "anomaly"):
        names = names or ["0", "1"]
        threshold = float(written.get("decision", {}).get("threshold", 0.5))
        scores = outputs.reshape(len(outputs))
        class_ids = (scores >= threshold).astype(int)
        key = "probability" if task == "binary" else "anomaly_score"
        return [
            {"id": i, key: float(p), "class_id": int(c), "class_name": names[c]}
            for i, p, c in zip(identifiers, scores, class_ids, strict=True)
        ]
    if task == "clustering":
        return [
            {
                "id": identifier,
                "segment": int(row.argmax()),
                **{f"probability_segment_{j}": float(p) for j, p in enumerate(row)},
            }
            for identifier, row in zip(identifiers, outputs, strict=True)
        ]
    names = names or [str(index) for index in range(outputs.shape[-1])]
    rows = []
    for identifier, row in zip(identifiers, outputs, strict=True):
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


def _predict_series(
    model: keras.Model, model_path: Path, source: str, batch_size: int, written: dict[str, Any]
) -> list[dict[str, Any]]:
    """Forecasts from every window of a price series read like the run's training data:
    one row per window, dated by its last day."""
    from dltoolkit.data.series import cut_windows, load_series

    config_path = model_path.parent / "config.yaml"
    if not config_path.is_file():
        raise DataError(
            f"a series model needs its run's config.yaml beside it (column names, dates); "
            f"{config_path} is missing."
        )
    config = load_config(config_path)
    config.data.source = source
    series = load_series(config.data)
    head = written["data"]["series"]
    rows = int(head["window_rows"])
    if len(series.raw) < rows:
        raise DataError(
            f"{source!r} has {len(series.raw)} days; the model needs windows of {rows} days."
        )
    x, ends = cut_windows(series.raw, rows, 1)
    outputs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float64)
    outputs = outputs.reshape(len(x))
    dates = [str(day)[:10] for day in series.dates[ends]]
    if written["task"] == "signal":
        threshold = float(written.get("decision", {}).get("threshold", 0.5))
        return [
            {"date": d, "probability_up": float(p), "signal": int(p >= threshold)}
            for d, p in zip(dates, outputs, strict=True)
        ]
    if head["target"] == "volatility":
        return [
            {"date": d, "variance": float(v), "volatility": float(np.sqrt(v))}
            for d, v in zip(dates, outputs, strict=True)
        ]
    prices = series.raw[ends, 0]
    return [
        {"date": d, "log_return": float(r), "price": float(p * np.exp(r))}
        for d, r, p in zip(dates, outputs, prices, strict=True)
    ]


def _encoded_table(source: str, space: Any, info: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Raw columns of a table, checked and encoded like the training data."""
    from dltoolkit.data.sources import parse_source
    from dltoolkit.data.tabular import TABLE_KINDS, first_row, load_table

    kind, location = parse_source(source)
    if kind not in TABLE_KINDS:
        raise DataError(
            f"this model takes a table; pass --data csv:PATH or parquet:PATH, received {source!r}."
        )
    numeric, categorical = info["numeric"], info["categorical"]
    config = DataConfig(
        features=[*numeric, *categorical], categorical=categorical, missing="median"
    )
    table = load_table(kind, location, config, require_label=False)
    frame = table.frame
    for column in numeric:
        missing = frame[column].isna().to_numpy()
        if missing.any() and column not in info["medians"]:
            _, row = first_row(missing)
            raise DataError(
                f"{source!r}: column {column!r} is missing a value at row {row}; the model "
                "was trained without missing values there, so fill it in."
            )
    frame = frame.fillna(info["medians"])
    x = features.encode(space, frame, numeric, categorical)
    return x, [str(index) for index in range(len(frame))]
