"""Benchmark: resident memory of a `dltk tune` process over a 30-trial search.

KerasTuner users report memory growing with every trial. This runs a random search of the
cnn-image recipe (a small network, 2 epochs a trial) in one process per backend and reads
the process's resident set size after every trial; the figure to watch is the growth from
trial 5 (after warm-up) to trial 30. Writes bench/RESULTS.md.

    python bench/tuning_memory.py --backends tensorflow jax torch
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

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


def child(trials: int, folder: Path) -> None:
    """Run the search in this process and print the RSS after each trial as JSON."""
    import psutil

    from dltoolkit.config import load_config
    from dltoolkit.search_space import load_space

    space_file = folder / "space.yaml"
    space_file.write_text(SPACE)
    from dltoolkit import tuning

    process = psutil.Process()
    readings: list[float] = []

    def echo(line: str) -> None:
        if line.startswith("trial "):
            readings.append(process.memory_info().rss / 2**20)

    config = load_config(
        "cnn-image",
        [
            "train.epochs=2",
            "train.early_stopping.patience=null",
            "train.reduce_lr_on_plateau.patience=null",
            "model.convolutions_per_block=1",
        ],
    )
    tuning.search(config, load_space(space_file), folder / "searches", max_trials=trials, echo=echo)
    print(json.dumps(readings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.trials, Path(os.environ["DLTK_BENCH_FOLDER"]))
        return
    rows = []
    for backend in arguments.backends:
        with tempfile.TemporaryDirectory() as folder:
            environment = {
                **os.environ,
                "KERAS_BACKEND": backend,
                "DLTK_BENCH_FOLDER": folder,
                "TF_CPP_MIN_LOG_LEVEL": "3",
            }
            result = subprocess.run(
                [sys.executable, __file__, "--child", "--trials", str(arguments.trials)],
                env=environment,
                capture_output=True,
                text=True,
                check=True,
            )
        readings = json.loads(result.stdout.strip().splitlines()[-1])
        fifth, last = readings[4], readings[-1]
        growth = 100 * (last - fifth) / fifth
        rows.append([backend, len(readings), f"{readings[0]:.0f}", f"{fifth:.0f}",
                     f"{last:.0f}", f"{growth:+.1f}%"])  # fmt: skip
        print(f"{backend}: {[round(r) for r in readings]}", flush=True)
    headers = ["backend", "trials", "RSS MiB after trial 1", "after trial 5",
               f"after trial {arguments.trials}", "growth 5 -> last"]  # fmt: skip
    text = markdown_table(headers, rows)
    print(text)
    write_section(
        SECTION,
        f"Measured {machine()} with `python bench/tuning_memory.py --backends "
        f"{' '.join(arguments.backends)} --trials {arguments.trials}`: one `dltk tune` "
        "process per backend, a random search of cnn-image (1-2 convolution blocks of 8-32 "
        "filters, 2 epochs a trial on the 8x8 digits), resident set size read after every "
        "trial. KerasTuner clears the Keras session before each trial's model is built.\n\n" + text,
    )


if __name__ == "__main__":
    main()
