"""Benchmark: the SelfOrganizingMap layer against MiniSom 2.3.6 on sklearn digits tiled 10x.

17,970 x 64 examples, a 20x20 map. MiniSom runs its ``train_random`` for 100,000
iterations with sigma 3 and learning rate 0.5 (its defaults otherwise: random
initialisation, asymptotic decay). The layer trains through ``model.fit`` in a child
process per backend, timed from building the model to the end of ``fit`` (tracing and
compilation included; imports and the backend's first start-up excluded, as they are for
MiniSom). Both are scored by the quantization error (QE, mean distance from an example to
its best-matching unit) and the topographic error (TE) on all 17,970 examples.

    pip install "dltoolkit[bench]"
    python bench/som_minisom.py --backends tensorflow jax torch
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from results import machine, markdown_table, write_section

SECTION = "SelfOrganizingMap vs MiniSom on digits x10"
MAP = (20, 20)
# One pass over the data in batches of 1,024 (18 steps), sigma 3 -> 0.5, rate 1 -> 0.5.
LAYER = {"sigma": 3.0, "sigma_end": 0.5, "learning_rate": 1.0, "learning_rate_end": 0.5}
EPOCHS, BATCH = 1, 1024


def digits_tiled() -> np.ndarray:
    from sklearn.datasets import load_digits

    return np.tile(load_digits().data, (10, 1)).astype(np.float32)


def minisom_run(x: np.ndarray, init: str) -> dict:
    from minisom import MiniSom

    som = MiniSom(*MAP, x.shape[1], sigma=3, learning_rate=0.5, random_seed=0)
    start = time.perf_counter()
    if init == "pca":
        som.pca_weights_init(x)
    som.train_random(x, 100_000)
    seconds = time.perf_counter() - start
    return {
        "method": f"MiniSom 2.3.6 train_random 100,000 iterations, {init} init",
        "seconds": seconds,
        "qe": float(som.quantization_error(x)),
        "te": float(som.topographic_error(x)),
    }


def layer_run(init: str) -> dict:
    """In a child process whose KERAS_BACKEND is set: train the layer twice, time, score.

    The first (cold) model pays the backend's one-off costs of a process's first training
    (JAX's XLA start-up is about a second); the second (warm) is a new model built and
    traced from scratch in the same process.
    """
    import warnings

    import keras

    from dltoolkit.layers import SOMSchedule
    from dltoolkit.models import MODELS
    from dltoolkit.models.som import quantization_error, topographic_error

    warnings.filterwarnings("ignore", message="The model does not have any trainable weights")
    x = digits_tiled()
    keras.ops.convert_to_numpy(keras.ops.matmul(keras.ops.ones((2, 2)), keras.ops.ones((2, 2))))
    seconds = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        start = time.perf_counter()
        model = MODELS.get("som")((x.shape[1],), map_shape=list(MAP), **LAYER)
        model.compile()
        model.get_layer("som").initialize_from(x, init)
        model.fit(x, epochs=EPOCHS, batch_size=BATCH, callbacks=[SOMSchedule()], verbose=0)
        seconds.append(time.perf_counter() - start)
    return {
        "method": f"SelfOrganizingMap, {keras.backend.backend()}, {init} init",
        "seconds": seconds[0],
        "warm_seconds": seconds[1],
        "qe": quantization_error(model, x),
        "te": topographic_error(model, x),
    }


def in_child(backend: str, init: str) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", init],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": backend},
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(layer_run(arguments.child)))
        return

    x = digits_tiled()
    reference = minisom_run(x, "random")
    rows = [reference]
    print(f"{reference['method']}: {reference['seconds']:.2f} s, QE {reference['qe']:.3f}")
    for init in ("pca", "sample"):
        for backend in arguments.backends:
            rows.append(in_child(backend, init))
            print(f"{rows[-1]['method']}: {rows[-1]['seconds']:.2f} s, QE {rows[-1]['qe']:.3f}")
    rows.append(minisom_run(x, "pca"))
    table = markdown_table(
        [
            "method",
            "train s",
            "speed-up",
            "warm train s",
            "warm speed-up",
            "QE",
            "reaches MiniSom's QE",
            "TE",
        ],
        [
            [
                row["method"],
                f"{row['seconds']:.2f}",
                f"{reference['seconds'] / row['seconds']:.1f}x",
                f"{row['warm_seconds']:.2f}" if "warm_seconds" in row else "",
                f"{reference['seconds'] / row['warm_seconds']:.1f}x"
                if "warm_seconds" in row
                else "",
                f"{row['qe']:.3f}",
                "yes" if row["qe"] <= reference["qe"] else "no",
                f"{row['te']:.3f}",
            ]
            for row in rows
        ],
    )
    print(table)
    write_section(
        SECTION,
        f"Measured {machine()} with `python bench/som_minisom.py`, one run. 17,970 x 64 "
        f"examples, a 20x20 map. The layer: sigma 3 -> 0.5 and learning rate 1 -> 0.5 "
        f"(exponential decay over the run), {EPOCHS} epoch in batches of {BATCH}; train s "
        "counts building, initialising, compiling and fitting the model in a fresh process "
        "(the first training there), warm train s a second model built and fitted from "
        "scratch in the same process. MiniSom: "
        "`train_random(x, 100000)`, sigma 3, learning rate 0.5; train s counts its "
        "initialisation and training. QE and TE on all examples; speed-up is MiniSom's "
        f"(random init) time over the row's.\n\n{table}",
    )


if __name__ == "__main__":
    main()
