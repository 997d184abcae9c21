"""Task ``clustering``: segments of an unlabelled table with DEC/IDEC, a k-means baseline and
a self-organizing map of the same rows.

The table's features are encoded by a FeatureSpace adapted on the training rows (as for the
supervised tasks; skewed amounts and counts via ``data.log_transform``). A ``dec`` model is
pretrained, initialised by k-means in its code space and self-trained
(:func:`dltoolkit.models.dec.fit_dec`) on the training and validation rows; the held-out
test rows are only assigned. Every segmentation is scored in the same encoded feature
space (silhouette, Davies-Bouldin, Calinski-Harabasz), on the rows it was fitted on and on
the test rows, beside k-means with the same number of segments. Segment profiles are in
the raw units of each feature. A self-organizing map trained on the same rows draws the
data's shape: U-matrix, hit map and the segment each unit mostly holds (PNG images).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from dltoolkit.backend import library_versions
from dltoolkit.config import RunConfig
from dltoolkit.cost import devices, forward_flops, peak_memory_mib
from dltoolkit.features import load_table_dataset
from dltoolkit.features import save as save_features
from dltoolkit.plots import pyplot, save_figure
from dltoolkit.report import latent_picture
from dltoolkit.runs import create_run_dir, write_json, write_text_atomic

SILHOUETTE_SAMPLE = 10_000  # silhouette is quadratic in rows: scored on a seeded sample


def cluster_quality(x: np.ndarray, segments: np.ndarray, seed: int) -> dict[str, float]:
    """Silhouette (on at most 10,000 rows), Davies-Bouldin and Calinski-Harabasz scores of
    a segmentation of ``x``; NaN where fewer than two segments are present."""
    from sklearn.metrics import (
        calinski_harabasz_score,
        davies_bouldin_score,
        silhouette_score,
    )

    if len(np.unique(segments)) < 2:
        return {"silhouette": math.nan, "davies_bouldin": math.nan, "calinski_harabasz": math.nan}
    sample = min(len(x), SILHOUETTE_SAMPLE)
    return {
        "silhouette": float(silhouette_score(x, segments, sample_size=sample, random_state=seed)),
        "davies_bouldin": float(davies_bouldin_score(x, segments)),
        "calinski_harabasz": float(calinski_harabasz_score(x, segments)),
    }


def profiles(frame: pd.DataFrame, segments: np.ndarray, numeric: list[str]) -> list[dict]:
    """Per segment: rows, share, and mean and median of every numeric feature (raw units)."""
    result = []
    for segment in range(int(segments.max()) + 1):
        rows = frame[segments == segment]
        entry: dict[str, Any] = {
            "segment": segment,
            "rows": len(rows),
            "share": round(len(rows) / len(frame), 4),
        }
        for column in numeric:
            entry[f"{column}_mean"] = float(rows[column].mean()) if len(rows) else math.nan
            entry[f"{column}_median"] = float(rows[column].median()) if len(rows) else math.nan
        result.append(entry)
    return result


def fit_segments(
    config: RunConfig,
    model: keras.Model,
    x: np.ndarray,
    pretrain_epochs: int | None = None,
    log: Callable[[str], None] | None = None,
):
    """DEC/IDEC on ``x`` as ``train.clustering`` says: pretraining for ``train.epochs``
    (or ``pretrain_epochs``) with the configured optimizer, then self-training, under the
    active strategy (its own loop for multi_worker and parameter_server)."""
    from dltoolkit import distribute
    from dltoolkit.models.dec import fit_dec
    from dltoolkit.training import make_optimizer

    settings = config.train.clustering
    placement = distribute.current()
    with placement.scope():  # the optimizers and the self-training models are made inside
        return fit_dec(
            model,
            x,
            method=settings.method,
            pretrain_epochs=pretrain_epochs or config.train.epochs,
            pretrain_optimizer=make_optimizer(config),
            pretrain_batch_size=config.train.batch_size,
            batch_size=config.train.batch_size,
            max_iterations=settings.max_iterations,
            update_interval=settings.update_interval,
            tolerance=settings.tolerance,
            gamma=settings.gamma,
            seed=config.seed,
            log=log,
            steps=LoopSteps(placement, config.seed) if placement.in_loop else None,
        )


class LoopSteps:
    """DEC's training and inference where Keras' fit does not run (multi_worker,
    parameter_server): epochs and runs of self-training steps go through the strategy's
    own loop (:func:`dltoolkit.distribute.fit_in_loop`), each run of steps as one epoch
    over its rows; outputs come from calling the model on batches of rows."""

    def __init__(self, placement: Any, seed: int):
        self.placement = placement
        self.seed = seed
        self.runs = 0

    def _loop(self, epochs: int, batch_size: int) -> Any:
        from dltoolkit import distribute

        return distribute.Loop(epochs, batch_size, [], 0, self.seed + self.runs, None)

    def fit(self, model: keras.Model, x, y, batch_size: int, epochs: int) -> list[float]:
        """Train ``epochs`` epochs on ``(x, y)``; the loss of each epoch."""
        from dltoolkit import distribute

        history = distribute.fit_in_loop(
            model, self.placement, (x, y), None, self._loop(epochs, batch_size)
        )
        return [float(value) for value in history["loss"]]

    def train(self, model: keras.Model, x, targets: list, batches: list) -> list[float]:
        """The batches' steps as one epoch over their rows; its mean loss."""
        from dltoolkit import distribute

        rows = np.concatenate(batches)
        parts = tuple(part[rows] for part in targets)
        self.runs += 1
        history = distribute.fit_in_loop(
            model,
            self.placement,
            (x[rows], parts if len(parts) > 1 else parts[0]),
            None,
            self._loop(1, len(batches[0])),
        )
        return [float(history["loss"][-1])]

    def predict(self, model: keras.Model, x) -> np.ndarray:
        """The model's outputs for every row of ``x``, 1,024 rows at a time."""
        outputs = [
            keras.ops.convert_to_numpy(model(x[start : start + 1024], training=False))
            for start in range(0, len(x), 1024)
        ]
        return np.concatenate(outputs)


