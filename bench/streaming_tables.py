"""Benchmark: a large CSV streamed into fraud-detection: peak memory against the real
284,807-row file, and rows read per second.

The large file replicates the ULB card-fraud CSV (``builtin:creditcard-fraud``'s file)
``--copies`` times, each copy's ``Time`` shifted past the previous one so the time split
still orders it: a memory and throughput test, never a quality claim. Each size runs 1
epoch of ``dltk recipe fraud-detection`` (time split, ``data.cache`` auto: the real file
is read whole in memory, the large one streams) in its own process; peak RSS from
metrics.json, rows read per second from the encoded files' meta.json.

    python bench/streaming_tables.py --copies 70     # 19.9 million rows, ~10 GB of CSV
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from results import machine, markdown_table, recipe_in_process, write_section

SETTINGS = [
    "--set", "data.label=Class", "--set", "data.time_column=Time", "--set", "train.epochs=1",
    "--set", "train.batch_size=2048", "--set", "report.enabled=false",
    "--set", "export.enabled=false", "--set", "train.verbose=0", "--set", "train.backup=false",
]  # fmt: skip


def replicate(source: Path, target: Path, copies: int) -> int:
    """``copies`` copies of ``source`` in one CSV, each copy's Time (its first column,
    whole seconds) after the last's: the other fields are copied as the file spells them,
    so writing 10 GB takes minutes, not the half hour of formatting every number again."""
    header, *lines = source.read_bytes().splitlines()
    split = [line.split(b",", 1) for line in lines]
    times = np.array([int(float(time)) for time, _ in split], np.int64)
    rests = [rest for _, rest in split]
    span = int(times.max()) + 1
    with open(target, "wb") as out:
        out.write(header + b"\n")
        for copy in range(copies):
            shifted = (times + copy * span).astype(str)
            out.write(
                b"".join(b"%s,%s\n" % (t.encode(), r) for t, r in zip(shifted, rests, strict=True))
            )
    return len(lines) * copies


def run(folder: Path, source: str, cache: Path) -> dict:
    """One fraud-detection run; its metrics, wall seconds and the encoded files' meta."""
    metrics = recipe_in_process(
        folder, "fraud-detection", source, *SETTINGS, "--set", f"data.cache_dir={cache}"
    )
    metas = list(cache.glob("table-*/meta.json"))
    read = json.loads(metas[-1].read_text()) if metas else None
    return {"metrics": metrics, "wall": metrics["wall_seconds"], "read": read}


HEADERS = ["rows", "CSV GB", "path", "peak RSS MiB", "vs real file", "rows read/s", "run s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=70)
    parser.add_argument("--tmp", default=None, help="folder for the large CSV")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from dltoolkit.data.fetch import CREDITCARD, cached

    real = cached(CREDITCARD)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        folder = Path(folder)
        big = folder / "big.csv"
        count = replicate(real, big, args.copies)
        print(f"wrote {count:,} rows ({big.stat().st_size / 1e9:.1f} GB)", flush=True)
        base = None
        for source, path, size in ((real, "in memory", 284_807), (big, "streamed", count)):
            result = run(folder, f"csv:{source}", folder / f"cache-{size}")
            peak = result["metrics"]["cost"]["peak_memory_mib"]
            base = base or peak
            speed = f"{result['read']['rows_per_second']:,}" if result["read"] else "-"
            rows.append(
                [f"{size:,}", f"{source.stat().st_size / 1e9:.2f}", path, f"{peak:,.0f}",
                 f"{peak / base:.2f}", speed, f"{result['wall']:.0f}"]
            )  # fmt: skip
            print(rows[-1], flush=True)
    body = (
        f"{machine()}; `python bench/streaming_tables.py --copies {args.copies}`. 1 epoch of "
        "fraud-detection (MLP [128, 64], batch 2048, time split) on the card-fraud CSV and "
        f"on {args.copies} time-shifted copies of it (a memory test only); peak RSS of the "
        "whole run (reading, split, FeatureSpace, training, evaluation, baselines on their "
        "bounded sample). Rows read/s: both passes over the file (check, split, sample; "
        "encode and write).\n\n" + markdown_table(HEADERS, rows)
    )
    print(body)
    if not args.no_write:
        write_section("Streaming: a large CSV against the real card-fraud file", body)


if __name__ == "__main__":
    main()
