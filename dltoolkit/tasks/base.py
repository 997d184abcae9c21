"""The Task: everything about a run that depends on its kind of problem.

One Task object is built per run from its configuration (:func:`dltoolkit.tasks.get_task`),
and the one run loop (:mod:`dltoolkit.runner`) drives any task through the methods below
without asking which task it is: the task checks its settings, prepares its data (and its
cross-validation or walk-forward folds), builds, compiles and fits its network, evaluates
it, fits and scores its classical baselines, writes its artefacts and says what its
report, its SavedModel and ``dltk predict`` give. The methods that serve a finished run
(``serving_outputs``, ``prediction_rows``, ``report_figures``) are class methods: they
read what the run wrote (its metrics.json), not its configuration.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np

from dltoolkit import distribute, training
from dltoolkit.config import RunConfig, fail
from dltoolkit.data.rows import seeded_rows
from dltoolkit.data.streams import array_chunks, decoded_rows, is_streamed, naming_bad_files
from dltoolkit.errors import ConfigError
from dltoolkit.models import MODELS, backbone_of, reads_tokens, set_trainable
from dltoolkit.report.figures import Figure
from dltoolkit.runs import higher_is_better
from dltoolkit.tasks.fine_tune import fit_in_phases
from dltoolkit.training import Fitted


@dataclasses.dataclass
class Evaluation:
    """A trained network judged on the test split.

    ``model`` is what the run saves and exports; ``decision`` what was chosen on the
    validation split (a threshold), or None for a task that decides nothing; ``sections``
    further entries of metrics.json (a segmentation's fitted-row scores, say).
    """

    model: keras.Model
    test: dict[str, Any]
    outputs: np.ndarray
    decision: dict[str, Any] | None = None
    sections: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The test outputs before calibration, where the model ends in one.
    uncalibrated: np.ndarray | None = None


class Task:
    """What a run needs to know that is specific to its kind of problem.

    Subclasses set the class attributes and implement ``load_data``, ``scores_of`` (via
    ``score``), ``baselines``, ``describe``, ``data_facts``, ``serving_outputs`` and
    ``prediction_rows``; the other methods have the defaults most tasks share.
    """

    name: ClassVar[str]
    summary: ClassVar[tuple[str, ...]]  # the test scores a run's summary line prints
    headline_score: ClassVar[str]  # the score a run is judged by (see ``headline``)
    default_loss: ClassVar[Any] = "mse"
    classes: ClassVar[bool] = False  # labels are classes (indices into class names)
    # metrics.json's entry for the scores over folds, and how a fold is named in the log.
    folds_entry: ClassVar[str] = "cross_validation"
    # The trained network can be refitted on training + validation rows for a fixed number
    # of epochs (after a search): false for tasks with their own training loop.
    refits_on_validation: ClassVar[bool] = True
    # The tuner objective when a search space names none (else the early-stopping monitor).
    default_objective: ClassVar[str | None] = None
    # Trials can be ranked by a K-fold cross-validated score (``cv_<score>`` objectives).
    cross_validates: ClassVar[bool] = False
    # Out-of-fold test outputs of a cross-validation are scored pooled (``pooled_scores``).
    pools_folds: ClassVar[bool] = False
    # The task flags rows yes/no at a threshold: costs, amounts and fairness audits apply.
    decides: ClassVar[bool] = False
    # The train.calibration methods the task's scores take (none: no probability to fit).
    calibrations: ClassVar[tuple[str, ...]] = ()
    # The task reads raw text (data.text_column) and builds on a builder of token ids.
    reads_text: ClassVar[bool] = False

    def __init__(self, config: RunConfig):
        method = config.train.calibration
        if method != "none" and method not in self.calibrations:
            if self.calibrations:
                expected = f"one of {', '.join(('none', *self.calibrations))} for task {self.name}"
            else:
                expected = f"none for task {self.name} (its outputs are not probabilities)"
            fail("train.calibration", method, expected)
        if not self.decides:
            for key, value in (
                ("report.fairness_groups", config.report.fairness_groups),
                ("data.amount_column", config.data.amount_column),
                ("train.costs", config.train.costs if config.train.costs.priced() else None),
                ("export.scorecard.enabled", config.export.scorecard.enabled),
            ):
                if value:
                    fail(key, value, f"unset for task {self.name} (it flags no rows yes or no)")
        builder = config.model.get("builder")
        if builder in MODELS and reads_tokens(builder) != self.reads_text:
            if self.reads_text:
                texts = ", ".join(name for name in MODELS.names() if reads_tokens(name))
                fail("model.builder", builder, f"a builder of token ids: {texts}")
            fail("model.builder", builder, f"a builder of task {self.name}'s inputs ({builder} "
                 "reads token ids: task text_classification or text_binary)")  # fmt: skip
        if not self.reads_text and config.data.text_column is not None:
            fail("data.text_column", config.data.text_column, f"unset for task {self.name} "
                 "(task text_classification or text_binary reads text)")  # fmt: skip
        if not self.reads_text and config.data.tokenizer != "words":
            fail("data.tokenizer", config.data.tokenizer, f"words for task {self.name} "
                 "(task text_classification or text_binary reads text)")  # fmt: skip
        self.check_config(config)
        self.config = config

    # === Configuration ===

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """Raise ConfigError for settings this task does not accept."""

    # === The score a run is judged by ===

    @property
    def headline(self) -> str:
        """The test score cross-validation, comparisons and ``dltk runs`` quote."""
        return self.headline_score

    @classmethod
    def headline_for(cls, written: dict[str, Any]) -> str:
        """The headline score of a run this task wrote (``written``: its metrics.json),
        for runs whose metrics.json predates its ``headline`` entry."""
        return cls.headline_score

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger headline score is better."""
        return higher_is_better(self.headline)

    # === Data ===

    def load_data(self, saved_features: Path | None = None) -> Any:
        """The configured data's splits (encoded with the FeatureSpace saved in
        ``saved_features``, a run directory, when re-evaluating a run)."""
        raise NotImplementedError

    def training_splits(self, data: Any) -> Any:
        """The splits as the network trains on them (resampled, where configured)."""
        return data

    def prepare_data(self) -> Any:
        """The splits a run trains and evaluates on."""
        return self.training_splits(self.load_data())

    def fold_data(self, index: int, count: int) -> Any:
        """The splits of fold ``index`` of ``count`` (``data.folds``)."""
        raise ConfigError(f"task {self.name} has no folds; set data.folds=null.")

    def fold_facts(self, data: Any) -> dict[str, Any]:
        """What locates a fold (a walk-forward block's dates), for metrics.json."""
        return {}

    def fold_label(self, index: int, count: int, data: Any) -> str:
        """How the log names fold ``index``."""
        return f"fold {index + 1}/{count}"

    def describe(self, data: Any) -> str:
        """One log line about the data a run trains on."""
        raise NotImplementedError

    def data_facts(self, data: Any) -> dict[str, Any]:
        """metrics.json's ``data`` entry."""
        raise NotImplementedError

    def save_inputs(self, run_dir: Path, data: Any) -> None:
        """Save what encodes the raw inputs beside the model (a table's FeatureSpace)."""

    # === The network ===

    def head(self, data: Any) -> dict[str, Any]:
        """Builder arguments for the output layer."""
        return {}

    def metrics(self) -> list[Any]:
        """Keras metrics compiled into the model beside the configured ones."""
        return []

    def loss(self) -> Any:
        """The loss the network trains on unless ``train.loss`` names one."""
        return self.default_loss

    def build(self, data: Any) -> keras.Model:
        """The configured builder's network for ``data`` (not compiled)."""
        raise NotImplementedError

    def new_model(self, data: Any) -> keras.Model:
        """The network built and compiled in the active strategy's scope."""
        with distribute.current().scope():
            model = self.build(data)
        self.compile(model, data)
        return model

    def compile(self, model: keras.Model, data: Any, config: RunConfig | None = None) -> None:
        """Compile ``model`` (again, after its trainable layers changed) with the task's loss
        and metrics and ``config``'s optimizer (the run's by default), in the active
        strategy's scope."""
        config = config or self.config
        with distribute.current().scope():
            steps = training.steps_per_epoch(config, len(data.x_train))
            training.compile_model(model, config, self.loss(), self.metrics(), steps)

    def fit_arrays(self, data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x_train, y_train, x_val, y_val)`` that ``model.fit`` trains and validates on."""
        return data.x_train, data.y_train, data.x_val, data.y_val

    def class_weights(self, data: Any) -> dict[int, float] | None:
        """Per-class loss weights, where configured."""
        return None

    def trained(self, model: keras.Model, data: Any) -> keras.Model:
        """The model a run evaluates, saves and exports, made from the fitted one."""
        return model

    def fit(
        self,
        model: keras.Model,
        data: Any,
        run_dir: Path | None,
        verbose: int,
        echo: Callable[[str], None] = print,
    ) -> Fitted:
        """Fit with Keras (``model.fit``, or the strategy's own loop) and the standard
        callbacks (history, early stopping, checkpoints into ``run_dir``, backups); a
        model with a pretrained backbone in the phases of ``train.fine_tune``."""
        if backbone_of(model) is not None:
            fitted = fit_in_phases(self, model, data, run_dir, verbose, echo)
            fitted.model = self.trained(fitted.model, data)
            return fitted
        fitted = training.fit(
            model,
            self.config,
            self.fit_arrays(data),
            training.callbacks(self.config, run_dir),
            verbose,
            echo,
            self.class_weights(data),
        )
        fitted.model = self.trained(fitted.model, data)
        return fitted

    def search_fit(
        self, model: keras.Model, data: Any, epochs: int, callbacks: list, **kwargs: Any
    ) -> Any:
        """One search trial's ``model.fit`` (KerasTuner reads its history)."""
        x_train, y_train, x_val, y_val = self.fit_arrays(data)
        backbone = backbone_of(model)
        if backbone is not None:  # a trial trains in one phase, unfrozen as configured
            set_trainable(backbone, self.config.train.fine_tune.unfreeze)
            self.compile(model, data)
        with naming_bad_files(x_train, x_val):
            return model.fit(
                **training.fit_inputs(self.config, x_train, y_train, self.class_weights(data)),
                validation_data=training.validation_inputs(self.config, x_val, y_val),
                epochs=epochs,
                callbacks=[*callbacks, *training.callbacks(self.config, None)],
                verbose=0,
                **kwargs,
            )

    def trial_scores(self, data: Any, epochs: int) -> dict[str, float] | None:
        """A search trial scored by the task's own loop, or None for KerasTuner's
        standard trial (``build`` then ``search_fit``)."""
        return None

    # === Evaluation ===

    def decision(self, data: Any, model: keras.Model) -> dict[str, Any] | None:
        """What is chosen on the validation split (a decision threshold), or None."""
        return None

    def score(self, data: Any, outputs: np.ndarray, decision: dict[str, Any] | None) -> dict:
        """Test scores of the model's test ``outputs``."""
        raise NotImplementedError

    def evaluate(self, fitted: Fitted, data: Any) -> Evaluation:
        """The decision chosen on validation, the test scores under it, the test outputs."""
        decision = self.decision(data, fitted.model)
        outputs = self.outputs(fitted.model, data.x_test)
        return Evaluation(fitted.model, self.score(data, outputs, decision), outputs, decision)

    def outputs(self, model: keras.Model, x: np.ndarray) -> np.ndarray:
        """The model's outputs for ``x`` as a float64 array."""
        return training.predict_outputs(model, x, self.config.train.batch_size)

    def baselines(self, data: Any) -> list[dict[str, Any]]:
        """Classical models fitted on the same training split and scored the same way:
        ``{"name", "test", "parameters", "train_seconds"}`` each, and ``"predictions"``
        (test outputs, for the artefacts; never written into metrics.json) where kept."""
        raise NotImplementedError

    def pooled_scores(
        self, y: np.ndarray, outputs: np.ndarray, uncalibrated: np.ndarray | None
    ) -> dict[str, Any] | None:
        """Scores of one model's out-of-fold test ``outputs`` pooled over every fold of a
        cross-validation (``uncalibrated``: before calibration), or None where pooling
        means nothing for the task (the folds' mean is then all)."""
        return None

    def compare(
        self, data: Any, evaluation: Evaluation, baselines: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """A test of the network against its reference baseline (metrics.json's
        ``comparison``, with a ``verdict`` sentence), or None: the report then compares
        the headline scores."""
        return None

    # === What a run leaves ===

    def artefacts(
        self,
        run_dir: Path,
        data: Any,
        fitted: Fitted,
        evaluation: Evaluation,
        baselines: list[dict[str, Any]],
        echo: Callable[[str], None],
    ) -> dict[str, Any]:
        """Write the task's files and pictures into ``run_dir``; return further entries
        of metrics.json."""
        return {}

    def summary_line(self, metrics: dict[str, Any]) -> str:
        """The line the run prints at the end: test scores beside the baselines', cost."""
        return summary_line(metrics, self.summary)

    @classmethod
    def report_figures(cls, metrics: dict[str, Any], run_dir: Path) -> list[Figure]:
        """The report's pictures drawn from the run's saved test outputs."""
        return []

    # === Serving ===

    @classmethod
    def serving_outputs(cls, model: Any, head: dict[str, Any]) -> Callable:
        """``(model output, prepared input) -> {name: tensor}``: the SavedModel's named
        outputs. ``head`` holds what the run wrote: ``class_names``, ``decision``,
        ``series``."""
        raise NotImplementedError

    @classmethod
    def prediction_rows(
        cls, outputs: np.ndarray, identifiers: list[str], written: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """``dltk predict``'s rows: one per input (``written`` is the run's metrics.json)."""
        raise NotImplementedError

    @classmethod
    def predict_whole_source(
        cls, model: Any, run_dir: Path, source: str, batch_size: int, written: dict[str, Any]
    ) -> list[dict[str, Any]] | None:
        """Rows predicted from a whole source at once, for tasks whose inputs need their
        neighbours (a series' windows); None: inputs are read a chunk at a time."""
        return None


# === Shared by the tasks ===


def summary_line(metrics: dict[str, Any], names: tuple[str, ...]) -> str:
    """Test scores ``names`` of the network and the baselines, and what the network cost."""

    def score(scores: dict[str, Any]) -> str:
        return " ".join(f"{scores[name]:.4f}" for name in names)

    baselines = ", ".join(f"{b['name']} {score(b['test'])}" for b in metrics["baselines"])
    cost = metrics["cost"]
    return (
        f"test {'/'.join(names)} {score(metrics['test'])} | baselines: {baselines} | "
        f"{metrics['parameters']['total']:,} parameters, "
        f"{cost['flops_per_example']:,} FLOPs/example, {metrics['epochs_run']} "
        f"epochs in {metrics['train_seconds']:.1f} s ({metrics['samples_per_second']:.0f} "
        f"samples/s), peak memory {cost['peak_memory_mib']:.0f} MiB"
    )


def number(value: Any) -> str:
    """A score for a log line (``n/a`` where a score is undefined)."""
    return "n/a" if value is None else f"{value:.5g}"


def flat(x: np.ndarray) -> np.ndarray:
    """Examples as rows of a 2-D matrix."""
    return x.reshape(len(x), -1)


# The baselines' training sample holds at most this many bytes of decoded inputs (besides
# train.baseline_rows): 256 MiB is ~2,400 images of 96x96 RGB, or 2 million rows of 30
# numbers, so a large image folder's baselines cost a bounded amount of memory.
BASELINE_BYTES = 256 << 20


def fit_baseline(
    estimator: Any, x_train: Any, y_train: np.ndarray | None, config: RunConfig
) -> tuple[Any, float, int]:
    """Fit a scikit-learn estimator on the flattened inputs of at most
    ``train.baseline_rows`` training rows (a seeded sample of a larger split, and no more
    than :data:`BASELINE_BYTES` of inputs); return it, the seconds taken and the rows it saw."""
    per_row = max(1, int(np.prod(x_train.shape[1:])) * 4)
    limit = max(1, min(config.train.baseline_rows, BASELINE_BYTES // per_row))
    if len(x_train) > limit:
        rows = sample_rows(y_train, len(x_train), limit, config.seed)
        x_fit = decoded_rows(x_train[rows], limit, config.seed)
        y_fit = None if y_train is None else np.asarray(y_train)[rows]
    else:
        x_fit = decoded_rows(x_train, limit, config.seed)
        y_fit = y_train
    start = time.perf_counter()
    estimator.fit(flat(x_fit), y_fit)
    return estimator, round(time.perf_counter() - start, 4), len(x_fit)


def sample_rows(y: np.ndarray | None, rows: int, limit: int, seed: int) -> np.ndarray:
    """``limit`` of ``rows`` row indices (sorted), drawn from ``seed``: stratified by ``y``
    where it holds class labels (integers), so every class keeps its share (rounded, the
    remainder going to the classes with the largest fractions). Memory: a mask and the
    row numbers of one class at a time (about 9 bytes a row), where scikit-learn's
    stratified split holds several arrays of every row (about 45 bytes a row: 600 MB for
    14 million training rows)."""
    if y is None or np.asarray(y).dtype.kind not in "iub" or rows <= limit:
        return seeded_rows(rows, limit, seed)
    y = np.asarray(y).astype(np.int64, copy=False)
    if y.min() >= 0:  # class indices: counted without sorting a copy
        counts = np.bincount(y)
        classes = np.flatnonzero(counts)
        counts = counts[classes]
    else:
        classes, counts = np.unique(y, return_counts=True)
    share = limit * counts / rows
    taken = np.floor(share).astype(np.int64)
    taken[np.argsort(taken - share)[: limit - int(taken.sum())]] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(y == c), k, replace=False)
        for c, k in zip(classes, taken, strict=True)
        if k
    ]
    return np.sort(np.concatenate(chosen))


def outputs_of(function: Callable[[np.ndarray], np.ndarray], x: Any) -> np.ndarray:
    """``function`` (a fitted baseline's predict) of the flattened examples of ``x``,
    applied a bounded chunk at a time where ``x`` streams from disk."""
    if not is_streamed(x):
        return function(flat(np.asarray(x)))
    return np.concatenate([function(flat(chunk)) for chunk in array_chunks(x, 2048)])


def parameter_count(estimator: Any) -> int | None:
    """Learned numbers of a fitted linear model (None for tree ensembles)."""
    final = estimator[-1] if hasattr(estimator, "steps") else estimator
    if hasattr(final, "coef_"):
        return int(np.size(final.coef_) + np.size(final.intercept_))
    return None
