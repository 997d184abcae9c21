"""The checks every run's configuration passes, whatever its task (a task's own rules
are its ``check_config``)."""

from __future__ import annotations

import re
import typing
from typing import Any

from dltoolkit.config.schema import (
    BACKENDS,
    CACHE_MODES,
    CALIBRATIONS,
    PRECISIONS,
    SCHEDULES,
    SPLITS,
    STRATEGIES,
    THRESHOLD_OBJECTIVES,
    DistributeConfig,
    RunConfig,
)
from dltoolkit.errors import ConfigError

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_model_name(name: str) -> str:
    """Model names become URL path segments in TF Serving: letters, digits, ``_.-`` only."""
    if not _MODEL_NAME.match(name):
        raise ConfigError(
            f"model name {name!r} is not usable in a model repository; use letters, digits, "
            "'_', '.' and '-' only (e.g. --name cnn-image)."
        )
    return name


def fail(path: str, value: Any, expected: str) -> typing.NoReturn:
    """Raise the one-line ConfigError for setting ``path``: what it must be, what it was."""
    raise ConfigError(f"{path} must be {expected}, received {value!r}.")


def _check_fine_tune(config: RunConfig) -> None:
    tune = config.train.fine_tune
    if tune.head_epochs is not None and tune.head_epochs < 1:
        fail("train.fine_tune.head_epochs", tune.head_epochs, "a positive integer or null")
    if not tune.head_learning_rate > 0:
        fail("train.fine_tune.head_learning_rate", tune.head_learning_rate, "a positive number")
    count = isinstance(tune.unfreeze, int) and not isinstance(tune.unfreeze, bool)
    if tune.unfreeze != "all" and not (count and tune.unfreeze >= 0):
        fail("train.fine_tune.unfreeze", tune.unfreeze, "'all' or a number of layers >= 0")
    changed = tune.head_epochs is not None or tune.unfreeze != "all"
    if changed and "backbone" not in config.model:
        raise ConfigError(
            "train.fine_tune is set, but the model has no pretrained backbone (builder "
            f"{config.model.get('builder')!r}); use model.builder=transfer (images) or "
            "text_backbone (texts) with model.backbone, "
            "or leave train.fine_tune at its defaults."
        )


