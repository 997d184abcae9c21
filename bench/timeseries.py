"""Benchmark: the series recipes against their naive and classical baselines on real prices.

Runs `dltk recipe NAME` in a child process per (recipe, data, seed) on the S&P 500 and
NASDAQ daily prices that ship inside the arch package (1999-2018; the newest 15% of days
is the test span), reads metrics.json and prints each model's test scores, the network's
Diebold-Mariano p-value against the reference forecast (random walk, GARCH(1,1),
buy-and-hold), parameters and training seconds. Writes bench/RESULTS.md.

    pip install "dltoolkit[datasets]"
    python bench/timeseries.py --seeds 0 1 2
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

from results import machine, markdown_table, spread, write_section

SECTION = "Series recipes vs naive and classical forecasts"
RECIPES = ["stock-forecast", "volatility-forecast", "trading-signal"]
SCORES = {
    "stock-forecast": ("rmse_return", "directional_accuracy"),
    "volatility-forecast": ("qlike", "mse"),
    "trading-signal": ("sharpe", "cumulative_return"),
}


def run_once(recipe: str, data: str, seed: int, arguments: argparse.Namespace, root: Path):
    output = root / f"{recipe}-{data.replace(':', '-')}-{seed}"
    command = [
        sys.executable, "-m", "dltoolkit", "recipe", recipe, "--backend", arguments.backend,
        "--seed", str(seed), "--output", str(output), "--data", data,
        "--set", "export.enabled=false", "--set", "train.verbose=0",
    ]  # fmt: skip
    if arguments.folds:
        command += ["--set", f"data.folds={arguments.folds}"]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ})
    (run_dir,) = (output / recipe).iterdir()
    return json.loads((run_dir / "metrics.json").read_text())


def rows_of(recipe: str, data: str, runs: list[dict], walk_forward: bool) -> list[list[str]]:
    first, second = SCORES[recipe]
    models: dict[str, list[tuple[dict, object, float]]] = {}
    for run in runs:
        scored = [("deep model", run["test"], run["parameters"]["total"], run["train_seconds"])]
        scored += [
            (b["name"], b["test"], b["parameters"], b["train_seconds"]) for b in run["baselines"]
        ]
        if walk_forward:
            scored += [(f"{name}, walk-forward mean", scores, None, float("nan"))
                       for name, scores in run["walk_forward"]["mean"].items()]  # fmt: skip
        for name, scores, parameters, seconds in scored:
            models.setdefault(name, []).append((scores, parameters, seconds))
    p_values = spread([run["comparison"]["p_value"] for run in runs])
    beats = sum(run["comparison"]["beats"] for run in runs)
    table = []
    for name, results in models.items():
        parameters = results[0][1]
        seconds = [s for _, _, s in results]
        table.append([
            recipe, data, name,
            spread([scores.get(first) for scores, _, _ in results]),
            spread([scores.get(second) for scores, _, _ in results]),
            f"{p_values}; beats in {beats}/{len(runs)}" if name == "deep model" else "",
            "-" if parameters is None else f"{parameters:,}",
            "-" if seconds[0] != seconds[0] else f"{statistics.mean(seconds):.2f}",
        ])  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=RECIPES)
    parser.add_argument("--data", nargs="+", default=["builtin:sp500", "builtin:nasdaq"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--folds", type=int, default=None, help="walk-forward blocks too")
    parser.add_argument("--backend", default="tensorflow")
    arguments = parser.parse_args()
    table = []
    with tempfile.TemporaryDirectory() as folder:
        for recipe in arguments.recipes:
            for data in arguments.data:
                runs = []
                for seed in arguments.seeds:
                    runs.append(run_once(recipe, data, seed, arguments, Path(folder)))
                    print(f"{recipe} {data} seed {seed}: {runs[-1]['comparison']['verdict']}",
                          flush=True)  # fmt: skip
                table.extend(rows_of(recipe, data, runs, bool(arguments.folds)))
    text = markdown_table(
        ["recipe", "data", "model", "score 1 mean (min-max)", "score 2 mean (min-max)",
         "network vs reference: DM p-value", "parameters", "train s"],
        table,
    )  # fmt: skip
    print(text)
    folds = f" --folds {arguments.folds}" if arguments.folds else ""
    write_section(
        SECTION + (" (walk-forward)" if arguments.folds else ""),
        f"Measured {machine()}, Keras backend {arguments.backend}, with `python "
        f"bench/timeseries.py --recipes {' '.join(arguments.recipes)} --data "
        f"{' '.join(arguments.data)} --seeds {' '.join(map(str, arguments.seeds))}{folds}`. "
        "Every model is scored on the same test span of each run: the newest 15% of days "
        "(2016-01 to 2018-12). Scores: stock-forecast RMSE of next-day log returns and "
        "directional accuracy (n/a for a forecast without direction); volatility-forecast "
        "QLIKE and MSE of the next 5 days' realised variance in squared percent (lower is "
        "better); trading-signal annualised Sharpe ratio and cumulative return of the "
        "long/flat strategy after 5 bps costs. The DM column is the Diebold-Mariano p-value "
        "of the network's daily losses against the reference (random walk, GARCH(1,1), "
        "buy-and-hold; mean (min-max) over seeds) and how many seeds' network scored better "
        "on the headline. Baselines without randomness repeat across seeds.\n\n" + text,
    )


if __name__ == "__main__":
    main()
