"""One training run: data -> model -> fit -> evaluate -> baseline -> run directory -> export.

Call :func:`run` after the Keras backend has been chosen (``dltoolkit.backend.use_backend``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit import distribute
from dltoolkit.backend import library_versions
from dltoolkit.callbacks import AtomicBackupAndRestore, StopOnNonFiniteLoss
from dltoolkit.config import SERIES_TASKS, RunConfig
from dltoolkit.cost import EpochTimer, devices, forward_flops, peak_memory_mib
from dltoolkit.data import ArraySplits, load_dataset
from dltoolkit.data.sources import is_table
from dltoolkit.errors import ConfigError, DltkError, did_you_mean
from dltoolkit.export import check_model_name, export_saved_model
from dltoolkit.features import load_table_dataset
from dltoolkit.features import save as save_features
from dltoolkit.models import MODELS, resolve_model_config
from dltoolkit.report import save_test_outputs
from dltoolkit.runs import (
    create_run_dir,
    higher_is_better,
    write_json,
    write_text_atomic,
)
from dltoolkit.tasks import get_task

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
    "adagrad": keras.optimizers.Adagrad,
    "nadam": keras.optimizers.Nadam,
}


@dataclasses.dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path | None  # None on a worker that is not the chief
    metrics: dict[str, Any]
    export_path: Path | None


def resolve(config: RunConfig) -> RunConfig:
    """Fill the model section with the builder's defaults and validate it (imports Keras)."""
    resolved = dataclasses.replace(config, model=resolve_model_config(config.model))
    if resolved.export.model_name is not None:
        check_model_name(resolved.export.model_name)
    if resolved.train.optimizer not in OPTIMIZERS:
        raise ConfigError(
            f"train.optimizer {resolved.train.optimizer!r} is unknown"
            f"{did_you_mean(resolved.train.optimizer, OPTIMIZERS)}; "
            f"expected one of {', '.join(OPTIMIZERS)}."
        )
    make_optimizer(resolved)  # unknown optimizer options fail before anything is written
    for index, name in enumerate(resolved.train.metrics):
        check_metric_name(name, f"train.metrics[{index}]")
    if resolved.task in SERIES_TASKS and resolved.model["builder"] not in ("rnn", "cnn"):
        raise ConfigError(
            f"task {resolved.task} needs a sequence model, model.builder rnn or cnn; received "
            f"{resolved.model['builder']!r}."
        )
    if resolved.task == "clustering" and resolved.distribute.precision != "float32":
        raise ConfigError(
            "task clustering trains DEC/IDEC in float32 (its Student's t assignments and "
            "KL divergence lose too much in 16 bits); set distribute.precision=float32 "
            f"(received {resolved.distribute.precision!r})."
        )
    required = {"anomaly": "autoencoder", "clustering": "dec"}.get(resolved.task)
    if required is not None and resolved.model["builder"] != required:
        raise ConfigError(
            f"task {resolved.task} needs model.builder {required!r}, received "
            f"{resolved.model['builder']!r}. Set model.builder={required}."
        )
    return resolved


def check_metric_name(name: str, path: str) -> None:
    """Raise ConfigError unless ``keras.metrics.get`` knows ``name``."""
    try:
        keras.metrics.get(name)
        return
    except (ValueError, TypeError):
        pass
    known = _metric_names()
    raise ConfigError(
        f"{path} {name!r} is not a Keras metric name{did_you_mean(name, known)}; "
        f"use one keras.metrics.get accepts, e.g. {', '.join(known[:12])}, ..."
    )


def _metric_names() -> list[str]:
    """Snake-case names of Keras' metrics that build without arguments."""
    names = set()
    for attribute in dir(keras.metrics):
        candidate = getattr(keras.metrics, attribute)
        if isinstance(candidate, type) and issubclass(candidate, keras.metrics.Metric):
            try:
                names.add(candidate().name)
            except (TypeError, ValueError):
                continue  # needs arguments (e.g. PrecisionAtRecall)
    names.discard("metric")
    names.discard("mean_metric_wrapper")
    return sorted(names)


