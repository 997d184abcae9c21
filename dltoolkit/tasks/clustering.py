"""Task ``clustering``: segments of an unlabelled table with DEC/IDEC, a k-means baseline and
a self-organizing map of the same rows.

The table's features are encoded by a FeatureSpace adapted on the training rows (as for the
supervised tasks; skewed amounts and counts via ``data.log_transform``). A ``dec`` model is
pretrained (backed up every epoch, so an interrupted run resumes its pretraining),
initialised by k-means in its code space and self-trained
(:func:`dltoolkit.models.dec.fit_dec`) on the training and validation rows; the held-out
test rows are only assigned. Every segmentation is scored in the same encoded feature
space (silhouette, Davies-Bouldin, Calinski-Harabasz), on the rows it was fitted on and on
the test rows, beside k-means with the same number of segments. Segment profiles are in
the raw units of each feature. A self-organizing map trained on the same rows draws the
data's shape: U-matrix, hit map and the segment each unit mostly holds (PNG images).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from dltoolkit import distribute, features, streamed_tables, training
from dltoolkit.config import RunConfig, fail
from dltoolkit.data import ArraySplits
from dltoolkit.data.sources import is_table
from dltoolkit.errors import ConfigError, DataError
from dltoolkit.layers import SOMSchedule
from dltoolkit.models import MODELS
from dltoolkit.models.dec import DECSteps, fit_dec, predict_clusters
from dltoolkit.optimizers import make_optimizer
from dltoolkit.report.figures import latent_picture
from dltoolkit.report.som import som_pictures
from dltoolkit.tasks.base import Evaluation, Task
from dltoolkit.tasks.cluster_scores import (
    SILHOUETTE_SAMPLE,
    cluster_accuracy,
    cluster_quality,
    clustering_scores,
    profiles,
)
from dltoolkit.tasks.dec_steps import BackedUpSteps, LoopSteps
from dltoolkit.training import Fitted

__all__ = [
    "SILHOUETTE_SAMPLE",
    "ClusteringTask",
    "cluster_accuracy",
    "cluster_quality",
    "clustering_scores",
    "profiles",
]


class ClusteringTask(Task):
    """Segments of an unlabelled table, trained by DEC/IDEC's own loop."""

    name = "clustering"
    summary = ("silhouette",)
    headline_score = "silhouette"
    refits_on_validation = False
    default_objective = "val_silhouette"

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """No labels, classes or resampling; a ``dec`` model trained in float32."""
        data, train = config.data, config.train
        if data.folds is not None:
            fail(
                "data.folds",
                data.folds,
                "null for clustering (segments are scored on held-out rows)",
            )
        if data.split == "stratified":
            fail("data.split", data.split, "'random' or 'time' for clustering (no classes)")
        if train.class_weight is not None:
            fail(
                "train.class_weight",
                train.class_weight,
                "null for clustering (the network does not fit classes)",
            )
        if train.oversample is not None:
            fail("train.oversample", train.oversample, "null for clustering (no classes)")
        if train.refit_on_validation:
            fail(
                "train.refit_on_validation",
                True,
                "false for clustering (DEC/IDEC trains with its own loop, not model.fit)",
            )
        if data.label is not None:
            fail("data.label", data.label, "null for clustering (it uses no labels)")
        if config.model.get("builder") != "dec":
            raise ConfigError(
                f"task clustering needs model.builder 'dec', received "
                f"{config.model.get('builder')!r}. Set model.builder=dec."
            )
        if config.distribute.precision != "float32":
            raise ConfigError(
                "task clustering trains DEC/IDEC in float32 (its Student's t assignments and "
                "KL divergence lose too much in 16 bits); set distribute.precision=float32 "
                f"(received {config.distribute.precision!r})."
            )

    # === Data ===

    def load_data(self, saved_features: Path | None = None) -> ArraySplits:
        """The table encoded by its FeatureSpace; enough rows for the segments."""
        config = self.config
        if not is_table(config.data.source):
            raise ConfigError(
                f"task 'clustering' needs a table (csv:PATH, parquet:PATH or a builtin table), "
                f"received data source {config.data.source!r}."
            )
        streamed_tables.refuse(config.data, "task clustering")
        data = features.load_table_dataset(
            config.data, config.seed, False, saved_features, labelled=False
        )
        k = int(config.model["num_clusters"])
        if len(data.x_train) + len(data.x_val) < k:
            raise DataError(
                f"data source {data.source!r} leaves {len(data.x_train) + len(data.x_val)} "
                f"rows to fit {k} segments; lower model.num_clusters or use more data."
            )
        return data

    def describe(self, data: ArraySplits) -> str:
        """Rows fitted and held out, segments, input shape."""
        return (
            f"data {data.source}: {len(fit_rows(data))} rows to fit, {len(data.x_test)} held "
            f"out, {self.config.model['num_clusters']} segments, input {data.input_shape}; "
            f"backend {keras.backend.backend()}"
        )

    def data_facts(self, data: ArraySplits) -> dict[str, Any]:
        """Source, rows fitted and held out, input shape, the table's columns."""
        return {
            "source": data.source,
            "sizes": {"fit": len(fit_rows(data)), "test": len(data.x_test)},
            "input_shape": list(data.input_shape),
            "numeric": data.table.numeric,
            "categorical": data.table.categorical,
        }

    def save_inputs(self, run_dir: Path, data: ArraySplits) -> None:
        """The table's FeatureSpace (``features.keras``)."""
        table = data.table
        features.save(data.feature_space, run_dir, table.numeric, table.categorical, table.medians)

    # === The network ===

    def build(self, data: ArraySplits) -> keras.Model:
        """The ``dec`` model on the encoded features."""
        return training.build_network(self.config, data.input_shape, {}, None, "features")

    def new_model(self, data: ArraySplits) -> keras.Model:
        """The model built in the strategy's scope (DEC compiles its own training models)."""
        with distribute.current().scope():
            return self.build(data)

    def fit(
        self,
        model: keras.Model,
        data: ArraySplits,
        run_dir: Path | None,
        verbose: int,
        echo: Callable[[str], None] = print,
    ) -> Fitted:
        """DEC/IDEC on the training and validation rows; the fitted model is the segmenter
        (inputs to segment probabilities)."""
        x_fit = fit_rows(data)
        steps = self.steps(run_dir)
        start = time.perf_counter()
        history = self.fit_segments(model, x_fit, log=echo if verbose else None, steps=steps)
        seconds = time.perf_counter() - start
        if distribute.current().in_loop:  # predict and save a copy on this process only
            model = distribute.local_copy(model)
        segmenter = keras.Model(model.inputs, model.get_layer("clustering").output, name=model.name)
        pretraining = getattr(steps, "history", None) or {"loss": list(history.pretrain_loss)}
        return Fitted(
            segmenter,
            pretraining,
            seconds,
            len(x_fit),
            getattr(steps, "epoch_seconds", []),
            details=(history, model),
        )

    def steps(self, run_dir: Path | None, backed_up: bool = True) -> DECSteps:
        """How DEC runs its steps: the strategy's own loop (multi_worker,
        parameter_server), else Keras' own, with the pretraining logged into ``run_dir``
        and backed up unless ``backed_up`` is false (a search trial)."""
        placement = distribute.current()
        if placement.in_loop:
            return LoopSteps(placement, self.config.seed)
        return BackedUpSteps(self.config, run_dir) if backed_up else DECSteps()

    def fit_segments(
        self,
        model: keras.Model,
        x: np.ndarray,
        pretrain_epochs: int | None = None,
        log: Callable[[str], None] | None = None,
        steps: DECSteps | None = None,
    ) -> Any:
        """DEC/IDEC on ``x`` as ``train.clustering`` says: pretraining for ``train.epochs``
        (or ``pretrain_epochs``) with the configured optimizer, then self-training, under
        the active strategy (its own loop for multi_worker and parameter_server) with
        ``steps`` (default: :meth:`steps`, without a run directory)."""
        config, settings = self.config, self.config.train.clustering
        placement = distribute.current()
        steps = steps or self.steps(None)
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
                steps=steps,
            )

    def trial_scores(self, data: ArraySplits, epochs: int) -> dict[str, float]:
        """A search trial: DEC/IDEC fitted on the training rows (pretraining for
        ``epochs``), scored by the silhouette of the validation rows assigned to its
        segments."""
        keras.utils.set_random_seed(self.config.seed)
        model = self.build(data)
        self.fit_segments(
            model, data.x_train, pretrain_epochs=epochs, steps=self.steps(None, backed_up=False)
        )
        segments = predict_clusters(model, data.x_val)
        quality = cluster_quality(data.x_val, segments, self.config.seed)
        return {f"val_{name}": value for name, value in quality.items()}

    # === Evaluation ===

    def score(self, data: ArraySplits, outputs: np.ndarray, decision: Any) -> dict[str, Any]:
        """Quality of the test rows' segments (``outputs``: segment probabilities)."""
        return cluster_quality(data.x_test, np.asarray(outputs).argmax(axis=1), self.config.seed)

    def evaluate(self, fitted: Fitted, data: ArraySplits) -> Evaluation:
        """The segments of the fitted and the test rows, and their quality."""
        history, model = fitted.details
        segments_test = predict_clusters(model, data.x_test)
        deep = self.scored(data, history.clusters, segments_test)
        return Evaluation(
            fitted.model,
            deep["test"],
            segments_test,
            sections={
                "fit": deep["fit"],
                "segment_sizes": deep["sizes"],
                "dec": {
                    "method": self.config.train.clustering.method,
                    "pretrain_final_loss": (
                        history.pretrain_loss[-1] if history.pretrain_loss else None
                    ),
                    "iterations": history.iterations,
                    "converged": history.converged,
                    "label_change": history.label_change,
                },
            },
        )

    def scored(
        self, data: ArraySplits, fit_segments: np.ndarray, test_segments: np.ndarray
    ) -> dict[str, Any]:
        """Quality on the fitted and the test rows, and the segment sizes."""
        seed, k = self.config.seed, int(self.config.model["num_clusters"])
        return {
            "fit": cluster_quality(fit_rows(data), fit_segments, seed),
            "test": cluster_quality(data.x_test, test_segments, seed),
            "sizes": np.bincount(fit_segments, minlength=k).tolist(),
        }

    def baselines(self, data: ArraySplits) -> list[dict[str, Any]]:
        """k-means in the same encoded features, with the same number of segments."""
        from sklearn.cluster import KMeans

        x_fit, k = fit_rows(data), int(self.config.model["num_clusters"])
        start = time.perf_counter()
        kmeans = KMeans(k, n_init=20, random_state=self.config.seed).fit(x_fit)
        seconds = time.perf_counter() - start
        scored = self.scored(data, kmeans.labels_, kmeans.predict(data.x_test))
        return [
            {
                "name": "k_means",
                "test": scored["test"],
                "fit": scored["fit"],
                "segment_sizes": scored["sizes"],
                "parameters": int(kmeans.cluster_centers_.size),
                "train_seconds": round(seconds, 4),
            }
        ]

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
        """``profiles.csv``, ``segments.csv`` (every row's segment), the self-organizing
        map (``som.keras`` and its pictures) and the latent space by segment."""
        history, model = fitted.details
        table, x_fit = data.table, fit_rows(data)
        segments_fit = history.clusters
        raw = pd.concat([table.train, table.validation, table.test], ignore_index=True)
        all_segments = np.concatenate([segments_fit, evaluation.outputs])
        segment_profiles = profiles(raw, all_segments, table.numeric)
        pd.DataFrame(segment_profiles).to_csv(run_dir / "profiles.csv", index=False)
        assignments = raw.copy()
        assignments.insert(0, "split", ["fit"] * len(x_fit) + ["test"] * len(data.x_test))
        assignments["segment"] = all_segments
        assignments.to_csv(run_dir / "segments.csv", index=False)
        som = self.fit_som(x_fit)
        som_summary = som_pictures(som, x_fit, segments_fit, run_dir, table.numeric)
        latent_picture(
            model.get_layer("encoder"),
            x_fit,
            segments_fit,
            [f"segment {k}" for k in range(int(segments_fit.max()) + 1)],
            "DEC latent space of the fitted rows, by segment",
            run_dir,
        )
        som.save(run_dir / "som.keras")
        return {"profiles": segment_profiles, "som": som_summary}

    def fit_som(self, x: np.ndarray) -> keras.Model:
        """A self-organizing map of the fitted rows (``train.clustering.som_*``)."""
        settings = self.config.train.clustering
        som = MODELS.get("som")(x.shape[1:], map_shape=list(settings.som_map), name="som_map")
        som.compile()
        som.get_layer("som").initialize_from(x, "pca", seed=self.config.seed)
        som.fit(
            x,
            epochs=settings.som_epochs,
            batch_size=self.config.train.batch_size,
            callbacks=[SOMSchedule()],
            verbose=0,
        )
        return som

    def summary_line(self, metrics: dict[str, Any]) -> str:
        """Silhouettes of the fitted and test rows beside k-means', segment sizes, cost."""
        fit, test = metrics["fit"]["silhouette"], metrics["test"]["silhouette"]
        kmeans = metrics["baselines"][0]
        return (
            f"silhouette fit/test: deep model {fit:.4f} {test:.4f} | k_means "
            f"{kmeans['fit']['silhouette']:.4f} {kmeans['test']['silhouette']:.4f} | segment "
            f"sizes {metrics['segment_sizes']} | {metrics['parameters']['total']:,} "
            f"parameters, {metrics['train_seconds']:.1f} s"
        )

    # === Serving ===

    @classmethod
    def serving_outputs(cls, model: Any, head: dict[str, Any]) -> Callable:
        """``segment_probabilities`` and the most probable ``segment``."""
        import tensorflow as tf

        return lambda output, _: {"segment_probabilities": output, "segment": tf.argmax(output, -1)}

    @classmethod
    def prediction_rows(
        cls, outputs: np.ndarray, identifiers: list[str], written: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The most probable segment and every segment's probability."""
        return [
            {
                "id": identifier,
                "segment": int(row.argmax()),
                **{f"probability_segment_{j}": float(p) for j, p in enumerate(row)},
            }
            for identifier, row in zip(identifiers, outputs, strict=True)
        ]


def fit_rows(data: ArraySplits) -> np.ndarray:
    """The rows DEC fits: the training and validation splits together."""
    return np.concatenate([data.x_train, data.x_val])