def run_clustering(config: RunConfig, echo: Callable[[str], None] = print):
    """Train, score and export one ``clustering`` run (config already resolved)."""
    from sklearn.cluster import KMeans

    from dltoolkit import distribute
    from dltoolkit.models.dec import predict_clusters
    from dltoolkit.training import RunResult, build_model, export_run

    placement = distribute.current()
    keras.utils.set_random_seed(config.seed)
    data = load_table_dataset(config.data, config.seed, classes=False, labelled=False)
    with placement.scope():
        model = build_model(config, data)
    k = int(config.model["num_clusters"])
    x_fit = np.concatenate([data.x_train, data.x_val])
    if len(x_fit) < k:
        from dltoolkit.errors import DataError

        raise DataError(
            f"data source {data.source!r} leaves {len(x_fit)} rows to fit {k} segments; "
            "lower model.num_clusters or use more data."
        )
    if not placement.chief:  # train alongside the chief; the chief writes everything
        history = fit_segments(config, model, x_fit)
        echo(
            f"worker {placement.worker_index}: DEC trained ({history.iterations} "
            "self-training steps); the chief writes the run directory"
        )
        return RunResult(run_dir=None, metrics={}, export_path=None)
    table = data.table
    raw = pd.concat([table.train, table.validation, table.test], ignore_index=True)

    run_dir = create_run_dir(config.output_dir, config.name)
    write_text_atomic(run_dir / "config.yaml", config.to_yaml())
    save_features(data.feature_space, run_dir, table.numeric, table.categorical, table.medians)
    echo(f"run directory: {run_dir}")
    echo(
        f"data {data.source}: {len(x_fit)} rows to fit, {len(data.x_test)} held out, "
        f"{k} segments, input {data.input_shape}; backend {keras.backend.backend()}"
    )

    # === DEC / IDEC ===
    settings = config.train.clustering
    start = time.perf_counter()
    history = fit_segments(config, model, x_fit, log=echo if config.train.verbose else None)
    train_seconds = time.perf_counter() - start
    if placement.in_loop:  # predict and save with a copy that lives on this process only
        model = distribute.local_copy(model)
    segmenter = keras.Model(model.inputs, model.get_layer("clustering").output, name=model.name)
    segments_fit, segments_test = history.clusters, predict_clusters(model, data.x_test)

    # === k-means baseline, same encoded features, same number of segments ===
    start = time.perf_counter()
    kmeans = KMeans(k, n_init=20, random_state=config.seed).fit(x_fit)
    kmeans_seconds = time.perf_counter() - start

    def scored(fit_segments: np.ndarray, test_segments: np.ndarray) -> dict[str, Any]:
        return {
            "fit": cluster_quality(x_fit, fit_segments, config.seed),
            "test": cluster_quality(data.x_test, test_segments, config.seed),
            "sizes": np.bincount(fit_segments, minlength=k).tolist(),
        }

    deep = scored(segments_fit, segments_test)
    baseline = scored(kmeans.labels_, kmeans.predict(data.x_test))
    all_segments = np.concatenate([segments_fit, segments_test])
    segment_profiles = profiles(raw, all_segments, table.numeric)
    pd.DataFrame(segment_profiles).to_csv(run_dir / "profiles.csv", index=False)
    assignments = raw.copy()
    assignments.insert(0, "split", ["fit"] * len(x_fit) + ["test"] * len(data.x_test))
    assignments["segment"] = all_segments
    assignments.to_csv(run_dir / "segments.csv", index=False)

    # === Self-organizing map of the same rows; the latent space in 2-D ===
    som = _fit_som(config, x_fit)
    som_summary = _som_pictures(som, x_fit, segments_fit, run_dir, table.numeric)
    latent_picture(
        model.get_layer("encoder"),
        x_fit,
        segments_fit,
        [f"segment {k}" for k in range(int(segments_fit.max()) + 1)],
        "DEC latent space of the fitted rows, by segment",
        run_dir,
    )

    model_path = run_dir / "model.keras"
    segmenter.save(model_path)
    flops = forward_flops(segmenter)
    som.save(run_dir / "som.keras")
    metrics: dict[str, Any] = {
        "recipe": config.name,
        "task": config.task,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "test": deep["test"],
        "fit": deep["fit"],
        "segment_sizes": deep["sizes"],
        "profiles": segment_profiles,
        "baselines": [
            {
                "name": "k_means",
                "test": baseline["test"],
                "fit": baseline["fit"],
                "segment_sizes": baseline["sizes"],
                "parameters": int(kmeans.cluster_centers_.size),
                "train_seconds": round(kmeans_seconds, 4),
            }
        ],
        "dec": {
            "method": settings.method,
            "pretrain_final_loss": history.pretrain_loss[-1] if history.pretrain_loss else None,
            "iterations": history.iterations,
            "converged": history.converged,
            "label_change": history.label_change,
        },
        "som": som_summary,
        "parameters": {"total": int(segmenter.count_params())},
        "train_seconds": round(train_seconds, 3),
        "cost": {
            "flops_per_example": flops["per_example"],
            "flops_not_counted": flops["not_counted"],
            "peak_memory_mib": peak_memory_mib(),
            "devices": devices(),
        },
        "backend": keras.backend.backend(),
        "distribute": placement.describe(),
        "versions": library_versions(),
        "seed": config.seed,
        "data": {
            "source": data.source,
            "sizes": {"fit": len(x_fit), "test": len(data.x_test)},
            "input_shape": list(data.input_shape),
            "numeric": table.numeric,
            "categorical": table.categorical,
        },
    }
    write_json(run_dir / "metrics.json", metrics)
    echo(
        f"silhouette fit/test: deep model {deep['fit']['silhouette']:.4f} "
        f"{deep['test']['silhouette']:.4f} | k_means {baseline['fit']['silhouette']:.4f} "
        f"{baseline['test']['silhouette']:.4f} | segment sizes {deep['sizes']} | "
        f"{metrics['parameters']['total']:,} parameters, {train_seconds:.1f} s"
    )
    if config.report.enabled:
        from dltoolkit.training import report

        report(run_dir, echo)
    export_path = export_run(config, run_dir, metrics, echo, task="clustering")
    return RunResult(run_dir=run_dir, metrics=metrics, export_path=export_path)


