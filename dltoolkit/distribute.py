"""Where a run trains: tf.distribute strategies on TensorFlow, keras.distribution on JAX.

Once per process, before Keras creates a variable, :func:`activate` turns
``config.distribute`` into a :class:`Placement`: the engine's strategy or distribution,
the number of replicas, and whether this process is the chief (the one that writes the
run). Models are built and compiled inside ``placement.scope()``. ``training.fit`` then
runs Keras' own ``fit`` (one_device, mirrored, tpu, data_parallel, model_parallel) or, for
multi_worker, where Keras 3's ``fit`` fails (keras-team/keras#20585), :func:`fit_in_loop`:
the same model's ``train_step``/``test_step`` under ``strategy.run`` with the same
callbacks, backed up every epoch so a restarted cluster resumes.

Strategies are an engine's own: nothing here moves tensors between devices itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dltoolkit.config import DistributeConfig, RunConfig, read_yaml
from dltoolkit.errors import ConfigError, DltkError
from dltoolkit.runs import fresh_folder, recover_folder, swap_in_folder

# The backends on which each strategy exists.
SUPPORTED = {
    "off": ("tensorflow", "jax", "torch"),
    "one_device": ("tensorflow",),
    "mirrored": ("tensorflow",),
    "multi_worker": ("tensorflow",),
    "tpu": ("tensorflow",),
    "parameter_server": ("tensorflow",),
    "data_parallel": ("jax",),
    "model_parallel": ("jax",),
}
# Strategies whose training goes through fit_in_loop instead of model.fit.
LOOP_STRATEGIES = ("multi_worker", "parameter_server")


def check_backend(strategy: str, backend: str) -> None:
    """Raise ConfigError unless ``strategy`` exists on ``backend``."""
    backends = SUPPORTED[strategy]
    if backend in backends:
        return
    others = [name for name, where in SUPPORTED.items() if backend in where]
    raise ConfigError(
        f"distribute.strategy {strategy!r} is not available on the {backend} backend; it "
        f"runs on {' and '.join(backends)}. Use --backend {backends[0]}, or one of "
        f"{', '.join(others)} on {backend}."
    )


def prepare_environment(distribute: DistributeConfig, backend: str) -> None:
    """What must be in the environment before the engine starts: JAX's host device count
    for ``cpu_devices``, and TF_CONFIG from a ``cluster`` file. Call before Keras is
    imported (the CLI does); later it is too late for ``cpu_devices`` on JAX."""
    check_backend(distribute.strategy, backend)
    if backend == "jax" and distribute.cpu_devices:
        flag = f"--xla_force_host_platform_device_count={distribute.cpu_devices}"
        flags = os.environ.get("XLA_FLAGS", "")
        if flag not in flags:
            if "jax" in sys.modules and _jax_started():
                raise DltkError(
                    f"distribute.cpu_devices={distribute.cpu_devices} must be set before JAX "
                    "starts; run it in a new process (the dltk command does this)."
                )
            os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()
    if distribute.cluster is not None and distribute.task is not None:
        kind, _, index = distribute.task.partition(":")
        os.environ["TF_CONFIG"] = json.dumps(
            {
                "cluster": read_cluster(distribute.cluster),
                "task": {"type": kind, "index": int(index)},
            }
        )


def read_cluster(path: str) -> dict[str, list[str]]:
    """A cluster file: a YAML/JSON mapping ``{job: [host:port, ...]}``."""
    cluster = read_yaml(path)
    if not cluster or not all(
        isinstance(addresses, list) and all(isinstance(a, str) and ":" in a for a in addresses)
        for addresses in cluster.values()
    ):
        raise ConfigError(
            f"cluster file {path} must map each job to a list of host:port addresses, e.g. "
            f"worker: [10.0.0.1:2222, 10.0.0.2:2222]; received {cluster!r}."
        )
    return cluster


def _jax_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge._backends)
    except (ImportError, AttributeError):
        return True


@dataclasses.dataclass
class Placement:
    """The active strategy of this process and what a run needs to know about it."""

    strategy: str
    precision: str
    replicas: int
    workers: int = 1
    worker_index: int = 0
    chief: bool = True
    engine: Any = None  # tf.distribute.Strategy or keras.distribution.Distribution
    device_names: list[str] = dataclasses.field(default_factory=list)
    fits: int = 0  # trainings started in this run (each in-loop one backs up on its own)
    coordinator: Any = None  # parameter_server: the ClusterCoordinator that schedules steps

    @property
    def in_loop(self) -> bool:
        """Whether training goes through :func:`fit_in_loop` instead of ``model.fit``."""
        return self.strategy in LOOP_STRATEGIES

    @property
    def shards_batches(self) -> bool:
        """Whether every batch is split over devices by keras.distribution (JAX), which
        needs each batch, the last one included, to split evenly."""
        return self.strategy in ("data_parallel", "model_parallel") and self.replicas > 1

    def even_rows(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        """The arrays less their last ``rows % replicas`` rows where batches are sharded
        (at most replicas - 1 rows of an epoch); unchanged otherwise."""
        if not self.shards_batches or not len(arrays[0]) % self.replicas:
            return arrays
        keep = len(arrays[0]) - len(arrays[0]) % self.replicas
        return tuple(array[:keep] for array in arrays)

    def finish(self) -> None:
        """Under multi_worker, wait until every worker is done with the run (the chief
        writes the run directory after training), so that none leaves the cluster while
        another still works in it."""
        if self.strategy == "multi_worker" and self.workers > 1:
            _replica_sum(self.engine, [1])

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Build and compile models inside this: the precision policy, and a tf.distribute
        strategy's scope. (A JAX distribution is set for the whole process by
        :func:`activate`.) Data preprocessing built outside stays float32."""
        import keras

        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.precision)
        try:
            if self.engine is None or not hasattr(self.engine, "extended"):
                yield
            else:
                with self.engine.scope():
                    yield
        finally:
            keras.config.set_dtype_policy(previous)

    def describe(self) -> dict[str, Any]:
        """For metrics.json: strategy, precision, replicas, workers and devices."""
        return {
            "strategy": self.strategy,
            "precision": self.precision,
            "replicas": self.replicas,
            "workers": self.workers,
            "devices": self.device_names,
        }


