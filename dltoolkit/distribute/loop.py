"""The training loop of the strategies whose Keras ``fit`` does not run (multi_worker,
parameter_server): the model's own ``train_step``/``test_step`` under ``strategy.run``,
with the standard callbacks, backed up every epoch so a restarted cluster resumes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dltoolkit.data.streams import is_streamed
from dltoolkit.distribute.placement import Placement, replica_sum
from dltoolkit.errors import DltkError
from dltoolkit.runs import fresh_folder, recover_folder, swap_in_folder


@dataclasses.dataclass
class Loop:
    """How a training loop runs: epochs, global batch, callbacks, progress output, the
    shuffling seed and where the chief backs up every epoch (None: no backup)."""

    epochs: int
    batch_size: int
    callbacks: list
    verbose: int
    seed: int
    backup_dir: Path | None
    echo: Callable[[str], None] = print


def fit_in_loop(
    model: Any, placement: Placement, train: tuple, validation: tuple | None, loop: Loop
) -> dict[str, list[float]]:
    """Train ``model`` (built and compiled in ``placement.scope()``) with its own
    ``train_step`` and ``test_step`` under ``strategy.run``; return the history.

    ``train`` and ``validation`` are ``(x, y)`` or ``(x, y, sample_weight)`` (validation
    None: none). Every epoch
    is shuffled with ``seed + epoch`` and split into global batches of ``batch_size``
    (each worker takes its replicas' share), so the run does not depend on the number of
    workers, and a resumed run sees the same batches as an uninterrupted one. At the end
    of every epoch the chief backs the model, the optimizer and the callbacks' state up
    into ``backup_dir``; a cluster started again with the same command resumes from there.
    """
    import tensorflow as tf

    if placement.coordinator is not None:
        return _fit_coordinated(model, placement, train, validation, loop)
    strategy = placement.engine
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA

    def batches(arrays: tuple, shuffle_seed: int | None) -> Any:
        if is_streamed(arrays[0]):
            return strategy.experimental_distribute_dataset(
                worker_shard(arrays, placement, loop.batch_size, shuffle_seed)
            )
        data = tf.data.Dataset.from_tensor_slices(arrays)
        if shuffle_seed is not None:
            data = data.shuffle(len(arrays[0]), seed=shuffle_seed, reshuffle_each_iteration=False)
        return strategy.experimental_distribute_dataset(
            data.batch(loop.batch_size).prefetch(2).with_options(options)
        )

    @tf.function(reduce_retracing=True)
    def train_step(batch: Any) -> None:
        strategy.run(model.train_step, args=(batch,))

    @tf.function(reduce_retracing=True)
    def test_step(batch: Any) -> None:
        strategy.run(model.test_step, args=(batch,))

    def results() -> dict[str, float]:
        return {key: float(value) for key, value in model.get_metrics_result().items()}

    validation_data = batches(validation, None) if validation is not None else []

    def one_epoch(epoch: int, callback_list: Any) -> dict[str, float]:
        model.reset_metrics()
        for step, batch in enumerate(batches(train, loop.seed + epoch)):
            callback_list.on_train_batch_begin(step)
            train_step(batch)
            callback_list.on_train_batch_end(step)
        logs = results()
        if validation is None:
            return logs
        model.reset_metrics()
        for batch in validation_data:
            test_step(batch)
        logs.update({f"val_{key}": value for key, value in results().items()})
        return logs

    start, past = _restore(model, loop.backup_dir, strategy)
    return _epochs(model, placement.chief, loop, len(train[0]), start, past, one_epoch)


def worker_shard(arrays: tuple, placement: Placement, batch_size: int, seed: int | None) -> Any:
    """This worker's share of streamed examples ``arrays`` (images, then labels and
    weights): every ``workers``-th file from its index on, so each worker decodes only its
    own images. Its batches are of the global ``batch_size``: with auto-sharding off,
    tf.distribute splits each worker's batch over every replica of the cluster, so one
    step takes batch_size / workers rows from each worker (one global batch in all) and an
    epoch takes rows / batch_size steps. The last ``rows % workers`` rows are left out (at
    most workers - 1 an epoch) so every worker takes the same number of steps."""
    import tensorflow as tf

    images, *columns = arrays
    workers, index = placement.workers, placement.worker_index
    keep = len(images) - len(images) % workers
    rows = np.arange(index, keep, workers)
    local = images[rows]
    shares = (c[rows] if is_streamed(c) else np.asarray(c)[rows] for c in columns)
    data = local.batches(batch_size, *shares, shuffle_seed=seed)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return data.with_options(options)


def _fit_coordinated(
    model: Any, placement: Placement, train: tuple, validation: tuple | None, loop: Loop
) -> dict[str, list[float]]:
    """parameter_server: the coordinator schedules ceil(rows / batch_size) steps an epoch
    on whichever worker is free; each step applies one worker's batch to the variables on
    the parameter servers (asynchronously). The logged ``loss`` is the mean of the steps'
    losses; validation metrics come from a copy of the model on the coordinator."""
    import keras
    import tensorflow as tf

    strategy, coordinator = placement.engine, placement.coordinator

    def dataset_fn(_context: Any = None) -> Any:
        if is_streamed(train[0]):
            return train[0].batches(loop.batch_size, *train[1:], shuffle_seed=loop.seed).repeat()
        data = tf.data.Dataset.from_tensor_slices(train)
        data = data.shuffle(len(train[0]), seed=loop.seed, reshuffle_each_iteration=True)
        return data.repeat().batch(loop.batch_size).prefetch(2)

    iterator = iter(coordinator.create_per_worker_dataset(dataset_fn))

    @tf.function
    def train_step(iterator: Any) -> Any:
        def step(batch: Any) -> Any:
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
            with tf.GradientTape() as tape:
                y_pred = model(x, training=True)
                loss = model.compute_loss(
                    x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
                )
                scaled = model.optimizer.scale_loss(loss)
            gradients = tape.gradient(scaled, model.trainable_variables)
            model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return loss

        return strategy.run(step, args=(next(iterator),))

    steps = -(-len(train[0]) // loop.batch_size)
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    start, past = _restore(model, loop.backup_dir, None)
    local = local_copy(model)

    def one_epoch(epoch: int, callback_list: Any) -> dict[str, float]:
        losses = [coordinator.schedule(train_step, args=(iterator,)) for _ in range(steps)]
        coordinator.join()
        logs = {"loss": float(np.mean([loss.fetch() for loss in losses]))}
        if validation is None:
            return logs
        local.set_weights(model.get_weights())
        x_val, y_val = validation
        inputs = (x_val.batches(loop.batch_size, y_val),) if is_streamed(x_val) else validation
        scores = local.evaluate(*inputs, batch_size=None if is_streamed(x_val) else
                                loop.batch_size, verbose=0, return_dict=True)  # fmt: skip
        logs.update({f"val_{key}": float(value) for key, value in scores.items()})
        return logs

    return _epochs(model, True, loop, len(train[0]), start, past, one_epoch)


def _epochs(
    model: Any,
    chief: bool,
    loop: Loop,
    rows: int,
    start: int,
    past: dict,
    one_epoch: Callable[[int, Any], dict[str, float]],
) -> dict[str, list[float]]:
    """The epoch loop both custom loops share: Keras callbacks around ``one_epoch``,
    progress lines, the chief's backup after every epoch, and the resume from epoch
    ``start`` with the history ``past`` and the callbacks' saved state."""
    import keras

    from dltoolkit.callbacks import restore_callback_state

    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        [*loop.callbacks, history], add_progbar=loop.verbose == 1 and chief, model=model,
        verbose=loop.verbose, epochs=loop.epochs, steps=-(-rows // loop.batch_size),
    )  # fmt: skip
    if start:
        loop.echo(f"resumed from the backup of epoch {start} in {loop.backup_dir}")
    model.stop_training = False
    callback_list.on_train_begin()
    if start and loop.backup_dir is not None:
        restore_callback_state(loop.callbacks, loop.backup_dir)
    history.history = {key: list(values) for key, values in past.items()}
    logs: dict[str, float] = {}
    for epoch in range(start, loop.epochs):
        callback_list.on_epoch_begin(epoch)
        logs = one_epoch(epoch, callback_list)
        callback_list.on_epoch_end(epoch, logs)
        if loop.verbose == 2 and chief:
            shown = " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())
            loop.echo(f"Epoch {epoch + 1}/{loop.epochs} - {shown}")
        if chief and loop.backup_dir is not None:
            _backup(model, loop.backup_dir, epoch + 1, history.history, loop.callbacks)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return history.history


