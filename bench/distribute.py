"""Benchmark: training throughput of the cnn-image recipe under each strategy this machine
can run, and the toolkit's own overhead against a hand-written `model.fit` script.

Every measurement is a fresh process running the recipe (scikit-learn's 8x8 digits, 1,257
training images, batch 32, early stopping off) for --epochs epochs. Throughput is training
images per second over the steady-state epochs (the median epoch time from the second
epoch on; the first pays for tracing and compilation).

- strategies (TensorFlow): off, mirrored over 2 logical CPU devices, multi_worker over 2
  local processes (`dltk launch --workers 2`), parameter_server (a chief, 2 workers and
  1 parameter server, asynchronous), one_device; (JAX): off and data_parallel
  over 2 XLA host devices.
- overhead: `dltk recipe cnn-image` vs a script that builds the same network (the run's
  model.keras with fresh weights), compiles it the same way and calls `model.fit` on the
  same digits with the same batch size and epochs. The ratio is toolkit / script images
  per second; rounds alternate the two, and the median ratio is reported.

    python bench/distribute.py [--epochs 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from results import machine, markdown_table, write_section

SECTION = "Distribution strategies and toolkit overhead (cnn-image)"
SETTINGS = ["train.early_stopping.patience=null", "train.reduce_lr_on_plateau.patience=null",
            "train.verbose=0", "export.enabled=false"]  # fmt: skip

HAND_WRITTEN = """
import json, sys, time
import keras, numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

model_path, epochs, batch_size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), 0
keras.utils.set_random_seed(seed)
digits = load_digits()
x = digits.images.astype("float32")[..., None]
y = digits.target.astype("int64")
x_train, x_rest, y_train, y_rest = train_test_split(
    x, y, test_size=0.3, stratify=y, random_state=seed)
x_val, _, y_val, _ = train_test_split(
    x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed)
trained = keras.models.load_model(model_path)
model = keras.models.clone_model(trained)
model.compile(optimizer=keras.optimizers.Adam(0.002), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])

class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        seconds.append(time.perf_counter() - self.start)

seconds = []
model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs,
          batch_size=batch_size, callbacks=[Timer()], verbose=0)
print(json.dumps({"examples": len(x_train), "seconds_per_epoch": seconds}))
"""


def steady_rate(examples: int, seconds_per_epoch: list[float]) -> float:
    """Training examples per second over the epochs after the first."""
    return examples / statistics.median(seconds_per_epoch[1:])


def run(command: list[str], folder: Path, backend: str, extra_env: dict | None = None) -> str:
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
                   **(extra_env or {})}  # fmt: skip
    environment.pop("TF_CONFIG", None)
    result = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(result.stdout[-2000:] + result.stderr[-2000:])
    return result.stdout


def recipe(
    backend: str, epochs: int, strategy: list[str], launch: int = 0, servers: int = 0
) -> dict:
    """Run cnn-image in a fresh folder; return its metrics.json and the model's path."""
    folder = Path(tempfile.mkdtemp())
    base = [sys.executable, "-m", "dltoolkit"]
    if launch:
        base += ["launch", "--workers", str(launch), "--parameter-servers", str(servers)]
    settings = [f"--set={item}" for item in [f"train.epochs={epochs}", *SETTINGS]]
    command = [*base, "recipe", "cnn-image", "--backend", backend, *settings, *strategy]
    run(command, folder, backend)
    (run_dir,) = (folder / "runs" / "cnn-image").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["model_path"] = str(run_dir / "model.keras")
    return metrics


def recipe_rate(metrics: dict) -> float:
    return steady_rate(metrics["data"]["sizes"]["train"], metrics["cost"]["seconds_per_epoch"])


def hand_written(backend: str, model_path: str, epochs: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "fit.py"
        script.write_text(HAND_WRITTEN)
        output = run([sys.executable, str(script), model_path, str(epochs), "32"], Path(folder),
                     backend)  # fmt: skip
    result = json.loads(output.strip().splitlines()[-1])
    return steady_rate(result["examples"], result["seconds_per_epoch"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    strategies = [
        ("tensorflow", "off", [], 0),
        ("tensorflow", "one_device", ["--strategy", "one_device"], 0),
        ("tensorflow", "mirrored (2 logical CPUs)",
         ["--strategy", "mirrored", "--set", "distribute.cpu_devices=2"], 0),
        ("tensorflow", "multi_worker (2 local processes)", [], 2),
        ("tensorflow", "parameter_server (chief, 2 workers, 1 ps)", ["ps"], 2),
        ("jax", "off", [], 0),
        ("jax", "data_parallel (2 XLA host devices)",
         ["--strategy", "data_parallel", "--set", "distribute.cpu_devices=2"], 0),
    ]  # fmt: skip
    rows = []
    reference: dict[str, float] = {}
    for backend, name, flags, workers in strategies:
        servers = 1 if flags == ["ps"] else 0
        flags = [] if servers else flags
        rates = [
            recipe_rate(recipe(backend, args.epochs, flags, workers, servers)) for _ in range(2)
        ]
        rate = statistics.median(rates)
        reference.setdefault(backend, rate)
        rows.append([backend, name, f"{rate:,.0f}", f"{rate / reference[backend]:.2f}"])
        print(rows[-1], flush=True)
    strategy_table = markdown_table(["backend", "strategy", "images/s (steady)", "vs off"], rows)

    overhead_rows = []
    for backend in ("tensorflow", "jax", "torch"):
        ratios, toolkit_rates, script_rates = [], [], []
        for _ in range(args.rounds):
            metrics = recipe(backend, args.epochs, [])
            toolkit = recipe_rate(metrics)
            script = hand_written(backend, metrics["model_path"], args.epochs)
            toolkit_rates.append(toolkit)
            script_rates.append(script)
            ratios.append(toolkit / script)
        overhead_rows.append([
            backend, f"{statistics.median(toolkit_rates):,.0f}",
            f"{statistics.median(script_rates):,.0f}", f"{statistics.median(ratios):.3f}",
            " ".join(f"{r:.3f}" for r in ratios),
        ])  # fmt: skip
        print(overhead_rows[-1], flush=True)
    overhead_table = markdown_table(
        ["backend", "dltk recipe images/s", "model.fit script images/s", "ratio (median)",
         "ratio per round"], overhead_rows,
    )  # fmt: skip
    print(strategy_table)
    print(overhead_table)
    write_section(
        SECTION,
        f"{machine()}; cnn-image, {args.epochs} epochs, batch 32, each row a fresh process "
        "(strategies: median of 2 runs; overhead: "
        f"{args.rounds} alternating rounds). Steady-state images/s = training images / median "
        "epoch time from epoch 2 on.\n\n"
        f"{strategy_table}\n\n"
        "Toolkit overhead: `dltk recipe cnn-image` against a hand-written `model.fit` of the "
        "same network on the same data (target ratio >= 0.97).\n\n"
        f"{overhead_table}\n\n"
        "This machine has 2 CPU cores and no accelerator: logical CPU devices and local "
        "workers share the same cores, so the strategy rows measure what distribution costs "
        "here (synchronisation, per-replica work), not a speed-up. GPU figures need a GPU "
        "machine.",
    )


if __name__ == "__main__":
    main()
