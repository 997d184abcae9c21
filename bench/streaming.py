"""Benchmark: streamed image folders: memory as the folder grows, and training speed
against the same images held in memory.

The images are generated (random textures whose brightness depends on the class): these
are measurements of memory and throughput, never of accuracy.

``memory``: one process per folder size runs 1 epoch of ``dltk recipe cnn-image`` (a small
network, ``data.cache=none``: nothing but the stream) on 96x96 RGB folders of 5,000,
20,000 and 80,000 images, and reports its peak resident memory (ru_maxrss); 80,000 images
decoded as float32 would take 8.8 GB.

``speed``: the same 5,000 images (32x32 RGB) trained for a few epochs from the folder
(streamed, ``data.cache`` auto = memory, and none) and from an .npz of the same decoded
pixels (the in-memory path), in one run of this script; training examples per second
from each run's metrics.json. ``builtin:digits`` is an array in memory on both paths
(the in-memory fast path behind the same interface), so it has nothing to compare.

    python bench/streaming.py memory --sizes 5000 20000 80000
    python bench/streaming.py speed --images 5000 --epochs 5
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from results import machine, markdown_table, recipe_in_process, write_section

SMALL_NETWORK = [
    "--set", "model.filters=[8]", "--set", "model.convolutions_per_block=1",
    "--set", "model.dense_units=[16]", "--set", "train.batch_size=64",
    "--set", "report.enabled=false", "--set", "export.enabled=false",
    "--set", "train.verbose=0", "--set", "train.backup=false",
]  # fmt: skip


def write_images(root: Path, count: int, size: int, classes: int = 3, start: int = 0) -> None:
    """``count`` PNGs in ``classes`` class folders, numbered from ``start``."""
    from PIL import Image

    rng = np.random.default_rng(start)
    for index in range(start, start + count):
        label = index % classes
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 120, (size // 4, size // 4, 3), dtype=np.uint8)
        pixels = np.kron(coarse, np.ones((4, 4, 1), np.uint8)) + 60 * label
        Image.fromarray(pixels).save(folder / f"{index:06d}.png", compress_level=1)


def linked_subset(source: Path, target: Path, count: int) -> None:
    """The first ``count`` images of ``source`` (in number order) hard-linked into ``target``."""
    files = sorted(source.rglob("*.png"), key=lambda path: path.name)[:count]
    for file in files:
        destination = target / file.parent.name / file.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.link(file, destination)


def run_recipe(folder: Path, source: str, *settings: str) -> dict:
    """One ``dltk recipe cnn-image`` (the small network) in its own process."""
    return recipe_in_process(folder, "cnn-image", source, *SMALL_NETWORK, *settings)


MEMORY_HEADERS = [
    "images", "decoded float32 GiB", "peak RSS MiB", "vs smallest", "baseline rows", "run s"
]  # fmt: skip


def memory(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        folder = Path(folder)
        largest = max(args.sizes)
        start = time.perf_counter()
        write_images(folder / "all", largest, 96)
        print(f"wrote {largest} images in {time.perf_counter() - start:.0f} s", flush=True)
        peaks = {}
        for size in sorted(args.sizes):
            images = folder / "all"
            if size != largest:
                images = folder / f"first-{size}"
                linked_subset(folder / "all", images, size)
            metrics = run_recipe(
                folder, f"images:{images}", "--set", "train.epochs=1", "--set", "data.cache=none"
            )
            peaks[size] = metrics["cost"]["peak_memory_mib"]
            decoded = size * 96 * 96 * 3 * 4 / 2**30
            rows.append(
                [f"{size:,}", f"{decoded:.2f}", f"{peaks[size]:,.0f}",
                 f"{peaks[size] / peaks[min(args.sizes)]:.2f}",
                 metrics["baselines"][0]["train_rows"], f"{metrics['wall_seconds']:.0f}"]
            )  # fmt: skip
            print(rows[-1], flush=True)
    body = (
        f"{machine()}; `python bench/streaming.py memory --sizes "
        f"{' '.join(map(str, args.sizes))}`. 1 epoch of cnn-image (filters [8], one "
        "convolution per block, dense [16], batch 64, data.cache=none) on generated 96x96 "
        "RGB folders (3 classes); peak RSS of the whole run (split, normalisation sample, "
        "training, evaluation, logistic-regression baseline on its bounded sample).\n\n"
        + markdown_table(MEMORY_HEADERS, rows)
    )
    print(body)
    if not args.no_write:
        write_section("Streaming: memory as an image folder grows", body)


def speed(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        folder = Path(folder)
        write_images(folder / "images", args.images, 32)
        from dltoolkit.config import DataConfig
        from dltoolkit.data.sources import load_labelled

        decoded = load_labelled(DataConfig(source=f"images:{folder / 'images'}"))
        names = np.asarray(decoded.class_names)[decoded.y]
        np.savez(folder / "images.npz", x=decoded.x, y=names)
        epochs = ["--set", f"train.epochs={args.epochs}"]
        epochs += ["--set", "train.early_stopping.patience=null"]
        sources = {
            "in memory (npz of the decoded pixels)": (f"npz:{folder / 'images.npz'}", []),
            "streamed, data.cache=auto (memory)": (f"images:{folder / 'images'}", []),
            "streamed, data.cache=none": (
                f"images:{folder / 'images'}", ["--set", "data.cache=none"]),
        }  # fmt: skip
        results = {}
        for _ in range(args.repeats):
            for name, (source, extra) in sources.items():
                metrics = run_recipe(folder, source, *epochs, *extra)
                results.setdefault(name, []).append(metrics["samples_per_second"])
                print(name, metrics["samples_per_second"], flush=True)
    reference = np.mean(results["in memory (npz of the decoded pixels)"])
    rows = [
        [name, " / ".join(f"{v:,.0f}" for v in values), f"{np.mean(values) / reference:.2f}x"]
        for name, values in results.items()
    ]
    body = (
        f"{machine()}; `python bench/streaming.py speed --images {args.images} --epochs "
        f"{args.epochs} --repeats {args.repeats}`. cnn-image (filters [8], dense [16], batch "
        f"64) for {args.epochs} epochs on {args.images:,} generated 32x32 RGB images; the "
        "same split on every path; training examples per second (metrics.json "
        "samples_per_second: the fit's examples x epochs / its seconds, validation "
        "included), one value per repeat, runs interleaved.\n\n"
        + markdown_table(["input path", "examples/s", "vs in memory"], rows)
    )
    print(body)
    if not args.no_write:
        write_section("Streaming: training speed against the in-memory path", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tmp", default=None, help="folder for the generated images")
    parser.add_argument("--no-write", action="store_true", help="print only")
    commands = parser.add_subparsers(dest="command", required=True)
    grow = commands.add_parser("memory")
    grow.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 80000])
    fast = commands.add_parser("speed")
    fast.add_argument("--images", type=int, default=5000)
    fast.add_argument("--epochs", type=int, default=5)
    fast.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    {"memory": memory, "speed": speed}[args.command](args)


if __name__ == "__main__":
    main()
