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

from dltoolkit.distribute.loop import Loop, fit_in_loop, local_copy
from dltoolkit.distribute.placement import (
    LOOP_STRATEGIES,
    SUPPORTED,
    Placement,
    activate,
    check_backend,
    current,
    prepare_environment,
    read_cluster,
)

__all__ = [
    "LOOP_STRATEGIES",
    "SUPPORTED",
    "Loop",
    "Placement",
    "activate",
    "check_backend",
    "current",
    "fit_in_loop",
    "local_copy",
    "prepare_environment",
    "read_cluster",
]
