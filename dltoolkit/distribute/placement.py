"""Placement: the strategy or distribution a process trains under, chosen once from
``config.distribute`` before Keras creates a variable."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from dltoolkit.config import DistributeConfig, RunConfig, read_yaml
from dltoolkit.errors import ConfigError, DltkError, first_line

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
            replica_sum(self.engine, [1])

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
        raise DltkError(
            f"distribute.strategy tpu found no TPU (tpu={distribute.tpu!r}: {first_line(error)}); "
            "run on a Cloud TPU VM, or set distribute.tpu to the TPU's name or grpc:// address."
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


def replica_sum(strategy: Any, values: list[int]) -> np.ndarray:
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
