"""The pieces of training every task shares: the resolved configuration, the network built
from its builder, compiled, and fitted with the standard callbacks (``model.fit``, or the
strategy's own loop), the run's backups, and what the fit cost.

Call these after the Keras backend has been chosen (``dltoolkit.backend.use_backend``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit import distribute
from dltoolkit.backend import library_versions
from dltoolkit.callbacks import AtomicBackupAndRestore, StopOnNonFiniteLoss
from dltoolkit.config import RunConfig
from dltoolkit.cost import EpochTimer, devices, forward_flops, peak_memory_mib
from dltoolkit.data import ArraySplits
from dltoolkit.data.streams import as_input, concatenate, is_streamed, naming_bad_files
from dltoolkit.errors import ConfigError, DltkError, did_you_mean
from dltoolkit.models import MODELS, resolve_model_config
from dltoolkit.optimizers import OPTIMIZERS, check_metric_name, make_optimizer
from dltoolkit.runs import create_run_dir, higher_is_better, write_text_atomic


def resolve(config: RunConfig) -> RunConfig:
    """Fill the model section with the builder's defaults and check the settings only Keras
    can answer (optimizer and its options, metric names): errors before anything is written."""
    resolved = dataclasses.replace(config, model=resolve_model_config(config.model))
    if resolved.train.optimizer not in OPTIMIZERS:
        raise ConfigError(
            f"train.optimizer {resolved.train.optimizer!r} is unknown"
            f"{did_you_mean(resolved.train.optimizer, OPTIMIZERS)}; "
            f"expected one of {', '.join(OPTIMIZERS)}."
        )
    make_optimizer(resolved)  # unknown optimizer options fail before anything is written
    for index, name in enumerate(resolved.train.metrics):
        check_metric_name(name, f"train.metrics[{index}]")
    return resolved


# === The network ===


def build_network(
    config: RunConfig,
    input_shape: tuple[int, ...],
    head: dict[str, Any],
    preprocessing: keras.layers.Layer | None,
    input_name: str,
) -> keras.Model:
    """The configured builder's model: ``head`` (the task's output layer arguments), the
    ``preprocessing`` layers it starts with, and the recipe's hyperparameters."""
    hyperparameters = {key: value for key, value in config.model.items() if key != "builder"}
    return MODELS.get(config.model["builder"])(
        input_shape,
        **head,
        preprocessing=preprocessing,
        input_name=input_name,
        name=config.name.replace("-", "_"),
        **hyperparameters,
    )


def compile_model(
    model: keras.Model, config: RunConfig, loss: Any, metrics: list[Any], steps_per_epoch: int
) -> None:
    """Compile with the configured optimizer, ``loss`` (the configured one wins) and the
    task's ``metrics`` followed by the configured ones."""
    loss = config.train.loss or loss
    metrics = list(dict.fromkeys([*metrics, *config.train.metrics]))
    try:
        model.compile(optimizer=make_optimizer(config, steps_per_epoch), loss=loss, metrics=metrics)
    except ValueError as error:
        raise ConfigError(f"train.loss {loss!r} is not usable: {error}") from None


def steps_per_epoch(config: RunConfig, rows: int) -> int:
    """Training batches per epoch over ``rows`` training examples."""
    return math.ceil(rows / config.train.batch_size)


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


def predict_outputs(model: keras.Model, x: Any, batch_size: int) -> np.ndarray:
    """Model outputs for ``x`` (an array, or streamed images) as a float64 NumPy array
    (every row: where batches are sharded over devices, the last batch is padded with
    copies of the last row and the copies' outputs dropped)."""
    placement = distribute.current()
    x = as_input(x)
    padding = -len(x) % placement.replicas if placement.shards_batches else 0
    if padding:
        x = x[np.concatenate([np.arange(len(x)), np.full(padding, len(x) - 1)])]
    if is_streamed(x):
        with naming_bad_files(x):
            outputs = model.predict(x.batches(batch_size), verbose=0)
    else:
        outputs = model.predict(x, batch_size=batch_size, verbose=0)
    outputs = np.asarray(outputs, dtype=np.float64)
    return outputs[: len(outputs) - padding]


