"""Write dltoolkit/data/files/creditcard-sample.csv.gz from the full credit-card fraud set.

The sample keeps every fraud and every 50th legitimate transaction, in the original time
order and with the original text of each row, so ``dltk recipe fraud-detection`` runs
offline. Fraud is 8% of the sample against 0.17% of the full set: figures measured on the
sample are not the benchmark's (``--data builtin:creditcard-fraud``).

    python bench/make_creditcard_sample.py
"""

from __future__ import annotations

import gzip
from pathlib import Path

from dltoolkit.data.fetch import CREDITCARD, cached

STEP = 50
OUTPUT = Path(__file__).resolve().parents[1] / "dltoolkit/data/files/creditcard-sample.csv.gz"


def main() -> None:
    """Select the rows and write the gzip file (deterministic: no timestamp in the header)."""
    lines = cached(CREDITCARD).read_text().splitlines()
    header, rows = lines[0], lines[1:]
    kept = [row for index, row in enumerate(rows) if row.endswith('"1"') or index % STEP == 0]
    frauds = sum(row.endswith('"1"') for row in kept)
    data = ("\n".join([header, *kept]) + "\n").encode()
    with open(OUTPUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as stream:
        stream.write(data)
    print(f"{OUTPUT}: {len(kept)} rows, {frauds} frauds, {OUTPUT.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