def prepare_data(config: RunConfig, saved_features: Path | None = None) -> ArraySplits:
    """Load and split the configured data; tables are encoded by a FeatureSpace adapted on
    the training split (or the one saved in ``saved_features``, to re-evaluate a run)."""
    task = get_task(config.task)
    if is_table(config.data.source):
        return load_table_dataset(config.data, config.seed, task.classes, saved_features)
    if config.data.folds:
        raise ConfigError(
            f"data.folds (cross-validation) is available for tables; data source "
            f"{config.data.source!r} is not one. Set data.folds=null."
        )
    if not task.classes or config.task == "anomaly":
        raise ConfigError(
            f"task {config.task!r} needs a table (csv:PATH, parquet:PATH or a builtin table), "
            f"received data source {config.data.source!r}."
        )
    return load_dataset(config.data, config.seed)


def build_model(config: RunConfig, data: ArraySplits) -> keras.Model:
    """Build the configured model. Image and array inputs get a Normalization layer adapted
    on the training split inside the model (tables are standardised by their FeatureSpace),
    so the exported model takes raw inputs. What the network fits, and what it becomes
    after fitting, is the task's (``fit_arrays``, ``trained``)."""
    task = get_task(config.task)
    hyperparameters = {key: value for key, value in config.model.items() if key != "builder"}
    preprocessing = None
    if data.feature_space is None:
        preprocessing = keras.layers.Normalization(axis=-1, dtype="float32", name="normalization")
        preprocessing.adapt(data.x_train)
    builder = MODELS.get(config.model["builder"])
    return builder(
        data.input_shape,
        **task.head(data.num_classes),
        preprocessing=preprocessing,
        input_name=input_name_for(data),
        name=config.name.replace("-", "_"),
        **hyperparameters,
    )


def steps_per_epoch(config: RunConfig, data: ArraySplits) -> int:
    """Training batches per epoch."""
    return math.ceil(len(data.x_train) / config.train.batch_size)


def input_name_for(data: ArraySplits) -> str:
    """Name of the model's input: ``image``, ``features`` (encoded table) or ``inputs``."""
    if data.feature_space is not None:
        return "features"
    return "image" if len(data.input_shape) == 3 else "inputs"


def learning_rate(config: RunConfig, steps_per_epoch: int):
    """The configured learning rate: a float, or a keras.optimizers.schedules schedule;
    times the number of replicas with ``distribute.scale_learning_rate``."""
    train, schedule = config.train, config.train.learning_rate_schedule
    rate = train.learning_rate
    if config.distribute.scale_learning_rate:
        rate *= distribute.current().replicas
    if schedule.name == "constant":
        return rate
    steps = schedule.decay_steps or max(1, train.epochs * steps_per_epoch - schedule.warmup_steps)
    schedules = keras.optimizers.schedules
    if schedule.name == "cosine":
        if schedule.warmup_steps:
            # Warm up linearly from 0 to the configured rate, then decay.
            return schedules.CosineDecay(
                0.0,
                steps,
                alpha=schedule.end_fraction,
                warmup_target=rate,
                warmup_steps=schedule.warmup_steps,
            )
        return schedules.CosineDecay(rate, steps, alpha=schedule.end_fraction)
    if schedule.name == "exponential":
        return schedules.ExponentialDecay(rate, steps, schedule.decay_rate)
    return schedules.PolynomialDecay(rate, steps, end_learning_rate=rate * schedule.end_fraction)


def make_optimizer(config: RunConfig, steps_per_epoch: int = 1) -> keras.optimizers.Optimizer:
    """The configured optimizer with its options and learning rate (or schedule)."""
    options = config.train.optimizer_options
    try:
        return OPTIMIZERS[config.train.optimizer](
            learning_rate=learning_rate(config, steps_per_epoch), **options
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"train.optimizer_options {options} are not valid for {config.train.optimizer!r}: "
            f"{error}"
        ) from None


def compile_model(model: keras.Model, config: RunConfig, steps_per_epoch: int = 1) -> None:
    """Compile with the configured optimizer, the task's (or configured) loss and metrics."""
    task = get_task(config.task)
    optimizer = make_optimizer(config, steps_per_epoch)
    loss = config.train.loss or task.default_loss
    metrics = list(dict.fromkeys([*task.metrics(), *config.train.metrics]))
    try:
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    except ValueError as error:
        raise ConfigError(f"train.loss {loss!r} is not usable: {error}") from None