_ACTIVE: dict[tuple, Placement] = {}
_OFF = Placement(strategy="off", precision="float32", replicas=1)
_current: Placement = _OFF


def current() -> Placement:
    """The placement :func:`activate` set last (``off`` until then)."""
    return _current


def activate(config: RunConfig) -> Placement:
    """Set this process's precision policy and strategy from ``config.distribute`` and
    return the placement. Repeated calls with the same settings return the same one
    (tf.distribute strategies and logical devices are made once per process)."""
    global _current
    import keras

    distribute = config.distribute
    backend = keras.backend.backend()
    check_backend(distribute.strategy, backend)
    key = (
        distribute.strategy,
        distribute.cpu_devices,
        distribute.tpu,
        distribute.model_shards,
        os.environ.get("TF_CONFIG"),
    )
    if key not in _ACTIVE:
        _ACTIVE[key] = _make(distribute, backend)
    placement = dataclasses.replace(_ACTIVE[key], precision=distribute.precision)
    if backend == "jax":
        keras.distribution.set_distribution(placement.engine)
    batch = config.train.batch_size
    if batch % placement.replicas:
        raise ConfigError(
            f"train.batch_size {batch} (the global batch) does not split evenly over "
            f"{placement.replicas} replicas of strategy {distribute.strategy}; use a "
            f"multiple of {placement.replicas}."
        )
    _current = placement
    return placement


def _make(distribute: DistributeConfig, backend: str) -> Placement:
    name = distribute.strategy
    if name == "off":
        return Placement(strategy="off", precision=distribute.precision, replicas=1)
    if backend == "jax":
        return _jax_placement(distribute)
    return _tf_placement(distribute)


