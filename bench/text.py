"""Benchmark: the customer-service recipes against their classical baselines on the same split.

complaint-routing (CFPB complaint narratives, 8 products, the set's own 10,000 / 3,000
split), message-screening (SMS spam, stratified split) and product-offer (CoIL 2000, the
challenge's own 5,822 / 4,000 split), each run with `dltk recipe NAME` in a child process
per seed on real data fetched once into the user cache; metrics.json gives every model's
test scores, parameters and training seconds. Writes bench/RESULTS.md.

    pip install "dltoolkit[datasets]"
    python bench/text.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from results import machine, markdown_table, spread, write_section
from tabular import seeded_runs

SECTION = "Text and offer recipes vs classical baselines"
RECIPES = ["complaint-routing", "message-screening", "product-offer"]
# The scores each recipe is judged by: a class task by accuracy and macro-F1, a yes/no one by
# PR-AUC and the policy owners (or spam) among the 20% of test rows scored highest.
SCORES = {
    "text_classification": ("accuracy", "macro_f1"),
    "text_binary": ("pr_auc", "captured_top_20pct"),
    "binary": ("roc_auc", "positives_in_top_20pct"),
}


def rows_of(recipe: str, runs: list[dict]) -> list[list[str]]:
    """One row per model: the two scores over seeds, parameters, seconds, cost per example."""
    first, second = SCORES[runs[0]["task"]]
    network = [
        (run["test"], run["parameters"]["total"], run["train_seconds"],
         run["cost"]["flops_per_example"])
        for run in runs
    ]  # fmt: skip
    models: dict[str, list] = {"deep model": network}
    for run in runs:
        for baseline in run["baselines"]:
            models.setdefault(baseline["name"], []).append(
                (baseline["test"], baseline["parameters"], baseline["train_seconds"], None)
            )
    table = []
    for name, results in models.items():
        parameters, flops = results[0][1], results[0][3]
        table.append([
            recipe, name,
            spread([scores[first] for scores, *_ in results]),
            spread([scores[second] for scores, *_ in results]),
            "-" if parameters is None else f"{parameters:,}",
            "-" if flops is None else f"{flops:,}",
            f"{statistics.mean(s for _, _, s, _ in results):.1f}",
        ])  # fmt: skip
    return table


def facts_of(recipe: str, runs: list[dict]) -> str:
    """A line on the data: token counts and the share of texts cut, or the test rows."""
    data = runs[0]["data"]
    text = data.get("text")
    sizes = data["sizes"]
    line = f"{recipe}: {sizes['train']:,} / {sizes['validation']:,} / {sizes['test']:,} rows"
    if text:
        line += (
            f"; vocabulary {text['vocabulary_size']:,}, median {text['median_tokens']:.0f} "
            f"tokens (99th percentile {text['p99_tokens']:.0f}), {text['truncated_share']:.1%} "
            f"of texts cut at {text['max_tokens']}, {text['test_unknown_share'] or 0:.2%} of "
            "test tokens outside the vocabulary"
        )
    epochs = [run["epochs_run"] for run in runs]
    return f"{line}; epochs run {min(epochs)}-{max(epochs)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=RECIPES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--backend", default="tensorflow")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="settings for every run (their own RESULTS.md section)")  # fmt: skip
    arguments = parser.parse_args()
    table, facts = [], []
    with tempfile.TemporaryDirectory() as folder:

        def progress(run: dict) -> dict:
            first, second = SCORES[run["task"]]
            return {
                name: (scores[first], scores[second])
                for name, scores in [("network", run["test"])]
                + [(b["name"], b["test"]) for b in run["baselines"]]
            }

        for recipe, runs in seeded_runs(arguments, Path(folder), progress):
            table.extend(rows_of(recipe, runs))
            facts.append(facts_of(recipe, runs))
    text = markdown_table(
        ["recipe", "model", "score 1 mean (min-max)", "score 2 mean (min-max)", "parameters",
         "FLOPs/example", "train s"],
        table,
    )  # fmt: skip
    print(text)
    print("\n".join(facts))
    changed = f" --set {' '.join(arguments.set)}" if arguments.set else ""
    write_section(
        f"{SECTION}: {', '.join(arguments.set)}" if arguments.set else SECTION,
        f"Measured {machine()}, Keras backend {arguments.backend}, with `python bench/text.py "
        f"--recipes {' '.join(arguments.recipes)} --seeds {' '.join(map(str, arguments.seeds))}"
        f"{changed}`"
        ". Every model is scored on the same test split of each seed (complaint-routing and "
        "product-offer: their datasets' own test sets, so only the validation draw and the "
        "training change with the seed). Scores: complaint-routing accuracy and macro-F1; "
        "message-screening PR-AUC (average precision) and the share of spam among the 20% of "
        "test messages scored highest; product-offer ROC-AUC and the policy owners among the "
        "800 (20%) of the 4,000 test customers scored highest (238 owners in all; the CoIL "
        "2000 challenge's best entry found 121, a random pick about 48). Parameters of tree "
        "ensembles and of the SVM's calibrated folds are not counted (-).\n\n"
        + text
        + "\n\n"
        + "\n".join(f"- {line}" for line in facts),
    )


if __name__ == "__main__":
    main()