def callbacks(config: RunConfig, run_dir: Path | None) -> list[keras.callbacks.Callback]:
    """Standard callbacks: early stopping and learning-rate reduction where configured; with
    a run directory also the CSV history (appended to, so a resumed run continues it),
    TensorBoard logs into ``run_dir/tensorboard`` and checkpoints into
    ``run_dir/checkpoints``, where configured."""
    result: list[keras.callbacks.Callback] = []
    if run_dir is not None:
        result.append(keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True))
    stopping = config.train.early_stopping
    if stopping.patience is not None:
        result.append(
            keras.callbacks.EarlyStopping(
                monitor=stopping.monitor,
                patience=stopping.patience,
                restore_best_weights=stopping.restore_best_weights,
            )
        )
    plateau = config.train.reduce_lr_on_plateau
    if plateau.patience is not None:
        result.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=plateau.monitor,
                factor=plateau.factor,
                patience=plateau.patience,
                min_lr=plateau.min_learning_rate,
            )
        )
    if config.report.tensorboard and run_dir is not None:
        result.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard")))
    checkpoint = config.train.checkpoint
    if checkpoint.enabled and run_dir is not None:
        folder = run_dir / "checkpoints"
        folder.mkdir(exist_ok=True)
        filename = "best.keras" if checkpoint.best_only else "epoch-{epoch:03d}.keras"
        result.append(
            keras.callbacks.ModelCheckpoint(
                str(folder / filename),
                monitor=checkpoint.monitor,
                save_best_only=checkpoint.best_only,
            )
        )
    return result