def _tf_placement(distribute: DistributeConfig) -> Placement:
    import tensorflow as tf

    name = distribute.strategy
    if name == "multi_worker":  # first: collectives are configured before TF starts
        return _multi_worker_placement(tf, distribute)
    if name == "tpu":
        return _tpu_placement(tf, distribute)
    if name == "parameter_server":
        return _parameter_server_placement(tf, distribute)
    if distribute.cpu_devices:
        _split_cpu(tf, distribute.cpu_devices)
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if name == "one_device":
        device = gpus[0] if gpus else cpus[0]
        strategy = tf.distribute.OneDeviceStrategy(device)
        return Placement(name, distribute.precision, 1, engine=strategy, device_names=[device])
    devices = gpus or cpus
    strategy = tf.distribute.MirroredStrategy(devices)
    return Placement(
        name, distribute.precision, strategy.num_replicas_in_sync, engine=strategy,
        device_names=devices,
    )  # fmt: skip


def _multi_worker_placement(tf: Any, distribute: DistributeConfig) -> Placement:
    resolver = _cluster_resolver(tf)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    cluster = resolver.cluster_spec().as_dict()
    kind, index = resolver.task_type, int(resolver.task_id)
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    workers = sum(len(cluster.get(job, [])) for job in ("chief", "worker"))
    position = index + (1 if kind == "worker" and "chief" in cluster else 0)
    local = [d.name for d in tf.config.list_logical_devices("GPU")] or [
        d.name for d in tf.config.list_logical_devices("CPU")
    ]
    return Placement(
        "multi_worker", distribute.precision, strategy.num_replicas_in_sync, workers=workers,
        worker_index=position, chief=chief, engine=strategy, device_names=local,
    )  # fmt: skip


def _parameter_server_placement(tf: Any, distribute: DistributeConfig) -> Placement:
    """The coordinator (the ``chief`` task) gets the strategy; a ``worker`` or ``ps`` task
    serves its part of the cluster until it is stopped, and never returns."""
    resolver = _cluster_resolver(tf, "parameter_server")
    cluster = resolver.cluster_spec().as_dict()
    if not cluster.get("ps") or not cluster.get("chief"):
        raise ConfigError(
            "distribute.strategy parameter_server needs a cluster with a chief, workers and at "
            f"least one ps task; received jobs {sorted(cluster)}. Try it locally with dltk "
            "launch --workers 2 --parameter-servers 1 recipe NAME."
        )
    if resolver.task_type in ("worker", "ps"):
        server = tf.distribute.Server(
            resolver.cluster_spec(), job_name=resolver.task_type,
            task_index=int(resolver.task_id), protocol=resolver.rpc_layer or "grpc", start=True,
        )  # fmt: skip
        print(f"{resolver.task_type} {resolver.task_id}: serving the cluster", flush=True)
        server.join()  # until the process is stopped
    strategy = tf.distribute.ParameterServerStrategy(resolver)
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    # Each step is one worker's batch of train.batch_size, applied asynchronously: one
    # replica in the sense of the global batch and the learning-rate scaling rule.
    return Placement(
        "parameter_server", distribute.precision, 1, workers=len(cluster["worker"]),
        engine=strategy, coordinator=coordinator,
        device_names=[f"/job:{job}/task:{i}" for job in ("worker", "ps")
                      for i in range(len(cluster[job]))],
    )  # fmt: skip


def _split_cpu(tf: Any, count: int) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    if len(tf.config.get_logical_device_configuration(cpu) or []) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        raise DltkError(
            f"distribute.cpu_devices={count} must be set before TensorFlow starts; run it in "
            "a new process (the dltk command does this)."
        ) from None


def _cluster_resolver(tf: Any, strategy: str = "multi_worker") -> Any:
    resolvers = tf.distribute.cluster_resolver
    if os.environ.get("TF_CONFIG"):
        resolver = resolvers.TFConfigClusterResolver()
        if resolver.task_type is None:
            raise ConfigError(
                "TF_CONFIG names no task for this process; it needs "
                '{"cluster": {...}, "task": {"type": "worker", "index": N}}.'
            )
        return resolver
    if "SLURM_PROCID" in os.environ:
        return resolvers.SlurmClusterResolver()
    raise ConfigError(
        f"distribute.strategy {strategy} needs a cluster: set TF_CONFIG, pass --cluster FILE "
        "--task worker:N, or run under SLURM; to try it on this machine, use "
        "dltk launch --workers 2 recipe NAME."
    )