def check_values(config: RunConfig) -> None:
    """Raise ConfigError, naming the setting, for any value no run accepts."""

    if config.backend is not None and config.backend not in BACKENDS:
        fail("backend", config.backend, "one of " + ", ".join(BACKENDS) + " (or null)")
    _check_distribute(config.distribute)
    data = config.data
    for key in ("validation_split", "test_split"):
        value = getattr(data, key)
        if not 0.0 < value < 1.0:
            fail(f"data.{key}", value, "a fraction between 0 and 1 (exclusive)")
    if data.validation_split + data.test_split >= 0.9:
        fail(
            "data.validation_split + data.test_split",
            round(data.validation_split + data.test_split, 4),
            "below 0.9 so that training keeps at least 10% of the data",
        )
    if data.image_size is not None and (len(data.image_size) != 2 or min(data.image_size) < 1):
        fail("data.image_size", data.image_size, "[height, width] of positive integers")
    if data.color_mode not in ("rgb", "grayscale", "rgba"):
        fail("data.color_mode", data.color_mode, "one of 'rgb', 'grayscale', 'rgba'")
    if data.cache not in CACHE_MODES:
        fail("data.cache", data.cache, "one of " + ", ".join(CACHE_MODES))
    if data.split not in SPLITS:
        fail("data.split", data.split, "one of " + ", ".join(SPLITS))
    if data.split_key is not None and data.split == "time":
        fail("data.split_key", data.split_key, "null with data.split=time (time orders rows)")
    if data.max_tokens < 1:
        fail("data.max_tokens", data.max_tokens, "a positive integer (tokens read per text)")
    if data.tokenizer not in ("words", "wordpiece") and not re.fullmatch(r"hub:.+", data.tokenizer):
        fail(
            "data.tokenizer", data.tokenizer, "words, wordpiece or hub:PRESET (a keras-hub preset)"
        )
    if data.vocabulary_size < 3:
        fail("data.vocabulary_size", data.vocabulary_size, "at least 3 (padding, unknown, a token)")
    if data.split_column is not None and (data.split == "time" or data.folds):
        fail("data.split_column", data.split_column, "null with data.split=time or data.folds")
    if data.missing not in ("error", "median"):
        fail("data.missing", data.missing, "'error' or 'median'")
    train = config.train
    if train.epochs < 1:
        fail("train.epochs", train.epochs, "a positive integer")
    _check_fine_tune(config)
    if train.baseline_rows < 1:
        fail("train.baseline_rows", train.baseline_rows, "a positive integer")
    if train.batch_size < 1:
        fail("train.batch_size", train.batch_size, "a positive integer")
    if not train.learning_rate > 0:
        fail("train.learning_rate", train.learning_rate, "a positive number")
    if train.early_stopping.patience is not None and train.early_stopping.patience < 0:
        fail("train.early_stopping.patience", train.early_stopping.patience, ">= 0 or null")
    plateau = train.reduce_lr_on_plateau
    if plateau.patience is not None and plateau.patience < 0:
        fail("train.reduce_lr_on_plateau.patience", plateau.patience, ">= 0 or null")
    if not 0.0 < plateau.factor < 1.0:
        fail("train.reduce_lr_on_plateau.factor", plateau.factor, "a fraction between 0 and 1")
    schedule = train.learning_rate_schedule
    if train.class_weight not in (None, "balanced"):
        fail("train.class_weight", train.class_weight, "'balanced' or null")
    if train.oversample is not None:
        if not 0.0 < train.oversample <= 1.0:
            fail("train.oversample", train.oversample, "a ratio in (0, 1] or null")
        if train.class_weight is not None:
            fail(
                "train.oversample",
                train.oversample,
                "null when train.class_weight is set (both correct the same imbalance; choose one)",
            )
    if train.refit_on_validation and train.early_stopping.patience is not None:
        fail(
            "train.refit_on_validation",
            True,
            "false unless train.early_stopping.patience is null (a fixed number of epochs: "
            "validation is then training data) and the task fits by model.fit (not clustering)",
        )
    clustering = train.clustering
    if clustering.method not in ("dec", "idec"):
        fail("train.clustering.method", clustering.method, "'dec' or 'idec'")
    for key in ("max_iterations", "update_interval", "som_epochs"):
        if getattr(clustering, key) < 1:
            fail(f"train.clustering.{key}", getattr(clustering, key), "a positive integer")
    if not 0.0 <= clustering.tolerance < 1.0:
        fail("train.clustering.tolerance", clustering.tolerance, "a fraction in [0, 1)")
    if len(clustering.som_map) != 2 or min(clustering.som_map) < 1:
        fail("train.clustering.som_map", clustering.som_map, "[rows, columns] of positive sizes")
    threshold = train.threshold
    if threshold.objective not in THRESHOLD_OBJECTIVES:
        fail(
            "train.threshold.objective",
            threshold.objective,
            "one of " + ", ".join(THRESHOLD_OBJECTIVES),
        )
    if threshold.objective not in ("f1", "cost") and not (
        threshold.target is not None and 0.0 < threshold.target < 1.0
    ):
        fail(
            "train.threshold.target",
            threshold.target,
            f"a fraction between 0 and 1 with objective {threshold.objective!r}",
        )
    _check_costs(config)
    if schedule.name not in SCHEDULES:
        fail("train.learning_rate_schedule.name", schedule.name, "one of " + ", ".join(SCHEDULES))
    if schedule.decay_steps is not None and schedule.decay_steps < 1:
        fail("train.learning_rate_schedule.decay_steps", schedule.decay_steps, "positive or null")
    if not 0.0 < schedule.decay_rate <= 1.0:
        fail("train.learning_rate_schedule.decay_rate", schedule.decay_rate, "in (0, 1]")
    if not 0.0 <= schedule.end_fraction <= 1.0:
        fail("train.learning_rate_schedule.end_fraction", schedule.end_fraction, "in [0, 1]")
    if schedule.warmup_steps < 0 or (schedule.warmup_steps and schedule.name != "cosine"):
        fail(
            "train.learning_rate_schedule.warmup_steps",
            schedule.warmup_steps,
            "0, or >= 0 with the cosine schedule",
        )
    if schedule.name != "constant" and plateau.patience is not None:
        fail(
            "train.learning_rate_schedule.name",
            schedule.name,
            "'constant' while train.reduce_lr_on_plateau is on (a schedule and plateau "
            "reduction both set the learning rate; set reduce_lr_on_plateau.patience: null)",
        )
    scorecard = config.export.scorecard
    for key in ("base_odds", "points_to_double_odds"):
        if not getattr(scorecard, key) > 0:
            fail(f"export.scorecard.{key}", getattr(scorecard, key), "a positive number")
    if config.export.model_name is not None:
        check_model_name(config.export.model_name)
    if not isinstance(config.model.get("builder"), str):
        fail("model.builder", config.model.get("builder"), "the name of a model builder")
    for key in ("permutation_repeats", "saliency_images", "explained_texts"):
        if getattr(config.report, key) < 0:
            fail(f"report.{key}", getattr(config.report, key), "an integer >= 0 (0 turns it off)")


def _check_costs(config: RunConfig) -> None:
    """The cost model, the threshold it can choose and the calibration method."""
    train = config.train
    costs = train.costs
    for key in ("false_positive", "false_negative", "review"):
        value = getattr(costs, key)
        if not (isinstance(value, (int, float)) and value >= 0):
            fail(f"train.costs.{key}", value, "a cost >= 0 (money per row)")
    if train.threshold.objective == "cost" and not (costs.priced() or config.data.amount_column):
        fail(
            "train.threshold.objective",
            "cost",
            "another objective when no cost is set (set train.costs.false_positive, "
            "false_negative or review, or data.amount_column)",
        )
    if train.calibration not in CALIBRATIONS:
        fail("train.calibration", train.calibration, "one of " + ", ".join(CALIBRATIONS))
    if train.calibration != "none" and train.refit_on_validation:
        fail(
            "train.calibration",
            train.calibration,
            "none with train.refit_on_validation (the calibration is fitted on validation "
            "rows, which the refit trains on)",
        )


def _check_distribute(distribute: DistributeConfig) -> None:
    if distribute.strategy not in STRATEGIES:
        fail("distribute.strategy", distribute.strategy, "one of " + ", ".join(STRATEGIES))
    if distribute.precision not in PRECISIONS:
        fail("distribute.precision", distribute.precision, "one of " + ", ".join(PRECISIONS))
    if distribute.cpu_devices is not None and distribute.cpu_devices < 1:
        fail("distribute.cpu_devices", distribute.cpu_devices, "a positive integer or null")
    if distribute.model_shards < 1:
        fail("distribute.model_shards", distribute.model_shards, "a positive integer")
    task = distribute.task
    if task is not None:
        kind, _, index = task.partition(":")
        if kind not in ("chief", "worker", "ps", "evaluator") or not index.isdigit():
            fail("distribute.task", task, "TYPE:INDEX with TYPE chief, worker or ps, e.g. worker:1")
    if (distribute.cluster is None) != (task is None):
        fail(
            "distribute.cluster and distribute.task",
            [distribute.cluster, task],
            "set together (a cluster file and this process's TYPE:INDEX in it)",
        )