def predict_outputs(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Model outputs as a float64 NumPy array (every row: where batches are sharded over
    devices, the last batch is padded with copies of the last row and the copies' outputs
    dropped)."""
    placement = distribute.current()
    padding = -len(x) % placement.replicas if placement.shards_batches else 0
    if padding:
        x = np.concatenate([x, np.repeat(x[-1:], padding, axis=0)])
    outputs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    return outputs[: len(outputs) - padding]


def class_weights(config: RunConfig, y_train: np.ndarray, num_classes: int) -> dict | None:
    """``{class: weight}`` inversely proportional to class frequency, when configured."""
    if config.train.class_weight != "balanced":
        return None
    counts = np.bincount(y_train, minlength=num_classes).astype(np.float64)
    weights = len(y_train) / (num_classes * np.maximum(counts, 1.0))
    return {index: float(weight) for index, weight in enumerate(weights)}


def oversampled(config: RunConfig, data: ArraySplits) -> ArraySplits:
    """The splits with the training split randomly oversampled as ``train.oversample`` says
    (rows of each smaller class drawn with replacement, seeded); validation and test are
    left as they are. Without the setting, ``data`` itself."""
    ratio = config.train.oversample
    if ratio is None:
        return data
    rng = np.random.default_rng(config.seed)
    counts = np.bincount(data.y_train, minlength=data.num_classes)
    wanted = math.ceil(ratio * counts.max())
    extra = [
        rng.choice(np.flatnonzero(data.y_train == label), wanted - count)
        for label, count in enumerate(counts)
        if 0 < count < wanted
    ]
    rows = np.concatenate([np.arange(len(data.y_train)), *extra])
    return dataclasses.replace(data, x_train=data.x_train[rows], y_train=data.y_train[rows])


@dataclasses.dataclass
class Fitted:
    """A trained model (in the target's units for regression) and its training record."""

    model: keras.Model
    history: dict[str, list[float]]
    train_seconds: float
    examples: int  # training examples per epoch
    epoch_seconds: list[float] = dataclasses.field(default_factory=list)


def fit(
    model: keras.Model,
    config: RunConfig,
    data: ArraySplits,
    callback_list: list[keras.callbacks.Callback],
    verbose: int,
    echo: Callable[[str], None] = print,
) -> Fitted:
    """Train on the arrays the task trains on (the training split, plus the validation
    split with ``train.refit_on_validation``; normal rows only for anomaly detection),
    validated on the validation split's: ``model.fit``, or under multi_worker the
    strategy's own loop (:func:`dltoolkit.distribute.fit_in_loop`)."""
    task = get_task(config.task)
    x_train, y_train, x_val, y_val = task.fit_arrays(data)
    if config.train.refit_on_validation:
        x_train, y_train = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
    weights = class_weights(config, data.y_train, data.num_classes)
    placement = distribute.current()
    x_train, y_train = placement.even_rows(x_train, y_train)
    x_val, y_val = placement.even_rows(x_val, y_val)
    placement.fits += 1
    backup = backup_dir(config) / f"fit-{placement.fits}"
    guard = StopOnNonFiniteLoss(config, backup)
    timer = EpochTimer()
    start = time.perf_counter()
    if placement.in_loop:
        train: tuple = (x_train, y_train)
        if weights is not None:
            table = np.array([weights[index] for index in range(len(weights))], np.float32)
            train = (x_train, y_train, table[np.asarray(y_train, dtype=np.int64)])
        loop = distribute.Loop(
            config.train.epochs,
            config.train.batch_size,
            [*callback_list, guard, timer],
            verbose,
            config.seed,
            backup,
            echo,
        )
        history = distribute.fit_in_loop(model, placement, train, (x_val, y_val), loop)
        model = distribute.local_copy(model)
    else:
        extra: list[keras.callbacks.Callback] = [guard, timer]
        if config.train.backup:
            # After the guard: a non-finite loss stops the run before this epoch is saved.
            extra.append(AtomicBackupAndRestore(backup, saved=callback_list))
        history = model.fit(
            x_train,
            y_train,
            validation_data=(x_val, y_val),
            epochs=config.train.epochs,
            batch_size=config.train.batch_size,
            callbacks=[*callback_list, *extra],
            class_weight=weights,
            verbose=verbose,
        ).history
    history = _whole_history(callback_list, history)
    train_seconds = time.perf_counter() - start
    trained = task.trained(model, data)
    return Fitted(trained, history, train_seconds, len(x_train), timer.seconds)


def _whole_history(
    callback_list: list[keras.callbacks.Callback], history: dict[str, list[float]]
) -> dict[str, list[float]]:
    """The history of every epoch of the run. A resumed fit's own history starts at the
    epoch it resumed from, so the run's CSV log (one row per epoch, the last row of an
    epoch repeated by the resume kept) is read back, rewritten without repeats, and used."""
    logger = next((c for c in callback_list if isinstance(c, keras.callbacks.CSVLogger)), None)
    if logger is None or not Path(logger.filename).exists():
        return history
    import pandas as pd

    table = pd.read_csv(logger.filename).drop_duplicates("epoch", keep="last")
    table = table.sort_values("epoch")
    write_text_atomic(logger.filename, table.to_csv(index=False))
    return {column: table[column].tolist() for column in table.columns if column != "epoch"}


def open_run_dir(config: RunConfig, resume: Path | None = None) -> tuple[Path, bool]:
    """The run directory and whether it is resumed: the interrupted run that this
    configuration's backup names (the same command started again, or ``resume``), else a
    new one."""
    marker = backup_dir(config) / "run_dir.txt"
    previous = Path(marker.read_text().strip()) if marker.exists() else None
    if resume is not None and (
        previous is None
        or previous.resolve() != resume.resolve()
        or (resume / "metrics.json").exists()
    ):
        raise DltkError(
            f"nothing to resume in {resume}: it finished (metrics.json is there) or it has no "
            "backup (run it from the folder it was started in, with its config.yaml); start "
            "a new run instead."
        )
    if previous is not None and previous.is_dir() and not (previous / "metrics.json").exists():
        return previous, True
    run_dir = create_run_dir(config.output_dir, config.name)
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(marker, str(run_dir))
    return run_dir, False


def backup_dir(config: RunConfig) -> Path:
    """Where a run backs up every epoch (one folder per training, ``fit-N``, and the
    marker naming its run directory): named by the recipe and a hash of its resolved
    config (less this process's place in the cluster), so the same command started again
    finds it. The chief removes it when the run is complete (:func:`drop_backups`)."""
    settings = dataclasses.replace(
        config, distribute=dataclasses.replace(config.distribute, task=None, cluster=None)
    )
    digest = hashlib.sha256(settings.to_yaml().encode()).hexdigest()[:12]
    return Path(config.output_dir) / ".backup" / f"{config.name}-{digest}"


def drop_backups(config: RunConfig) -> None:
    """Remove the run's backups once it is complete (the chief's job)."""
    shutil.rmtree(backup_dir(config), ignore_errors=True)


def run_facts(config: RunConfig, fitted: Fitted) -> dict[str, Any]:
    """What a trained network cost and ran on, for metrics.json: parameters, training
    seconds, epochs, best epoch, examples per second, ``cost`` (forward FLOPs per example,
    seconds per epoch, peak memory, devices), backend, library versions, seed."""
    epochs_run = len(fitted.history["loss"])
    model = fitted.model
    flops = forward_flops(model)
    return {
        "parameters": {
            "total": int(model.count_params()),
            "trainable": int(sum(math.prod(w.shape) for w in model.trainable_weights)),
        },
        "train_seconds": round(fitted.train_seconds, 3),
        "epochs_run": epochs_run,
        "best_epoch": _best_epoch(fitted.history, config),
        "samples_per_second": round(fitted.examples * epochs_run / fitted.train_seconds, 1),
        "cost": {
            "flops_per_example": flops["per_example"],
            "flops_not_counted": flops["not_counted"],
            "seconds_per_epoch": [round(seconds, 3) for seconds in fitted.epoch_seconds],
            "peak_memory_mib": peak_memory_mib(),
            "devices": devices(),
        },
        "distribute": distribute.current().describe(),
        "backend": keras.backend.backend(),
        "versions": library_versions(),
        "seed": config.seed,
    }


def decide_and_score(
    config: RunConfig, model: keras.Model, data: ArraySplits
) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
    """The task's decision chosen on the validation split (a binary threshold), the test
    scores under it, and the test outputs."""
    task = get_task(config.task)
    batch_size = config.train.batch_size
    outputs = predict_outputs(model, data.x_val, batch_size)
    decision = task.decision(data.y_val, outputs, config.train.threshold)
    outputs = predict_outputs(model, data.x_test, batch_size)
    return decision, task.scores(data.y_test, outputs, decision), outputs


def cross_validate(config: RunConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """K-fold cross-validation (``data.folds``) of the model and the task's baselines.

    Each fold is the test split once; validation (early stopping, the decision threshold)
    is drawn from the other folds, and the FeatureSpace is adapted on each fold's training
    rows. Returns per-fold scores and, per model, the mean and standard deviation of every
    numeric score.
    """
    task = get_task(config.task)
    count = int(config.data.folds)
    per_fold = []
    for index in range(count):
        keras.utils.set_random_seed(config.seed)
        data = load_table_dataset(config.data, config.seed, task.classes, fold=(index, count))
        data = oversampled(config, data)
        with distribute.current().scope():
            model = build_model(config, data)
            compile_model(model, config, steps_per_epoch(config, data))
        fitted = fit(model, config, data, callbacks(config, None), 0, echo)
        if not distribute.current().chief:
            continue  # other workers only train alongside the chief
        scores = {"deep model": decide_and_score(config, fitted.model, data)[1]}
        for baseline in task.baselines(data, config.train.threshold, config.train.class_weight):
            scores[baseline["name"]] = baseline["test"]
        per_fold.append(
            {"fold": index, "epochs_run": len(fitted.history["loss"]), "scores": scores}
        )
        echo(
            f"fold {index + 1}/{count}: "
            + ", ".join(f"{name} {s[task.headline]:.4f}" for name, s in scores.items())
        )
    if not per_fold:
        return {}
    summary: dict[str, Any] = {"folds": count, "mean": {}, "std": {}, "per_fold": per_fold}
    for name in per_fold[0]["scores"]:
        numbers = {
            key: [fold["scores"][name][key] for fold in per_fold]
            for key, value in per_fold[0]["scores"][name].items()
            if isinstance(value, float)
        }
        summary["mean"][name] = {key: float(np.mean(v)) for key, v in numbers.items()}
        summary["std"][name] = {key: float(np.std(v)) for key, v in numbers.items()}
    echo(
        f"{count}-fold mean {task.headline}: "
        + ", ".join(f"{name} {m[task.headline]:.4f}" for name, m in summary["mean"].items())
    )
    return summary


def run(
    config: RunConfig, echo: Callable[[str], None] = print, resume: Path | None = None
) -> RunResult:
    """Train, evaluate and export one configured run; return where everything went.

    Everything that can fail on bad input (config, data, model arguments) is checked before
    the run directory is created, so a failed start leaves nothing behind. A run that was
    interrupted (killed mid-training) is resumed into its own run directory by the same
    command, or by ``resume`` (its run directory).
    """
    placement = distribute.activate(config)
    config = resolve(config)
    if config.task == "clustering":
        from dltoolkit.segmentation import run_clustering

        if not is_table(config.data.source):
            raise ConfigError(
                f"task 'clustering' needs a table (csv:PATH, parquet:PATH or a builtin table), "
                f"received data source {config.data.source!r}."
            )
        return run_clustering(config, echo)
    if config.task in SERIES_TASKS:
        from dltoolkit.timeseries import run_series

        return run_series(config, echo, resume)
    task = get_task(config.task)
    keras.utils.set_random_seed(config.seed)
    data = oversampled(config, prepare_data(config))
    with placement.scope():
        model = build_model(config, data)
        compile_model(model, config, steps_per_epoch(config, data))
    if not placement.chief:  # train what the chief trains, in the same order; write nothing
        if config.data.folds:
            cross_validate(config, echo)
            keras.utils.set_random_seed(config.seed)
        fitted = fit(model, config, data, callbacks(config, None), config.train.verbose, echo)
        return worker_result(placement, fitted, echo)

    run_dir, resumed = open_run_dir(config, resume)
    write_text_atomic(run_dir / "config.yaml", config.to_yaml())
    if resumed:
        echo(f"resuming the interrupted run in {run_dir}")
    if data.table is not None:
        save_features(
            data.feature_space,
            run_dir,
            data.table.numeric,
            data.table.categorical,
            data.table.medians,
        )
    echo(f"run directory: {run_dir}")
    sizes = data.sizes()
    classes = f"{data.num_classes} classes, " if task.classes else ""
    echo(
        f"data {data.source}: {sizes['train']} train / {sizes['validation']} validation / "
        f"{sizes['test']} test, {classes}input {data.input_shape}; "
        f"backend {keras.backend.backend()}"
    )

    if config.data.folds:
        cross_validation = cross_validate(config, echo)
        keras.utils.set_random_seed(config.seed)
    fitted = fit(model, config, data, callbacks(config, run_dir), config.train.verbose, echo)
    model = fitted.model

    decision, test_scores, test_outputs = decide_and_score(config, model, data)
    baselines = task.baselines(data, config.train.threshold, config.train.class_weight)
    model_path = run_dir / "model.keras"
    model.save(model_path)

    metrics: dict[str, Any] = {
        "recipe": config.name,
        "task": config.task,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "test": test_scores,
        "decision": decision,
        "baselines": baselines,
        **run_facts(config, fitted),
        "data": {
            "source": data.source,
            "sizes": sizes,
            "input_shape": list(data.input_shape),
            "class_names": data.class_names,
        },
    }
    if config.data.folds:
        metrics["cross_validation"] = cross_validation
    if config.train.oversample is not None:
        metrics["data"]["oversampled_train_counts"] = np.bincount(data.y_train).tolist()
    if data.table is not None:
        metrics["data"]["numeric"] = data.table.numeric
        metrics["data"]["categorical"] = data.table.categorical
    if config.report.enabled:
        save_test_outputs(run_dir, data.y_test, test_outputs)
        metrics["interpretability"] = explain(config, model, data, decision, run_dir, echo)
    write_json(run_dir / "metrics.json", metrics)
    drop_backups(config)
    echo(_summary(metrics, task.summary))
    if config.report.enabled:
        report(run_dir, echo)

    export_path = export_run(
        config, run_dir, metrics, echo, data.class_names, task=config.task, decision=decision
    )
    return RunResult(run_dir=run_dir, metrics=metrics, export_path=export_path)


def explain(
    config: RunConfig,
    model: keras.Model,
    data: ArraySplits,
    decision: dict[str, Any],
    run_dir: Path,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """Permutation importance of a table's raw features or saliency maps of a few test
    images, as ``report`` configures, and for anomaly detection the autoencoder's latent
    space of the test rows by class; what was found, for metrics.json."""
    from dltoolkit.interpret import permutation_importance, saliency_figure

    found: dict[str, Any] = {}
    repeats, images = config.report.permutation_repeats, config.report.saliency_images
    if data.table is not None and repeats:
        task = get_task(config.task)
        found["permutation_importance"] = permutation_importance(
            model, data, task, decision, repeats, config.seed, config.train.batch_size
        )
        top = found["permutation_importance"]["features"][:3]
        echo("most important features (test): " + ", ".join(f["feature"] for f in top))
    if config.task == "anomaly":
        from dltoolkit.report import latent_picture

        rows = np.random.default_rng(config.seed).permutation(len(data.x_test))[:5000]
        names = data.class_names or ["normal", "anomaly"]
        latent_picture(
            model.get_layer("encoder"),
            data.x_test[rows],
            np.asarray(data.y_test)[rows],
            names,
            "Autoencoder latent space of test rows, by class",
            run_dir,
        )
    if len(data.input_shape) == 3 and config.task == "classification" and images:
        rows = np.random.default_rng(config.seed).choice(
            len(data.x_test), min(images, len(data.x_test)), replace=False
        )
        found["saliency"] = saliency_figure(
            model, data.x_test[rows], data.y_test[rows], data.class_names, run_dir
        )
    return found


def report(run_dir: Path, echo: Callable[[str], None]) -> None:
    """Write the run's report.html; a failure is reported without losing the finished run."""
    from dltoolkit.report import write_report

    try:
        path = write_report(run_dir)
    except Exception as error:  # the run itself is complete and saved by now
        echo(
            f"report.html could not be written ({type(error).__name__}: {error}); the run is "
            f"complete, retry with: dltk report {run_dir}"
        )
        return
    echo(f"report: {path}")


def worker_result(
    placement: distribute.Placement, fitted: Fitted, echo: Callable[[str], None]
) -> RunResult:
    """What a worker other than the chief returns once training is done: the chief
    evaluates, writes the run directory and exports."""
    echo(
        f"worker {placement.worker_index}: trained {len(fitted.history['loss'])} epochs; the "
        "chief writes the run directory"
    )
    return RunResult(run_dir=None, metrics={}, export_path=None)


def export_run(
    config: RunConfig,
    run_dir: Path,
    metrics: dict[str, Any],
    echo: Callable[[str], None],
    class_names: list[str] | None = None,
    **head: Any,
) -> Path | None:
    """Export ``run_dir/model.keras`` when ``export.enabled``; record where in metrics.json.

    ``head`` is the task's serving head: ``task=`` and, where chosen, ``decision=``.
    """
    if not config.export.enabled:
        return None
    export_path = export_saved_model(
        run_dir / "model.keras",
        config.export.directory,
        config.export.model_name or config.name,
        class_names,
        **head,
    )
    metrics["export"] = {"path": str(export_path), "version": int(export_path.name)}
    write_json(run_dir / "metrics.json", metrics)
    echo(f"SavedModel: {export_path}")
    return export_path


def _best_epoch(history: dict[str, list[float]], config: RunConfig) -> int:
    monitored = history.get(config.train.early_stopping.monitor)
    if not monitored:
        return len(history["loss"])
    pick = np.argmax if higher_is_better(config.train.early_stopping.monitor) else np.argmin
    return int(pick(monitored)) + 1


def _summary(metrics: dict[str, Any], names: tuple[str, ...]) -> str:
    def score(scores: dict[str, Any]) -> str:
        return " ".join(f"{scores[name]:.4f}" for name in names)

    baselines = ", ".join(f"{b['name']} {score(b['test'])}" for b in metrics["baselines"])
    return (
        f"test {'/'.join(names)} {score(metrics['test'])} | baselines: {baselines} | "
        f"{metrics['parameters']['total']:,} parameters, "
        f"{metrics['cost']['flops_per_example']:,} FLOPs/example, {metrics['epochs_run']} "
        f"epochs in {metrics['train_seconds']:.1f} s ({metrics['samples_per_second']:.0f} "
        f"samples/s), peak memory {metrics['cost']['peak_memory_mib']:.0f} MiB"
    )