def local_copy(model: Any) -> Any:
    """A copy of ``model``, compiled the same way, whose variables live outside any
    strategy (on this process only), for evaluating, predicting and saving."""
    import tempfile

    import keras

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return keras.models.load_model(path)


def _backup(model: Any, backup_dir: Path, epochs_done: int, history: dict, callbacks: list) -> None:
    """Write model weights, optimizer variables, the callbacks' state and the epoch count
    into a fresh folder, then swap it in, so a crash leaves either the old backup or the
    new one whole."""
    from dltoolkit.callbacks import save_callback_state

    fresh = fresh_folder(backup_dir)
    model.save_weights(fresh / "model.weights.h5")
    np.savez(fresh / "optimizer.npz", *[np.asarray(v) for v in model.optimizer.variables])
    save_callback_state(callbacks, fresh)
    (fresh / "state.json").write_text(json.dumps({"epochs_done": epochs_done, "history": history}))
    swap_in_folder(fresh, backup_dir)


def _restore(model: Any, backup_dir: Path | None, strategy: Any) -> tuple[int, dict]:
    """Load the backup in ``backup_dir`` if there is one; under multi_worker every worker
    must find the same epoch (the backup lives where the chief writes it, so it must be
    shared storage). ``strategy`` None: only this process trains (parameter_server)."""

    epochs_done, history = 0, {}
    if backup_dir is not None:
        recover_folder(backup_dir)
    state = backup_dir / "state.json" if backup_dir is not None else None
    if state is not None and state.exists():
        saved = json.loads(state.read_text())
        epochs_done, history = int(saved["epochs_done"]), saved["history"]
        model.load_weights(backup_dir / "model.weights.h5")
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            model.optimizer.build(model.trainable_variables)
        with np.load(backup_dir / "optimizer.npz") as arrays:
            values = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        for variable, value in zip(model.optimizer.variables, values, strict=True):
            variable.assign(value)
    if strategy is None:
        return epochs_done, history
    # Sums of e and e*e over the R replicas: equal values iff R * sum(e*e) == sum(e)**2.
    replicas = strategy.num_replicas_in_sync
    total, squares = replica_sum(strategy, [epochs_done, epochs_done**2])
    if replicas * squares != total**2:
        raise DltkError(
            f"workers disagree on where to resume (this one at epoch {epochs_done}, the mean "
            f"{total / replicas:.1f}); the backup in {backup_dir} must be on storage every "
            "worker sees."
        )
    return epochs_done, history
