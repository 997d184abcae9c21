"""``report.html``: one self-contained page per run that answers how good the model is,
whether it overfits, what drives it, what it cost, and whether it beats the baseline.

Everything is drawn from what the run directory holds — ``metrics.json``, ``history.csv``,
``test_outputs.npz`` (the network's test outputs, written by the run) and the pictures a
task draws itself (forecasts, SOM maps) — so ``dltk report RUN_DIR`` redraws it at any
time. Plots use matplotlib's non-interactive Agg backend; the PNGs are written beside the
page and embedded in it, so it opens offline in any browser.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dltoolkit.errors import DltkError
from dltoolkit.plots import pyplot, save_figure
from dltoolkit.report.decisions import class_tables, decision_tables, models_of, number_cell
from dltoolkit.report.figures import (
    Figure,
    importance_plot,
    learning_curves,
    overfitting_note,
)
from dltoolkit.runs import (
    best_baseline,
    headline_of,
    is_finite_number,
    read_json,
    write_text_atomic,
)

REPORT_FILE = "report.html"


def headline(metrics: dict[str, Any]) -> tuple[str, bool]:
    """The run's headline score name and whether higher is better."""
    return headline_of(metrics)


# === Verdict ===


def verdict(metrics: dict[str, Any]) -> str:
    """One line: how the network's headline score compares with the best baseline's, and
    at what multiple of its training time."""
    if "comparison" in metrics and "verdict" in metrics["comparison"]:
        return str(metrics["comparison"]["verdict"])
    name, higher = headline(metrics)
    mine = metrics.get("test", {}).get(name)
    best = best_baseline(metrics, name)
    if not is_finite_number(mine) or best is None:
        return f"No baseline {name} to compare the network with."
    theirs = best["test"][name]
    gap = (mine - theirs) if higher else (theirs - mine)
    label = best["name"].replace("_", " ")
    seconds, baseline_seconds = metrics.get("train_seconds"), best.get("train_seconds")
    cost = ""
    if is_finite_number(seconds) and is_finite_number(baseline_seconds) and baseline_seconds > 0:
        cost = f" at {seconds / baseline_seconds:,.0f}x its training time"
    if abs(gap) < 1e-12:
        return f"The network ties {label} on {name} ({mine:.4g}){cost}."
    if gap > 0:
        return (
            f"The network beats {label} by {abs(gap):.4g} {name} ({mine:.4g} vs {theirs:.4g})"
            f"{cost}."
        )
    return (
        f"The network trails {label} by {abs(gap):.4g} {name} ({mine:.4g} vs {theirs:.4g})"
        f"{cost}: the baseline is the better choice here."
    )


# === The page ===


# Pictures that tasks draw themselves, in the order the report shows them.
DRAWN_BY_TASKS = {
    "forecast.png": (
        "Test span",
        "The network's forecasts (or the strategies' equity) over the test days.",
    ),
    "latent_space.png": (
        "Latent space",
        "The encoder's codes on their first two principal components, coloured by segment "
        "(clustering) or by class (anomaly detection: do the anomalies sit apart?).",
    ),
    "u_matrix.png": (
        "SOM U-matrix",
        "Mean distance of each unit to its neighbours: ridges separate groups.",
    ),
    "hit_map.png": ("SOM hit map", "Rows each map unit wins."),
    "som_segments.png": ("SOM segments", "The segment most rows of each unit belong to."),
    "som_components.png": (
        "SOM component planes",
        "Each input feature's value across the map (encoded scale): features whose planes "
        "look alike move together.",
    ),
    "tokens.png": (
        "Tokens behind a few test predictions",
        "For test texts drawn one predicted class at a time: how much each token holds up the "
        "predicted class's probability (its drop when the token is replaced by an unknown one).",
    ),
    "saliency.png": (
        "Saliency",
        "Test images above the size of the gradient of their predicted class's probability "
        "per pixel: where a change would move the prediction most.",
    ),
}


def _history(run_dir: Path) -> dict[str, list[float]]:
    path = run_dir / "history.csv"
    if not path.is_file():
        return {}
    import pandas as pd

    table = pd.read_csv(path).dropna(axis=1, how="all")  # a fit without validation rows
    return {column: table[column].tolist() for column in table.columns if column != "epoch"}


