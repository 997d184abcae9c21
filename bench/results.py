"""Shared by the benchmark scripts: Markdown tables and the sections of bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
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