def _fit_som(config: RunConfig, x: np.ndarray) -> keras.Model:
    from dltoolkit.layers import SOMSchedule
    from dltoolkit.models import MODELS

    settings = config.train.clustering
    som = MODELS.get("som")(x.shape[1:], map_shape=list(settings.som_map), name="som_map")
    som.compile()
    som.get_layer("som").initialize_from(x, "pca", seed=config.seed)
    som.fit(
        x,
        epochs=settings.som_epochs,
        batch_size=config.train.batch_size,
        callbacks=[SOMSchedule()],
        verbose=0,
    )
    return som


def _som_pictures(
    som: keras.Model, x: np.ndarray, segments: np.ndarray, folder: Path, numeric: list[str]
) -> dict[str, Any]:
    """Write u_matrix.png, hit_map.png, som_segments.png and som_components.png; return
    the map's errors."""
    from dltoolkit.models.som import hit_map, label_map, quantization_error, topographic_error
    from dltoolkit.models.som import u_matrix as unit_distances

    plt = pyplot()
    count = int(segments.max()) + 1
    # One colour per segment and one for units no row maps to.
    segment_colours = {"cmap": plt.get_cmap("tab10", count + 1), "vmin": -1.5, "vmax": count - 0.5}
    pictures = {
        "u_matrix.png": (
            unit_distances(som),
            "U-matrix (mean distance to neighbours)",
            {"cmap": "bone_r"},
            None,
        ),
        "hit_map.png": (hit_map(som, x), "Hit map (rows per unit)", {"cmap": "viridis"}, None),
        "som_segments.png": (
            label_map(som, x, segments, empty=-1).astype(float),
            "Segment most rows of each unit belong to (-1: no rows)",
            segment_colours,
            list(range(-1, count)),
        ),
    }
    for filename, (values, title, colours, ticks) in pictures.items():
        figure, axes = plt.subplots(figsize=(5, 4.2))
        image = axes.imshow(values, **colours)
        figure.colorbar(image, ax=axes, ticks=ticks)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("map column")
        axes.set_ylabel("map row")
        save_figure(figure, folder / filename)
    _component_planes(som, numeric, folder)
    return {
        "map_shape": list(hit_map(som, x).shape),
        "quantization_error": quantization_error(som, x),
        "topographic_error": topographic_error(som, x),
        "images": sorted(pictures),
    }


def _component_planes(som: keras.Model, numeric: list[str], folder: Path) -> None:
    """``som_components.png``: one small map per input feature (at most 12), named after
    the table's numeric columns where the encoding holds one value per column."""
    from dltoolkit.models.som import component_planes

    every = component_planes(som)
    planes = every[:12]
    # The FeatureSpace concatenates its features in name order, one value per numeric one.
    names = sorted(numeric) if len(numeric) == len(every) else []
    plt = pyplot()
    columns = min(4, len(planes))
    rows = -(-len(planes) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.9 * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index >= len(planes):
            axis.set_visible(False)
            continue
        image = axis.imshow(planes[index], cmap="coolwarm")
        figure.colorbar(image, ax=axis, shrink=0.8)
        axis.set_title(names[index] if names else f"encoded feature {index}", fontsize=9)
        axis.set_axis_off()
    save_figure(figure, folder / "som_components.png")
