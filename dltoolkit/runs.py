"""Run directories: ``<output_dir>/<recipe>/<UTC timestamp>/``, never overwritten."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def create_run_dir(output_dir: str | Path, recipe: str) -> Path:
    """Create a new, empty run directory; a second run in the same second gets a suffix."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    parent = Path(output_dir) / recipe
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        candidate = parent / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"could not create a new run directory under {parent}")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename (no half-written file)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, content: dict[str, Any]) -> None:
    """Write pretty JSON atomically."""
    write_text_atomic(path, json.dumps(content, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> dict[str, Any]:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def read_run_metrics(folder: str | Path) -> dict[str, Any]:
    """A run's ``metrics.json`` (task, decision, class names ...), or {} when the folder has
    none (a bare ``.keras`` file)."""
    path = Path(folder) / "metrics.json"
    return read_json(path) if path.is_file() else {}
