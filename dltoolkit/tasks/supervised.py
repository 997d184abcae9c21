"""What the tasks that learn from labelled examples share (classification, binary,
regression, anomaly): tables, images or arrays split once or into K folds, a network with
the task's head on the configured builder, Keras' fit, a decision chosen on validation,
and the report's pictures of the test outputs and of what drives the model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np

from dltoolkit import features, streamed_tables, training
from dltoolkit.config import DataConfig, RunConfig, fail
from dltoolkit.data import ArraySplits, load_dataset
from dltoolkit.data.rows import seeded_rows
from dltoolkit.data.sources import is_table
from dltoolkit.data.streams import as_input, is_streamed, naming_bad_files
from dltoolkit.errors import ConfigError
from dltoolkit.interpret import permutation_importance
from dltoolkit.report import save_test_outputs
from dltoolkit.report.figures import Figure, load_test_outputs
from dltoolkit.tasks.base import Evaluation, Task
from dltoolkit.training import Fitted


class SupervisedTask(Task):
    """A task whose network fits labelled rows of a table, images or arrays."""

    # Labels that train the network are classes: class weights and oversampling apply.
    fits_classes: ClassVar[bool] = False
    # The data must be a table (a regression target, an anomaly detector's rows).
    needs_table: ClassVar[bool] = False
    cross_validates = True

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """Folds need a shuffled split; class weights and oversampling need classes."""
        data, train = config.data, config.train
        if data.folds is not None and (data.folds < 2 or data.split == "time"):
            fail("data.folds", data.folds, "null, or 2 or more with a stratified or random split")
        if data.split == "stratified" and not cls.classes:
            fail("data.split", data.split, f"'random' or 'time' for {cls.name} (no classes)")
        if train.class_weight is not None and not cls.fits_classes:
            fail(
                "train.class_weight",
                train.class_weight,
                f"null for {cls.name} (the network does not fit classes)",
            )
        if train.oversample is not None and not cls.fits_classes:
            fail("train.oversample", train.oversample, f"null for {cls.name} (no classes)")

    # === Data ===

    def load_data(self, saved_features: Path | None = None) -> ArraySplits:
        """Load and split the configured data; tables are encoded by a FeatureSpace adapted
        on the training split (or the one saved in ``saved_features``)."""
        config = self.config
        if streamed_tables.streams(config.data):
            if config.data.folds:
                streamed_tables.refuse(config.data, "data.folds (cross-validation)")
            if config.report.fairness_groups:
                streamed_tables.refuse(config.data, "report.fairness_groups")
            if config.data.split_column:
                streamed_tables.refuse(config.data, "data.split_column")
            return streamed_tables.load_streamed_table(
                self.table_config(), config.seed, self.classes, saved_features
            )
        if is_table(config.data.source):
            return self.table_splits(saved_features, None, self.kept_columns())
        if config.data.folds:
            raise ConfigError(
                f"data.folds (cross-validation) is available for tables; data source "
                f"{config.data.source!r} is not one. Set data.folds=null."
            )
        if self.needs_table:
            raise ConfigError(
                f"task {self.name!r} needs a table (csv:PATH, parquet:PATH or a builtin "
                f"table), received data source {config.data.source!r}."
            )
        for key, value in (
            ("data.split_column", config.data.split_column),
            ("data.amount_column", config.data.amount_column),
            ("report.fairness_groups", config.report.fairness_groups),
        ):
            if value:
                raise ConfigError(
                    f"{key} names columns of a table; data source {config.data.source!r} is "
                    f"not one. Remove {key}."
                )
        return load_dataset(config.data, config.seed)

    def table_splits(
        self, saved: Path | None, fold: tuple[int, int] | None, keep: list[str]
    ) -> ArraySplits:
        """A table in memory read, split (fold ``fold``: ``(index, count)``, or the main
        split) and encoded for the network (with the encoder saved in run directory
        ``saved``, or one adapted on the training rows); ``keep``: raw columns whose test
        rows are kept."""
        config = self.config
        return features.load_table_dataset(
            config.data, config.seed, self.classes, saved, fold=fold, keep=keep
        )

    def table_config(self) -> DataConfig:
        """The data section a table is read with (the text tasks narrow its features)."""
        return self.config.data

    def kept_columns(self) -> list[str]:
        """Raw columns of a table whose test rows the task needs besides the features."""
        return []

    def training_splits(self, data: ArraySplits) -> ArraySplits:
        """The splits with the training split oversampled as ``train.oversample`` says."""
        return training.oversampled(self.config, data)

    def fold_data(self, index: int, count: int) -> ArraySplits:
        """Fold ``index``: its rows are the test split, validation drawn from the others,
        the FeatureSpace adapted on the fold's training rows."""
        return self.training_splits(self.table_splits(None, (index, count), []))

    def describe(self, data: ArraySplits) -> str:
        """Split sizes, classes and input shape."""
        sizes = data.sizes()
        classes = f"{data.num_classes} classes, " if self.classes else ""
        return (
            f"data {data.source}: {sizes['train']} train / {sizes['validation']} validation / "
            f"{sizes['test']} test, {classes}input {data.input_shape}; "
            f"backend {keras.backend.backend()}"
        )

    def data_facts(self, data: ArraySplits) -> dict[str, Any]:
        """Source, split sizes, input shape, class names; a table's columns."""
        facts: dict[str, Any] = {
            "source": data.source,
            "sizes": data.sizes(),
            "input_shape": list(data.input_shape),
            "class_names": data.class_names,
        }
        if self.config.train.oversample is not None:
            facts["oversampled_train_counts"] = np.bincount(data.y_train).tolist()
        if data.table is not None:
            facts["numeric"] = data.table.numeric
            facts["categorical"] = data.table.categorical
        return facts

    def save_inputs(self, run_dir: Path, data: ArraySplits) -> None:
        """A table's FeatureSpace (``features.keras``), which serving encodes raw columns with."""
        if data.table is not None:
            table = data.table
            features.save(
                data.feature_space, run_dir, table.numeric, table.categorical, table.medians
            )

    # === The network ===

    def build(self, data: ArraySplits) -> keras.Model:
        """The configured builder with the task's head. Image and array inputs get a
        Normalization layer adapted on the training split inside the model (streamed images:
        on a seeded sample of them, :func:`adaptation_sample`; tables are standardised by
        their FeatureSpace), so the exported model takes raw inputs."""
        preprocessing = None
        # A pretrained backbone brings its own preprocessing (model.backbone).
        if data.feature_space is None and "backbone" not in self.config.model:
            preprocessing = keras.layers.Normalization(
                axis=-1, dtype="float32", name="normalization"
            )
            with naming_bad_files(data.x_train):
                preprocessing.adapt(adaptation_sample(data.x_train, self.config.seed))
        return training.build_network(
            self.config, data.input_shape, self.head(data), preprocessing, input_name_for(data)
        )

    def baseline_inputs(self, data: ArraySplits) -> tuple[Any, np.ndarray, Any, Any]:
        """``(x_train, y_train, x_val, x_test)`` the classical baselines fit and predict."""
        return data.x_train, data.y_train, data.x_val, data.x_test

    def class_weights(self, data: ArraySplits) -> dict[int, float] | None:
        """``train.class_weight: balanced``: weights inverse to class frequency."""
        return training.class_weights(self.config, data.y_train, data.num_classes)

    # === Evaluation ===

    def scores(
        self, y_true: np.ndarray, outputs: np.ndarray, decision: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Test scores from true labels and the model's outputs."""
        raise NotImplementedError

    def decision(self, data: ArraySplits, model: keras.Model) -> dict[str, Any]:
        """What is chosen on the validation split; {} where nothing is."""
        return {}

    def score(
        self, data: ArraySplits, outputs: np.ndarray, decision: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Test scores under the decision."""
        return self.scores(data.y_test, outputs, decision or {})

    # === What a run leaves ===

    @classmethod
    def report_figures(cls, metrics: dict[str, Any], run_dir: Path) -> list[Figure]:
        """The pictures of the test outputs the run saved (none where it saved none)."""
        saved = load_test_outputs(run_dir)
        return [] if saved is None else cls.output_figures(metrics, *saved, run_dir)

    @classmethod
    def output_figures(
        cls, metrics: dict[str, Any], y: np.ndarray, outputs: np.ndarray, run_dir: Path
    ) -> list[Figure]:
        """The report's pictures of the test labels ``y`` and the network's ``outputs``."""
        return []

    def artefacts(
        self,
        run_dir: Path,
        data: ArraySplits,
        fitted: Fitted,
        evaluation: Evaluation,
        baselines: list[dict[str, Any]],
        echo: Callable[[str], None],
    ) -> dict[str, Any]:
        """The test outputs (for the report's plots) and what drives the model."""
        if not self.config.report.enabled:
            return {}
        save_test_outputs(run_dir, data.y_test, evaluation.outputs, **self.test_extras(evaluation))
        return {"interpretability": self.explain(evaluation, data, run_dir, echo)}

    def test_extras(self, evaluation: Evaluation) -> dict[str, np.ndarray]:
        """Further test arrays the report's pictures need, saved beside the outputs."""
        return {}

    def explain(
        self,
        evaluation: Evaluation,
        data: ArraySplits,
        run_dir: Path,
        echo: Callable[[str], None],
    ) -> dict[str, Any]:
        """Permutation importance of a table's raw features, as ``report`` configures."""
        found: dict[str, Any] = {}
        repeats = self.config.report.permutation_repeats
        if data.table is not None and repeats:
            decision = evaluation.decision or {}
            headline = self.headline
            table = data.table
            # A streamed table: a bounded sample of its test rows.
            y = table.y_test if table.sampled else data.y_test

            def score_of(outputs: np.ndarray) -> float:
                return self.scores(y, outputs, decision)[headline]

            found["permutation_importance"] = permutation_importance(
                evaluation.model,
                data,
                score_of,
                headline,
                repeats,
                self.config.seed,
                self.config.train.batch_size,
            )
            top = found["permutation_importance"]["features"][:3]
            echo("most important features (test): " + ", ".join(f["feature"] for f in top))
        return found


# Streamed images adapt the input Normalization on at most this many training images: the
# per-channel mean and variance of 10,000 images (each of thousands of pixels) are within
# about 1% of a standard deviation of the whole set's, which moves the rescaled inputs by
# less than the noise of one training batch.
ADAPT_IMAGES = 10_000


def adaptation_sample(x: Any, seed: int) -> Any:
    """What the input Normalization adapts on: an array in memory whole; streamed images
    as batches of a seeded sample of at most :data:`ADAPT_IMAGES` (read once, never held
    in memory together); images kept in memory (``data.cache: memory``) as the same sample
    of their one decoded array, which training then reads without decoding again."""
    if not is_streamed(x):
        return x
    rows = seeded_rows(len(x), ADAPT_IMAGES, seed)
    if x.cache == "memory":
        return as_input(x)[rows]
    sample = x[rows]
    sample.cache = "none"
    return sample.batches(256)


def input_name_for(data: ArraySplits) -> str:
    """Name of the model's input: ``image``, ``features`` (encoded table) or ``inputs``."""
    if data.feature_space is not None:
        return "features"
    return "image" if len(data.input_shape) == 3 else "inputs"


def rows_with_ids(
    identifiers: list[str], values: np.ndarray, row: Callable[[Any], dict[str, Any]]
) -> list[dict[str, Any]]:
    """``dltk predict`` rows: each input's identifier, then ``row(value)``."""
    return [{"id": i, **row(v)} for i, v in zip(identifiers, values, strict=True)]
