"""Run directories: ``<output_dir>/<recipe>/<UTC timestamp>/``, never overwritten."""

from __future__ import annotations

import json
import os
import shutil
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


def fresh_folder(target: Path) -> Path:
    """An empty folder beside ``target`` to write its next contents into (this process's)."""
    fresh = target.with_name(f"{target.name}.writing-{os.getpid()}")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    return fresh


def swap_in_folder(fresh: Path, target: Path) -> None:
    """Make the finished folder ``fresh`` the new ``target``: the old one moves aside,
    ``fresh`` takes its name, the old one is removed. A kill at any point leaves a whole
    folder, the new one or the old one (put back by :func:`recover_folder` if the kill
    fell between the two renames)."""
    aside = target.with_name(f"{target.name}.previous-{os.getpid()}")
    if target.exists():
        target.rename(aside)
    fresh.rename(target)
    shutil.rmtree(aside, ignore_errors=True)


def recover_folder(target: Path) -> None:
    """Put back the folder :func:`swap_in_folder` had moved aside when a kill fell
    between its two renames (``target`` missing, its previous version beside it)."""
    if target.exists():
        return
    for aside in sorted(target.parent.glob(f"{target.name}.previous-*")):
        aside.rename(target)
        return
