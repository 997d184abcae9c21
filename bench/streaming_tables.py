"""Benchmark: a large CSV streamed into fraud-detection (or, with ``--texts``, a large CSV
of texts into complaint-routing): peak memory against the real file, and rows read per
second.

The large file replicates the ULB card-fraud CSV (``builtin:creditcard-fraud``'s file)
``--copies`` times, each copy's ``Time`` shifted past the previous one so the time split
still orders it: a memory and throughput test, never a quality claim. Each size runs 1
epoch of ``dltk recipe fraud-detection`` (time split, ``data.cache`` auto: the real file
is read whole in memory, the large one streams) in its own process; peak RSS from
metrics.json, rows read per second from the encoded files' meta.json.

With ``--texts`` the large file is ``--copies`` copies of the 13,000 CFPB complaints
(``builtin:complaints``, without its split column): each run is 1 epoch of the
complaint-routing network, the real set read in memory, the large file streamed
(``data.cache: disk``): its vocabulary adapted on the sample, every text written as token
ids, the validation and test texts kept on disk for the TF-IDF baselines. Copies repeat
texts across the splits, so the scores mean nothing: memory and throughput only.

    python bench/streaming_tables.py --copies 70     # 19.9 million rows, ~10 GB of CSV
    python bench/streaming_tables.py --texts --copies 20   # 260,000 texts, ~300 MB
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


# 64 tokens a text and batches of 256 keep the epoch over 180,000 texts to minutes on 2 CPUs.
TEXT_SETTINGS = [
    "--set", "data.split_column=null", "--set", "data.split=stratified",
    "--set", "data.max_tokens=64", "--set", "train.batch_size=256",
    "--set", "train.epochs=1", "--set", "report.enabled=false", "--set", "export.enabled=false",
    "--set", "train.verbose=0", "--set", "train.backup=false",
]  # fmt: skip


def replicate_texts(target: Path, copies: int) -> tuple[Path, int]:
    """The 13,000 complaints (text and product) in ``real.csv`` beside ``target``, and
    ``copies`` copies of them in ``target``."""
    from dltoolkit.data.builtin_tables import BUILTIN_TABLES

    frame = BUILTIN_TABLES["complaints"]()[0].drop(columns="split")
    real = target.with_name("real.csv")
    frame.to_csv(real, index=False)
    with open(target, "w", encoding="utf-8") as out:
        for copy in range(copies):
            frame.to_csv(out, index=False, header=copy == 0)
    return real, len(frame) * copies


def run(folder: Path, recipe: str, source: str, cache: Path, *settings: str) -> dict:
    """One run of ``recipe``; its metrics, wall seconds and the encoded files' meta."""
    metrics = recipe_in_process(
        folder, recipe, source, *settings, "--set", f"data.cache_dir={cache}"
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
    parser.add_argument("--texts", action="store_true", help="complaint texts, not card fraud")
    args = parser.parse_args()
    from dltoolkit.data.fetch import CREDITCARD, cached

    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        folder = Path(folder)
        big = folder / "big.csv"
        if args.texts:
            real, count = replicate_texts(big, args.copies)
            recipe, real_rows = "complaint-routing", count // args.copies
            settings = {"in memory": [*TEXT_SETTINGS, "--set", "data.cache=memory"],
                        "streamed": [*TEXT_SETTINGS, "--set", "data.cache=disk"]}  # fmt: skip
        else:
            real = cached(CREDITCARD)
            count = replicate(real, big, args.copies)
            recipe, real_rows = "fraud-detection", 284_807
            settings = {"in memory": SETTINGS, "streamed": SETTINGS}
        print(f"wrote {count:,} rows ({big.stat().st_size / 1e9:.1f} GB)", flush=True)
        base = None
        for source, path, size in ((real, "in memory", real_rows), (big, "streamed", count)):
            result = run(folder, recipe, f"csv:{source}", folder / f"cache-{size}", *settings[path])
            peak = result["metrics"]["cost"]["peak_memory_mib"]
            base = base or peak
            speed = f"{result['read']['rows_per_second']:,}" if result["read"] else "-"
            rows.append(
                [f"{size:,}", f"{source.stat().st_size / 1e9:.2f}", path, f"{peak:,.0f}",
                 f"{peak / base:.2f}", speed, f"{result['wall']:.0f}"]
            )  # fmt: skip
            print(rows[-1], flush=True)
    if args.texts:
        title = "Streaming: a large CSV of texts against the real complaints"
        what = (
            f"`python bench/streaming_tables.py --texts --copies {args.copies}`. 1 epoch of "
            "complaint-routing (text_cnn, 64 tokens, batch 256, stratified random split) on "
            f"the 13,000 CFPB complaints in memory and on {args.copies} copies of them streamed "
            "(data.cache: disk; a memory and throughput test only: copies repeat texts "
            "across splits); peak RSS of the whole run (reading, split, vocabulary, token "
            "ids, training, evaluation, TF-IDF baselines fitted on the sample's training "
            "texts and scored on every test text read from disk)"
        )
    else:
        title = "Streaming: a large CSV against the real card-fraud file"
        what = (
            f"`python bench/streaming_tables.py --copies {args.copies}`. 1 epoch of "
            "fraud-detection (MLP [128, 64], batch 2048, time split) on the card-fraud CSV "
            f"and on {args.copies} time-shifted copies of it (a memory test only); peak RSS "
            "of the whole run (reading, split, FeatureSpace, training, evaluation, baselines "
            "on their bounded sample)"
        )
    body = (
        f"{machine()}; {what}. Rows read/s: both passes over the file (check, split, "
        "sample; encode and write).\n\n" + markdown_table(HEADERS, rows)
    )
    print(body)
    if not args.no_write:
        write_section(title, body)


if __name__ == "__main__":
    main()