def _tpu_placement(tf: Any, distribute: DistributeConfig) -> Placement:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=distribute.tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DltkError(
            f"distribute.strategy tpu found no TPU (tpu={distribute.tpu!r}: {reason}); run on a "
            "Cloud TPU VM, or set distribute.tpu to the TPU's name or grpc:// address."
        ) from None
    devices = [d.name for d in tf.config.list_logical_devices("TPU")]
    return Placement(
        "tpu", distribute.precision, strategy.num_replicas_in_sync, engine=strategy,
        device_names=devices,
    )  # fmt: skip


def _jax_placement(distribute: DistributeConfig) -> Placement:
    import keras

    dist = keras.distribution
    if os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES") or distribute.cluster:
        _initialize_jax_processes(distribute)
    devices = dist.list_devices()
    if distribute.strategy == "data_parallel":
        engine = dist.DataParallel(devices=devices)
    else:
        shards = distribute.model_shards
        if len(devices) % shards:
            raise ConfigError(
                f"distribute.model_shards {shards} does not divide the {len(devices)} devices; "
                f"choose a divisor of {len(devices)}."
            )
        mesh = dist.DeviceMesh((len(devices) // shards, shards), ["batch", "model"], devices)
        engine = _shard_last_axis_class()(layout_map=dist.LayoutMap(mesh), batch_dim_name="batch")
    import jax

    return Placement(
        distribute.strategy, distribute.precision, len(devices) // _model_axis(distribute),
        workers=jax.process_count(), worker_index=jax.process_index(),
        chief=jax.process_index() == 0, engine=engine, device_names=list(devices),
    )  # fmt: skip


def _model_axis(distribute: DistributeConfig) -> int:
    return distribute.model_shards if distribute.strategy == "model_parallel" else 1


def _initialize_jax_processes(distribute: DistributeConfig) -> None:
    import keras

    if distribute.cluster is None:
        keras.distribution.initialize()  # KERAS_DISTRIBUTION_* environment variables
        return
    addresses = [a for job in read_cluster(distribute.cluster).values() for a in job]
    index = str(distribute.task).partition(":")[2]
    keras.distribution.initialize(",".join(addresses), len(addresses), int(index))


def _shard_last_axis_class() -> type:
    import keras

    class _ShardLastAxis(keras.distribution.ModelParallel):
        """Model parallelism without a hand-written layout map: every weight of rank >= 2
        whose last axis the model axis divides is split along that axis (a Dense kernel by
        output units, a convolution kernel by filters); the rest is replicated."""

        def get_variable_layout(self, variable: Any) -> Any:
            shards = self.device_mesh.shape[self.device_mesh.axis_names.index("model")]
            shape = tuple(variable.shape)
            if len(shape) >= 2 and shape[-1] % shards == 0:
                spec = [None] * (len(shape) - 1) + ["model"]
                return keras.distribution.TensorLayout(spec, self.device_mesh)
            return super().get_variable_layout(variable)

    return _ShardLastAxis


# === The multi-worker training loop ===


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
        scores = local.evaluate(
            *validation, batch_size=loop.batch_size, verbose=0, return_dict=True
        )
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


def _replica_sum(strategy: Any, values: list[int]) -> np.ndarray:
    """The sum of ``values`` over every replica of every worker (a collective: each worker
    waits here for the others)."""
    import tensorflow as tf

    mine = tf.constant(values, tf.int64)

    def local() -> Any:
        return mine

    @tf.function
    def summed() -> Any:
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(local), axis=None)

    return summed().numpy()


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
    total, squares = _replica_sum(strategy, [epochs_done, epochs_done**2])
    if replicas * squares != total**2:
        raise DltkError(
            f"workers disagree on where to resume (this one at epoch {epochs_done}, the mean "
            f"{total / replicas:.1f}); the backup in {backup_dir} must be on storage every "
            "worker sees."
        )
    return epochs_done, history
