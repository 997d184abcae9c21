"""Benchmark: customer segmentation (IDEC) against k-means on CDNOW customers.

Runs `dltk recipe customer-segmentation` per seed on its default data (CDNOW purchases as
`lifetimes` ships them), prints silhouette and Davies-Bouldin scores of the deep model and
of k-means with the same number of segments, on the rows fitted and on held-out rows, and
the segment profiles of the first seed. Writes bench/RESULTS.md.

    pip install "dltoolkit[datasets]"
    python bench/segmentation.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from results import machine, markdown_table, write_section
from tabular import rows_of, run_once

SECTION = "Customer segmentation vs k-means"
RECIPE = "customer-segmentation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--backend", default="tensorflow")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        runs = []
        for seed in arguments.seeds:
            runs.append(run_once(RECIPE, seed, arguments.backend, Path(folder)))
            print(f"seed {seed}: {runs[-1]['test']}", flush=True)
    scores = markdown_table(
        ["recipe", "data", "model", "test silhouette (min-max)", "test Davies-Bouldin (min-max)",
         "parameters", "train s"],
        rows_of(RECIPE, runs),
    )  # fmt: skip
    first = runs[0]
    fit = markdown_table(
        ["model", "fit silhouette", "fit Davies-Bouldin", "segment sizes"],
        [
            ["deep model", f"{first['fit']['silhouette']:.4f}",
             f"{first['fit']['davies_bouldin']:.4f}", str(first["segment_sizes"])],
            *([b["name"], f"{b['fit']['silhouette']:.4f}", f"{b['fit']['davies_bouldin']:.4f}",
               str(b["segment_sizes"])] for b in first["baselines"]),
        ],
    )  # fmt: skip
    profiles = markdown_table(
        ["segment", "share", "recency days (median)", "purchases (median)",
         "spend per purchase $ (median)"],
        [
            [str(p["segment"]), f"{p['share']:.1%}", f"{p['recency_days_median']:.0f}",
             f"{p['frequency_median']:.0f}", f"{p['monetary_median']:.2f}"]
            for p in first["profiles"]
        ],
    )  # fmt: skip
    seed = arguments.seeds[0]
    text = "\n\n".join(
        [scores, f"Seed {seed}, rows fitted:", fit, f"Seed {seed}, profiles (all rows):", profiles]
    )
    print(text)
    write_section(
        SECTION,
        f"Measured {machine()}, Keras backend {arguments.backend}, with `python bench/"
        f"segmentation.py --seeds {' '.join(map(str, arguments.seeds))}`. Scores are computed "
        "in the same encoded feature space (log-scaled frequency and spend, standardised) for "
        "both models; silhouette higher is better, Davies-Bouldin lower is better. Test: the "
        "held-out 20% of customers, assigned to the segments fitted on the rest.\n\n" + text,
    )


if __name__ == "__main__":
    main()
