"""Run directories: ``<output_dir>/<recipe>/<UTC timestamp>/``, never overwritten."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dltoolkit.errors import DltkError

# Scores where larger is better (matched as parts of names such as ``val_pr_auc``).
HIGHER_IS_BETTER = (
    "acc", "auc", "precision", "recall", "f1", "r2", "silhouette", "calinski", "sharpe",
    "cumulative_return",
)  # fmt: skip


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of metric ``metric`` (e.g. ``val_pr_auc``) is better."""
    return any(key in metric for key in HIGHER_IS_BETTER)


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


# === Listing and comparing past runs ===


def headline_of(metrics: dict[str, Any]) -> tuple[str, bool]:
    """The score a run is judged by and whether higher is better, as its task wrote them
    into metrics.json (``headline``; a run that predates the entry gets it from its task
    where a ``complete`` hook below adds it, else is judged by its first test score)."""
    written = metrics.get("headline")
    if isinstance(written, dict) and "score" in written:
        return str(written["score"]), bool(written.get("higher_is_better"))
    name = next(iter(metrics.get("test") or {}), "loss")
    return name, higher_is_better(name)


def is_finite_number(value: Any) -> bool:
    """A real int or float (not a bool), neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def best_baseline(metrics: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The baseline with the best finite test score ``name``, or None."""
    baselines = [
        b for b in metrics.get("baselines", []) if is_finite_number(b.get("test", {}).get(name))
    ]
    if not baselines:
        return None
    pick = max if higher_is_better(name) else min
    return pick(baselines, key=lambda b: b["test"][name])


def summarise(run_dir: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """One run in a line: when, what, its headline score and the best baseline's, cost."""
    name, _ = headline_of(metrics)
    best = best_baseline(metrics, name)
    return {
        "run": str(run_dir),
        "created": metrics.get("created_utc", "")[:19].replace("T", " "),
        "recipe": metrics.get("recipe", run_dir.parent.name),
        "backend": metrics.get("backend", ""),
        "score": name,
        "network": metrics.get("test", {}).get(name),
        "baseline": f"{best['name']} {best['test'][name]:.4g}" if best else "",
        "parameters": metrics.get("parameters", {}).get("total"),
        "train_seconds": metrics.get("train_seconds"),
    }


Completion = Callable[[dict[str, Any]], dict[str, Any]]


def find_runs(
    output_dir: str | Path = "runs", recipe: str | None = None, complete: Completion | None = None
) -> list[dict[str, Any]]:
    """Summaries of the finished runs under ``output_dir`` (optionally one recipe's),
    oldest first; unfinished or unreadable run folders are skipped. ``complete`` fills in
    what older runs' metrics.json lacks."""
    root = Path(output_dir)
    pattern = f"{recipe}/*/metrics.json" if recipe else "*/*/metrics.json"
    found = []
    for path in root.glob(pattern):
        if path.parts[-3].startswith("."):
            continue
        try:
            metrics = read_json(path)
        except (OSError, ValueError):
            continue
        found.append(summarise(path.parent, complete(metrics) if complete else metrics))
    return sorted(found, key=lambda run: (run["created"], run["run"]))


def text_table(header: list[str], rows: list[list[Any]]) -> str:
    """A plain aligned table: numbers right-aligned to 4 significant digits."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    cells = [[cell(value) for value in row] for row in rows]
    widths = [max(len(str(h)), *(len(row[i]) for row in cells)) for i, h in enumerate(header)]
    numeric = [
        all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
        for i in range(len(header))
    ]

    def line(values: list[str]) -> str:
        return "  ".join(
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, cells)])


def compare_runs(run_dirs: list[Path], complete: Completion | None = None) -> str:
    """Runs side by side: facts and cost, every test score, the best baseline, and the
    configuration settings in which they differ (``complete``: as for :func:`find_runs`)."""
    import yaml

    runs = []
    for run_dir in run_dirs:
        path = Path(run_dir) / "metrics.json"
        if not path.is_file():
            raise DltkError(
                f"{run_dir} has no metrics.json; pass finished run directories "
                "(dltk runs list shows them)."
            )
        config_path = Path(run_dir) / "config.yaml"
        config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
        metrics = read_json(path)
        runs.append((complete(metrics) if complete else metrics, _flatten(config or {})))
    rows: list[list[Any]] = []

    def add(label: str, values: list[Any]) -> None:
        rows.append([label, *values])

    summaries = [summarise(Path(d), m) for d, (m, _) in zip(run_dirs, runs, strict=True)]
    for key in ("recipe", "created", "backend", "score", "network", "baseline"):
        add(key, [s[key] for s in summaries])
    add("seed", [m.get("seed") for m, _ in runs])
    add("parameters", [m.get("parameters", {}).get("total") for m, _ in runs])
    add("flops_per_example", [m.get("cost", {}).get("flops_per_example") for m, _ in runs])
    add("epochs_run", [m.get("epochs_run") for m, _ in runs])
    add("train_seconds", [m.get("train_seconds") for m, _ in runs])
    add("samples_per_second", [m.get("samples_per_second") for m, _ in runs])
    scores = dict.fromkeys(
        key
        for m, _ in runs
        for key, value in m.get("test", {}).items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    )
    for key in scores:
        add(f"test {key}", [m.get("test", {}).get(key) for m, _ in runs])
    settings = sorted({key for _, flat in runs for key in flat})
    for key in settings:
        values = [flat.get(key) for _, flat in runs]
        if len({repr(value) for value in values}) > 1:
            add(f"config {key}", [repr(v) if isinstance(v, (list, dict)) else v for v in values])
    header = ["", *[Path(d).name for d in run_dirs]]
    return text_table(header, rows)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
