"""Benchmark: memory of a `dltk tune` search over 30 trials, per backend.

KerasTuner users report memory growing with every trial. This runs a random search of the
cnn-image recipe (a small network, 2 epochs a trial) with `dltk tune` and reads, after
every trial, the peak resident memory of the process that ran it (results.csv's
peak_memory_mib). The figure to watch is the growth from trial 5 (after warm-up) to trial
30. TensorFlow is measured twice: every trial in one process (--trials-per-process 0) and
with the default of 10 trials per process. Writes bench/RESULTS.md.

    python bench/tuning_memory.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from results import machine, markdown_table, write_section

SECTION = "Search memory over 30 trials"
SPACE = """
tuner: random
space:
  model.filters: {choice: [[8], [8, 16], [16, 32]]}
  model.dense_units: {choice: [[16], [32], [64]]}
  model.block_dropout: {float: [0.0, 0.3], step: 0.1}
  train.learning_rate: {float: [0.0003, 0.003], sampling: log}
  train.batch_size: {choice: [32, 64]}
"""
SETTINGS = [
    "train.epochs=2",
    "train.early_stopping.patience=null",
    "train.reduce_lr_on_plateau.patience=null",
    "model.convolutions_per_block=1",
]


def measure(backend: str, trials: int, per_process: str | None) -> list[float]:
    """Peak resident MiB of the trial's process after each trial, in trial order."""
    with tempfile.TemporaryDirectory() as folder:
        space = Path(folder) / "space.yaml"
        space.write_text(SPACE)
        command = [
            sys.executable, "-m", "dltoolkit", "tune", "cnn-image", "--space", str(space),
            "--max-trials", str(trials), "--backend", backend, "--output", folder,
            *[f"--set={item}" for item in SETTINGS],
        ]  # fmt: skip
        if per_process is not None:
            command += ["--trials-per-process", per_process]
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        subprocess.run(command, env=environment, check=True, capture_output=True)
        table = pd.read_csv(Path(folder) / "cnn-image" / "results.csv")
    return table.sort_values("trial")["peak_memory_mib"].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--trials", type=int, default=30)
    arguments = parser.parse_args()
    runs = []
    for backend in arguments.backends:
        if backend == "tensorflow":
            runs.append((backend, "0"))
        runs.append((backend, None))
    rows = []
    for backend, per_process in runs:
        readings = measure(backend, arguments.trials, per_process)
        fifth, last = readings[4], readings[-1]
        mode = "all in one" if per_process == "0" else "default"
        if per_process is None:
            mode = "10 per process" if backend == "tensorflow" else "all in one (default)"
        rows.append([backend, mode, len(readings), f"{readings[0]:.0f}", f"{fifth:.0f}",
                     f"{last:.0f}", f"{100 * (last - fifth) / fifth:+.1f}%"])  # fmt: skip
        print(f"{backend} {mode}: {[round(r) for r in readings]}", flush=True)
    headers = ["backend", "trials per process", "trials", "peak MiB after trial 1",
               "after trial 5", f"after trial {arguments.trials}", "growth 5 -> last"]  # fmt: skip
    text = markdown_table(headers, rows)
    print(text)
    write_section(
        SECTION,
        f"Measured {machine()} with `python bench/tuning_memory.py --backends "
        f"{' '.join(arguments.backends)} --trials {arguments.trials}`: `dltk tune` with a "
        "random search of cnn-image (1-2 convolution blocks of 8-32 filters, 2 epochs a "
        "trial on the 8x8 digits); after every trial, the peak resident memory of the "
        "process that ran it. KerasTuner clears the Keras session before each trial; on "
        "TensorFlow memory still grows by a few MiB per trial (a plain loop of build, fit "
        "and keras.backend.clear_session grows the same way), so `dltk tune` runs 10 trials "
        "per process there by default (--trials-per-process).\n\n" + text,
    )


if __name__ == "__main__":
    main()
