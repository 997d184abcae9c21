"""Benchmark: default `dltk recipe cnn-image` on builtin:digits, per backend and seed.

Runs the real command in a child process per (backend, seed), reads each run's
metrics.json and prints a table of test accuracy, training time and wall time, beside the
logistic-regression baseline. Writes the table into bench/RESULTS.md.

    python bench/cnn_image.py --backends tensorflow jax torch --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import machine, markdown_table, write_section

SECTION = "cnn-image on builtin:digits"


def run_once(backend: str, seed: int, root: Path) -> dict:
    output = root / f"{backend}-{seed}"
    command = [
        sys.executable, "-m", "dltoolkit", "recipe", "cnn-image", "--backend", backend,
        "--seed", str(seed), "--output", str(output),
        "--set", "export.enabled=false", "--set", "train.verbose=0",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ})
    wall = time.perf_counter() - start
    (run_dir,) = (output / "cnn-image").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "backend": backend,
        "seed": seed,
        "accuracy": metrics["test"]["accuracy"],
        "baseline": metrics["baselines"][0]["test"]["accuracy"],
        "epochs": metrics["epochs_run"],
        "train_s": metrics["train_seconds"],
        "wall_s": wall,
        "params": metrics["parameters"]["total"],
    }


def table(rows: list[dict]) -> str:
    return markdown_table(
        ["backend", "seed", "test accuracy", "logistic baseline", "epochs", "train s", "wall s"],
        [
            [
                row["backend"], row["seed"], f"{row['accuracy']:.4f}", f"{row['baseline']:.4f}",
                row["epochs"], f"{row['train_s']:.1f}", f"{row['wall_s']:.1f}",
            ]
            for row in rows
        ],
    )  # fmt: skip


def write_results(rows: list[dict]) -> None:
    write_section(
        SECTION,
        f"Measured {machine()} with `python bench/cnn_image.py`; wall s is the whole "
        "`dltk recipe cnn-image` command (imports, data, training, evaluation, baseline), "
        f"train s is `model.fit` alone. {rows[0]['params']:,} parameters.\n\n{table(rows)}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    arguments = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for backend in arguments.backends:
            for seed in arguments.seeds:
                rows.append(run_once(backend, seed, Path(root)))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    write_results(rows)


if __name__ == "__main__":
    main()
