"""What every recipe writes, recorded so that a refactor can be shown to change none of it.

For each recipe (1 epoch, the recipe's own data; clustering with a short self-training),
this runs ``dltk recipe`` in a fresh folder and records:

- the set of metrics.json keys, recursively (``test.roc_auc``; list items as ``[]``),
- the files in the run directory (relative paths),
- the exported SavedModel's serving signature: input names and output names,
- the columns of ``dltk predict``'s CSV on the recipe's data source.

Usage:
    python bench/behaviour.py record OUT.json [--code DIR] [--recipe NAME ...]
    python bench/behaviour.py compare BEFORE.json AFTER.json [--write]

``--code DIR`` runs the toolkit from another checkout (its folder goes first on
PYTHONPATH), so the figures of an older commit can be recorded beside the current ones.
``compare`` prints every difference and exits 1 when there is one; with ``--write`` it
also writes them, recipe by recipe, into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from results import machine, markdown_table, write_section

RECIPES = (
    "cnn-image",
    "mlp-regression",
    "phishing-detection",
    "credit-risk",
    "fraud-detection",
    "fraud-anomaly",
    "customer-segmentation",
    "stock-forecast",
    "volatility-forecast",
    "trading-signal",
)
SHORT = ("--set", "train.epochs=1", "--set", "train.verbose=0")
EXTRA = {
    "customer-segmentation": (
        "--set",
        "train.clustering.max_iterations=280",
        "--set",
        "train.clustering.som_epochs=1",
    ),
}


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path of nested dicts and lists (list items share the path ``name[]``)."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.add(path)
            paths |= key_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            paths |= key_paths(item, f"{prefix}[]")
    return paths


def signature_names(export_path: Path, environment: dict[str, str]) -> dict[str, list[str]]:
    """Input and output names of the SavedModel's serving_default signature."""
    script = (
        "import json, sys, tensorflow as tf\n"
        "signature = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "print(json.dumps({'inputs': sorted(signature.structured_input_signature[1]),"
        " 'outputs': sorted(signature.structured_outputs)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(export_path)],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def record_recipe(recipe: str, environment: dict[str, str]) -> dict[str, Any]:
    """Run one recipe in a new folder and record what it wrote."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "dltoolkit", "recipe", recipe, *SHORT]
        command += list(EXTRA.get(recipe, ()))
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=environment)
        if done.returncode != 0:
            return {"error": done.stdout[-2000:] + done.stderr[-2000:]}
        (run_dir,) = (Path(folder) / "runs" / recipe).iterdir()
        metrics = json.loads((run_dir / "metrics.json").read_text())
        files = sorted(
            str(path.relative_to(run_dir)) for path in run_dir.rglob("*") if path.is_file()
        )
        result: dict[str, Any] = {
            "metrics_keys": sorted(key_paths(metrics)),
            "run_files": files,
            "signature": signature_names(Path(folder) / metrics["export"]["path"], environment),
        }
        output = Path(folder) / "predictions.csv"
        source = metrics["data"]["source"]
        command = [sys.executable, "-m", "dltoolkit", "predict", str(run_dir), "--data", source]
        predicted = subprocess.run(
            [*command, "--output", str(output)],
            cwd=folder,
            capture_output=True,
            text=True,
            env=environment,
        )
        if predicted.returncode == 0:
            with output.open() as stream:
                result["predict_columns"] = next(csv.reader(stream))
        else:
            lines = (predicted.stdout + predicted.stderr).strip().splitlines()
            result["predict_error"] = lines[-1] if lines else f"exit {predicted.returncode}"
        return result


def record(out: Path, code: str | None, recipes: list[str]) -> None:
    """Record every recipe into ``out`` (JSON), printing one line per recipe."""
    environment = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    if code:
        environment["PYTHONPATH"] = str(Path(code).resolve())
    results = {}
    for recipe in recipes:
        results[recipe] = record_recipe(recipe, environment)
        state = "error" if "error" in results[recipe] else "ok"
        print(f"{recipe:24s} {state}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """One line per difference between two records."""
    lines = []
    for recipe in sorted(set(before) | set(after)):
        old, new = before.get(recipe, {}), after.get(recipe, {})
        for field in sorted(set(old) | set(new)):
            a, b = old.get(field), new.get(field)
            if a == b:
                continue
            if isinstance(a, list) and isinstance(b, list):
                gone, added = sorted(set(a) - set(b)), sorted(set(b) - set(a))
                lines.append(f"{recipe} {field}: removed {gone}, added {added}")
            elif isinstance(a, dict) and isinstance(b, dict):
                for part in sorted(set(a) | set(b)):
                    if a.get(part) != b.get(part):
                        lines.append(f"{recipe} {field}.{part}: {a.get(part)} -> {b.get(part)}")
            else:
                lines.append(f"{recipe} {field}: {a!r} -> {b!r}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    recorder = commands.add_parser("record")
    recorder.add_argument("out", type=Path)
    recorder.add_argument("--code", help="run the toolkit from this checkout")
    recorder.add_argument("--recipe", action="append", choices=RECIPES)
    comparer = commands.add_parser("compare")
    comparer.add_argument("before", type=Path)
    comparer.add_argument("after", type=Path)
    comparer.add_argument("--write", action="store_true", help="write bench/RESULTS.md too")
    arguments = parser.parse_args()
    if arguments.command == "record":
        record(arguments.out, arguments.code, arguments.recipe or list(RECIPES))
        return 0
    before, after = (json.loads(path.read_text()) for path in (arguments.before, arguments.after))
    lines = compare(before, after)
    print("\n".join(lines) if lines else "no difference")
    if arguments.write:
        rows = []
        for recipe in sorted(after):
            changed = [line.split(" ", 1)[1] for line in lines if line.startswith(recipe + " ")]
            written = after[recipe]
            sizes = [len(written.get("metrics_keys", [])), len(written.get("run_files", []))]
            rows.append([recipe, *sizes, "; ".join(changed) or "none"])
        write_section(
            "What each recipe writes (before and after a change)",
            f"Recorded {machine()} with `python bench/behaviour.py record` (1 epoch, the "
            f"recipes' own data) for {arguments.before} and {arguments.after}, compared with "
            "`python bench/behaviour.py compare`: metrics.json keys (recursively), run "
            "directory files, the SavedModel's signature names and `dltk predict`'s columns.\n\n"
            + markdown_table(["recipe", "metrics keys", "run files", "differences"], rows),
        )
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