def write_report(
    run_dir: str | Path,
    task_figures: Sequence[Figure] = (),
    complete: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Path:
    """Draw the run's pictures and write ``report.html`` into ``run_dir``; return its path.

    ``task_figures`` are the pictures the run's task draws from its saved test outputs
    (its ``report_figures``); the pictures a task left in the folder itself (forecasts,
    SOM maps) are found by name. ``complete`` fills in what an older run's metrics.json
    lacks."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise DltkError(
            f"{run_dir} has no metrics.json: it is not a finished run directory; pass a "
            "folder under runs/<recipe>/ that a completed dltk recipe/train wrote."
        )
    metrics = read_json(metrics_path)
    metrics = complete(metrics) if complete else metrics
    history = _history(run_dir)
    figures: list[Figure] = []
    curves = learning_curves(history, metrics.get("best_epoch"), run_dir)
    if curves is not None:
        figures.append(curves)
    figures += list(task_figures)
    figures += [
        Figure(filename, title, caption)
        for filename, (title, caption) in DRAWN_BY_TASKS.items()
        if (run_dir / filename).is_file()
    ]
    importance = metrics.get("interpretability", {}).get("permutation_importance")
    if importance:
        figures.append(importance_plot(importance["features"], importance["score"], run_dir))
    page = _page(metrics, history, figures, run_dir)
    path = run_dir / REPORT_FILE
    write_text_atomic(path, page)
    return path


def _page(
    metrics: dict[str, Any], history: dict[str, list[float]], figures: list[Figure], folder: Path
) -> str:
    escape: Callable[[Any], str] = lambda value: html.escape(str(value))  # noqa: E731
    recipe = metrics.get("recipe", folder.parent.name)
    name, _ = headline(metrics)
    note = overfitting_note(history)
    sections = [
        f"<h1>{escape(recipe)} <small>{escape(folder.name)}</small></h1>",
        f"<p class='meta'>task {escape(metrics.get('task'))} · backend "
        f"{escape(metrics.get('backend'))} · seed {escape(metrics.get('seed'))} · "
        f"{escape(metrics.get('created_utc', ''))}</p>",
        f"<p class='verdict'>{escape(verdict(metrics))}</p>",
        "<h2>How good is it</h2>",
        _scores_table(metrics, name),
        *class_tables(metrics),
        "<h2>Is it overfitting</h2>",
        f"<p class='{'warn' if note else 'ok'}'>"
        + escape(note or _no_overfitting(history, metrics))
        + "</p>",
        "<h2>What it cost</h2>",
        _cost_table(metrics),
        *decision_tables(metrics),
        "<h2>Pictures</h2>",
    ]
    sections += [_embedded(figure, folder) for figure in figures]
    return _TEMPLATE.format(
        title=escape(f"{recipe} — {folder.name}"), body="\n".join(sections), count=len(figures)
    )


def _no_overfitting(history: dict[str, list[float]], metrics: dict[str, Any]) -> str:
    if not history.get("val_loss"):
        return "No validation loss was recorded for this run."
    return (
        f"No sign of it: validation loss did not turn up while training loss fell "
        f"(best epoch {metrics.get('best_epoch')} of {len(history['val_loss'])})."
    )


def _scores_table(metrics: dict[str, Any], headline_name: str) -> str:
    """Test scores of the network and every baseline, one column each."""
    models = models_of(metrics)
    names = [
        key
        for key, value in metrics.get("test", {}).items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    head = "".join(f"<th>{html.escape(label)}</th>" for label, _ in models)
    rows = []
    for key in names:
        cells = "".join(f"<td>{number_cell(scores.get(key, ''))}</td>" for _, scores in models)
        mark = " class='headline'" if key == headline_name else ""
        rows.append(f"<tr{mark}><th>{html.escape(key)}</th>{cells}</tr>")
    return f"<table><tr><th>test score</th>{head}</tr>{''.join(rows)}</table>"


def _cost_table(metrics: dict[str, Any]) -> str:
    """Parameters, FLOPs, training time and throughput of the network beside the baselines."""
    cost = metrics.get("cost", {})
    rows = [
        (
            "network",
            metrics.get("parameters", {}).get("total"),
            cost.get("flops_per_example"),
            metrics.get("train_seconds"),
            metrics.get("samples_per_second"),
        )
    ]
    rows += [
        (b["name"], b.get("parameters"), None, b.get("train_seconds"), None)
        for b in metrics.get("baselines", [])
    ]
    body = "".join(
        "<tr>"
        + "".join(f"<td>{number_cell(v) if v is not None else '—'}</td>" for v in row)
        + "</tr>"
        for row in rows
    )
    extra = (
        f"<p class='meta'>peak memory {number_cell(cost.get('peak_memory_mib'))} MiB · devices "
        f"{html.escape(', '.join(cost.get('devices', [])) or 'cpu')} · epochs run "
        f"{number_cell(metrics.get('epochs_run'))}</p>"
    )
    return (
        "<table><tr><th>model</th><th>parameters</th><th>FLOPs / example (forward)</th>"
        f"<th>training seconds</th><th>training examples / s</th></tr>{body}</table>{extra}"
    )


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
small {{ color: #777; font-weight: normal; font-size: 0.6em; }}
.meta {{ color: #666; }}
.verdict {{ font-size: 1.2em; padding: 0.6em 0.8em; background: #eef4fb;
  border-left: 4px solid #3a7bd5; }}
.warn {{ background: #fff4e5; border-left: 4px solid #e69500; padding: 0.5em 0.8em; }}
.ok {{ background: #eef8ee; border-left: 4px solid #3a9d3a; padding: 0.5em 0.8em; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
th, td {{ border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }}
tr.headline {{ background: #fffbe0; font-weight: bold; }}
figure {{ display: inline-block; vertical-align: top; margin: 0.6em; max-width: 100%; }}
figure img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ max-width: 520px; font-size: 0.9em; color: #444; }}
</style></head>
<body data-figures="{count}">
{body}
<script>
// Marks the page once every figure has decoded (read by automated checks).
window.addEventListener("load", function () {{
  var images = Array.prototype.slice.call(document.images);
  var shown = images.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }});
  document.body.setAttribute("data-figures-shown", String(shown.length));
}});
</script>
</body></html>
"""


# === Search reports ===


def write_search_report(directory: str | Path) -> Path:
    """``report.html`` of a hyperparameter search (``searches/<recipe>/``): the objective
    of every trial with the best so far, and each hyperparameter against the objective."""
    import pandas as pd

    directory = Path(directory)
    results, settings = directory / "results.csv", directory / "search.json"
    if not results.is_file() or not settings.is_file():
        raise DltkError(
            f"{directory} has no results.csv and search.json: pass a folder a finished "
            "dltk tune wrote (searches/<recipe>/)."
        )
    search = read_json(settings)
    objective, higher = search["objective"], search.get("direction", "min") == "max"
    table = pd.read_csv(results)
    ordered = table.sort_values("trial", key=lambda ids: ids.astype(str)).reset_index(drop=True)
    figures = [_trial_curve(ordered, objective, higher, directory)]
    fixed = {"rank", "trial", objective, "best_epoch", "seconds", "peak_memory_mib"}
    parameters = [column for column in table.columns if column not in fixed]
    if parameters:
        figures.append(_parameter_plots(table, parameters, objective, directory))
    best = table.iloc[0]
    sections = [
        f"<h1>Search: {html.escape(search.get('recipe', directory.name))}</h1>",
        f"<p class='meta'>{html.escape(search.get('tuner', ''))} tuner · {len(table)} "
        f"completed trials · objective {html.escape(objective)} "
        f"({'higher' if higher else 'lower'} is better)</p>",
        f"<p class='verdict'>Best: trial {html.escape(str(best['trial']))} with "
        f"{html.escape(objective)} {number_cell(float(best[objective]))}; re-run it with "
        f"<code>dltk recipe {html.escape(search.get('recipe', ''))} --config "
        f"{html.escape(str(directory / 'best.yaml'))}</code>.</p>",
        "<h2>Trials, best first</h2>",
        table.to_html(index=False, float_format=lambda v: f"{v:.5g}", border=0),
        "<h2>Pictures</h2>",
    ]
    sections += [_embedded(figure, directory) for figure in figures]
    page = _TEMPLATE.format(
        title=html.escape(f"search {directory.name}"), body="\n".join(sections), count=len(figures)
    )
    path = directory / REPORT_FILE
    write_text_atomic(path, page)
    return path


def _trial_curve(ordered: Any, objective: str, higher: bool, folder: Path) -> Figure:
    plt = pyplot()
    values = ordered[objective].to_numpy(dtype=float)
    best = np.maximum.accumulate(values) if higher else np.minimum.accumulate(values)
    figure, axis = plt.subplots(figsize=(6.4, 3.8))
    trials = np.arange(1, len(values) + 1)
    axis.plot(trials, values, "o", label="trial")
    axis.step(trials, best, where="post", color="C3", label="best so far")
    axis.set_xlabel("trial (in the order run)")
    axis.set_ylabel(objective)
    axis.legend(fontsize=8)
    save_figure(figure, folder / "search_trials.png")
    return Figure("search_trials.png", "Objective per trial", "With the best so far.")


def _parameter_plots(table: Any, parameters: list[str], objective: str, folder: Path) -> Figure:
    plt = pyplot()
    columns = min(3, len(parameters))
    rows = -(-len(parameters) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for axis, name in zip(axes.flat, parameters, strict=False):
        values = table[name]
        numbers = _numbers(values)
        if numbers is not None:
            axis.scatter(numbers, table[objective], s=18)
            if numbers.min() > 0 and numbers.max() / numbers.min() >= 100:
                axis.set_xscale("log")
        else:
            labels = values.astype(str)
            categories = sorted(labels.unique())
            positions = labels.map({c: i for i, c in enumerate(categories)})
            axis.scatter(positions, table[objective], s=18)
            axis.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
        axis.set_xlabel(name)
        axis.set_ylabel(objective)
    for axis in list(axes.flat)[len(parameters) :]:
        axis.set_visible(False)
    save_figure(figure, folder / "search_parameters.png")
    return Figure(
        "search_parameters.png", "Hyperparameters against the objective", "One dot per trial."
    )


def _numbers(values: Any) -> Any:
    """``values`` as floats when every present one is a number (booleans excluded)."""
    import pandas as pd

    if values.dtype == bool or values.map(lambda v: isinstance(v, bool)).any():
        return None
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers if numbers.notna().sum() == values.notna().sum() else None


def _embedded(figure: Figure, folder: Path) -> str:
    data = base64.b64encode((folder / figure.filename).read_bytes()).decode("ascii")
    return (
        f"<figure><img alt='{html.escape(figure.title)}' src='data:image/png;base64,{data}'>"
        f"<figcaption><b>{html.escape(figure.title)}</b> ({html.escape(figure.filename)}). "
        f"{html.escape(figure.caption)}</figcaption></figure>"
    )