def fit_inputs(
    config: RunConfig,
    x: Any,
    y: np.ndarray,
    class_weight: dict[int, float] | None = None,
    shuffle: bool = True,
) -> dict[str, Any]:
    """``model.fit``'s data arguments for examples ``x`` and targets ``y``: the arrays with
    the batch size, or streamed images as a tf.data pipeline of batches (shuffled every
    epoch from the run's seed); with the class weights either way. Images kept in memory
    (``data.cache: memory``) are read as the array they are."""
    x = as_input(x)
    if is_streamed(x):
        seed = config.seed if shuffle else None
        batches = x.batches(config.train.batch_size, y, shuffle_seed=seed)
        return {"x": batches, "class_weight": class_weight, "shuffle": False}
    return {"x": x, "y": y, "batch_size": config.train.batch_size, "class_weight": class_weight}


def validation_inputs(config: RunConfig, x: Any, y: np.ndarray) -> Any:
    """``model.fit``'s ``validation_data``: the arrays, or streamed images' batches."""
    x = as_input(x)
    return x.batches(config.train.batch_size, y) if is_streamed(x) else (x, y)


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
    """A trained model (as the run saves it) and its training record."""

    model: keras.Model
    history: dict[str, list[float]]
    train_seconds: float
    examples: int  # training examples per epoch
    epoch_seconds: list[float] = dataclasses.field(default_factory=list)
    details: Any = None  # what a task's own loop adds (DEC's self-training record)


def fit(
    model: keras.Model,
    config: RunConfig,
    arrays: tuple[Any, np.ndarray, Any, np.ndarray],
    callback_list: list[keras.callbacks.Callback],
    verbose: int,
    echo: Callable[[str], None] = print,
    class_weight: dict[int, float] | None = None,
    initial_epoch: int = 0,
) -> Fitted:
    """Train on ``arrays`` (``x_train, y_train, x_val, y_val``, inputs as arrays or
    streamed images; the training rows plus the validation rows with
    ``train.refit_on_validation``), validated on the validation rows:
    ``model.fit``, or under multi_worker the strategy's own loop
    (:func:`dltoolkit.distribute.fit_in_loop`). Backed up every epoch, stopped on a
    non-finite loss. ``initial_epoch``: epochs already trained (a later phase of the same
    training), so that the logged epochs number on."""
    x_train, y_train, x_val, y_val = arrays
    if config.train.refit_on_validation:
        x_train, y_train = concatenate(x_train, x_val), concatenate(y_train, y_val)

    with naming_bad_files(x_train, x_val):
        x_train, x_val = as_input(x_train), as_input(x_val)
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
        if class_weight is not None:
            table = np.array(
                [class_weight[index] for index in range(len(class_weight))], np.float32
            )
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
        with naming_bad_files(x_train, x_val):
            history = distribute.fit_in_loop(model, placement, train, (x_val, y_val), loop)
        model = distribute.local_copy(model)
    else:
        extra: list[keras.callbacks.Callback] = [guard, timer]
        if config.train.backup:
            # After the guard: a non-finite loss stops the run before this epoch is saved.
            extra.append(AtomicBackupAndRestore(backup, saved=callback_list))
        # Validation arrays beside a streamed training split: the configured batch size.
        batching = {} if is_streamed(x_val) else {"validation_batch_size": config.train.batch_size}
        with naming_bad_files(x_train, x_val):
            history = model.fit(
                **fit_inputs(config, x_train, y_train, class_weight),
                validation_data=validation_inputs(config, x_val, y_val),
                **batching,
                epochs=initial_epoch + config.train.epochs,
                initial_epoch=initial_epoch,
                callbacks=[*callback_list, *extra],
                verbose=verbose,
            ).history
    history = whole_history(callback_list, history)
    train_seconds = time.perf_counter() - start
    return Fitted(model, history, train_seconds, len(x_train), timer.seconds)


def whole_history(
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
    # Keras' CSVLogger writes a val_loss column even for a fit without validation rows
    # (DEC's pretraining): an empty column is no history.
    logged = table.drop(columns="epoch").dropna(axis=1, how="all")
    return {column: logged[column].tolist() for column in logged.columns}


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


def _best_epoch(history: dict[str, list[float]], config: RunConfig) -> int:
    monitored = history.get(config.train.early_stopping.monitor)
    if not monitored:
        return len(history["loss"])
    pick = np.argmax if higher_is_better(config.train.early_stopping.monitor) else np.argmin
    return int(pick(monitored)) + 1
