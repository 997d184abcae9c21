"""Shared by the benchmark scripts: Markdown tables and the sections of bench/RESULTS.md."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; cells are printed with ``str``."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def spread(values: Sequence[float | None]) -> str:
    """``mean (min-max)`` of several runs' values (5 significant digits), the value of one,
    ``n/a`` for none."""
    present = [value for value in values if value is not None]
    if not present:
        return "n/a"
    if len(present) == 1:
        return f"{present[0]:.5g}"
    mean = sum(present) / len(present)
    return f"{mean:.5g} ({min(present):.5g}-{max(present):.5g})"


def machine() -> str:
    """The date and machine a measurement was taken on, for the section's first line."""
    return (
        f"{time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )


def write_section(title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of bench/RESULTS.md with ``body``."""
    heading = f"## {title}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if heading in text:
        before, _, after = text.partition(heading)
        rest = after.split("\n## ", 1)
        text = before.rstrip() + "\n" + ("\n## " + rest[1] if len(rest) > 1 else "")
    RESULTS.write_text(text.rstrip() + f"\n\n{heading}\n\n{body.strip()}\n")


def recipe_in_process(folder: Path, recipe: str, source: str, *settings: str) -> dict:
    """One ``dltk recipe RECIPE --data SOURCE SETTINGS`` in its own process, in a fresh
    working folder under ``folder``: its metrics.json, plus ``wall_seconds``."""
    work = Path(tempfile.mkdtemp(dir=folder))
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dltoolkit", "recipe", recipe, "--data", source, *settings],
        cwd=work, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - start
    (run_dir,) = (work / "runs" / recipe).iterdir()
    return {**json.loads((run_dir / "metrics.json").read_text()), "wall_seconds": wall}
