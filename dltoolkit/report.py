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
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dltoolkit.errors import DltkError
from dltoolkit.plots import pyplot, save_figure
from dltoolkit.runs import (
    best_baseline,
    headline_score,
    higher_is_better,
    is_finite_number,
    read_json,
    write_text_atomic,
)

REPORT_FILE = "report.html"
TEST_OUTPUTS = "test_outputs.npz"


@dataclass
class Figure:
    """One picture of the report: its file in the run directory, title and caption."""

    filename: str
    title: str
    caption: str = ""


def headline(metrics: dict[str, Any]) -> tuple[str, bool]:
    """The run's headline score name and whether higher is better."""
    name = headline_score(metrics)
    return name, higher_is_better(name)


def save_test_outputs(run_dir: Path, y_true: np.ndarray, outputs: np.ndarray, **extra) -> None:
    """Keep the network's test outputs beside the run, for the report's plots."""
    np.savez_compressed(run_dir / TEST_OUTPUTS, y_true=y_true, outputs=outputs, **extra)


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


# === Plots ===


def overfitting_note(history: dict[str, list[float]], monitor: str = "val_loss") -> str | None:
    """A sentence when the validation loss turned up while the training loss kept falling
    (the network started to overfit), else None."""
    validation, training = history.get(monitor), history.get("loss")
    if not validation or not training or len(validation) < 3:
        return None
    best = int(np.argmin(validation))
    last = len(validation) - 1
    if best >= last - 1:
        return None
    rise = validation[last] - validation[best]
    if rise <= 0.02 * abs(validation[best]) or training[last] >= training[best]:
        return None
    return (
        f"Overfitting: validation loss bottomed at epoch {best + 1} ({validation[best]:.4g}) and "
        f"rose to {validation[last]:.4g} by epoch {last + 1} while the training loss kept "
        f"falling ({training[best]:.4g} to {training[last]:.4g}); the generalisation gap widened "
        f"from {validation[best] - training[best]:.4g} to {validation[last] - training[last]:.4g}."
    )


def learning_curves(
    history: dict[str, list[float]], best_epoch: int | None, folder: Path
) -> Figure | None:
    """Training vs validation per metric, the best (restored) epoch marked."""
    names = [n for n in history if not n.startswith("val_") and f"val_{n}" in history]
    if not names:
        return None
    plt = pyplot()
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    epochs = np.arange(1, len(history[names[0]]) + 1)
    for axis, name in zip(axes[0], names, strict=True):
        axis.plot(epochs, history[name], label="training")
        axis.plot(epochs, history[f"val_{name}"], label="validation")
        if best_epoch:
            axis.axvline(best_epoch, color="0.5", ls="--", lw=1, label=f"best epoch {best_epoch}")
        axis.set_xlabel("epoch")
        axis.set_title(name.replace("_", " "))
        axis.legend(fontsize=8)
    save_figure(figure, folder / "learning_curves.png")
    return Figure(
        "learning_curves.png",
        "Learning curves",
        "Training vs validation per epoch; the dashed line is the epoch whose weights were kept.",
    )


def confusion_matrix_plot(
    y: np.ndarray, predicted: np.ndarray, names: list[str], folder: Path, note: str = ""
) -> Figure:
    """Row-normalised confusion matrix with counts."""
    from sklearn.metrics import confusion_matrix

    labels = list(range(len(names)))
    counts = confusion_matrix(y, predicted, labels=labels)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    plt = pyplot()
    size = min(2.5 + 0.45 * len(names), 9)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axis, label="share of the true class")
    if len(names) <= 20:
        for (row, column), count in np.ndenumerate(counts):
            colour = "white" if shares[row, column] > 0.5 else "black"
            axis.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    axis.set_xticks(labels, names, rotation=45 if len(names) > 6 else 0, ha="right")
    axis.set_yticks(labels, names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    save_figure(figure, folder / "confusion_matrix.png")
    return Figure("confusion_matrix.png", "Confusion matrix", f"Test split{note}.")


def ranking_plots(
    y: np.ndarray, scores: np.ndarray, threshold: float, folder: Path
) -> list[Figure]:
    """ROC and precision-recall curves with the chosen threshold's point marked."""
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    if len(np.unique(y)) < 2:
        return []
    plt = pyplot()
    chosen = scores >= threshold
    positives, negatives = max(int((y == 1).sum()), 1), max(int((y == 0).sum()), 1)
    tpr = float((chosen & (y == 1)).sum()) / positives
    fpr = float((chosen & (y == 0)).sum()) / negatives
    precision_at = float((chosen & (y == 1)).sum()) / max(int(chosen.sum()), 1)

    figure, axis = plt.subplots(figsize=(4.6, 4.2))
    false_rate, true_rate, _ = roc_curve(y, scores)
    axis.plot(false_rate, true_rate, label=f"network (AUC {roc_auc_score(y, scores):.3f})")
    axis.plot([0, 1], [0, 1], color="0.7", ls=":", label="chance")
    axis.plot([fpr], [tpr], "o", color="C3", label=f"threshold {threshold:.3g}")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate (recall)")
    axis.legend(fontsize=8, loc="lower right")
    save_figure(figure, folder / "roc.png")

    figure, axis = plt.subplots(figsize=(4.6, 4.2))
    precision, recall, _ = precision_recall_curve(y, scores)
    average = average_precision_score(y, scores)
    axis.plot(recall, precision, label=f"network (average precision {average:.3f})")
    axis.axhline(float(np.mean(y)), color="0.7", ls=":", label="chance (positive rate)")
    axis.plot([tpr], [precision_at], "o", color="C3", label=f"threshold {threshold:.3g}")
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.legend(fontsize=8, loc="upper right")
    save_figure(figure, folder / "precision_recall.png")
    return [
        Figure("roc.png", "ROC curve", _THRESHOLD_DOT),
        Figure("precision_recall.png", "Precision-recall curve", _THRESHOLD_DOT),
    ]


_THRESHOLD_DOT = "Test split; the dot is the threshold chosen on validation."


def regression_plots(y: np.ndarray, predicted: np.ndarray, folder: Path) -> list[Figure]:
    """Predicted vs actual, and residuals against the prediction."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(4.6, 4.4))
    axis.scatter(y, predicted, s=10, alpha=0.6)
    low, high = float(min(y.min(), predicted.min())), float(max(y.max(), predicted.max()))
    axis.plot([low, high], [low, high], color="0.5", ls="--", lw=1, label="perfect")
    axis.set_xlabel("actual")
    axis.set_ylabel("predicted")
    axis.legend(fontsize=8)
    save_figure(figure, folder / "predicted_vs_actual.png")

    residuals = y - predicted
    figure, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.6))
    left.scatter(predicted, residuals, s=10, alpha=0.6)
    left.axhline(0, color="0.5", ls="--", lw=1)
    left.set_xlabel("predicted")
    left.set_ylabel("actual - predicted")
    right.hist(residuals, bins=30, color="C0")
    right.set_xlabel("residual")
    right.set_ylabel("rows")
    save_figure(figure, folder / "residuals.png")
    return [
        Figure("predicted_vs_actual.png", "Predicted vs actual", "Test split."),
        Figure("residuals.png", "Residuals", "Test split: structure here is signal left unused."),
    ]


def importance_plot(importances: list[dict[str, Any]], score: str, folder: Path) -> Figure:
    """Horizontal bars: how much the test score worsens when each feature is shuffled."""
    ordered = sorted(importances, key=lambda item: item["mean"])[-25:]
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 0.3 * len(ordered) + 1.2))
    axis.barh(
        [item["feature"] for item in ordered],
        [item["mean"] for item in ordered],
        xerr=[item["std"] for item in ordered],
        color="C0",
    )
    axis.axvline(0, color="0.5", lw=0.8)
    axis.set_xlabel(f"loss of test {score} when the feature is shuffled")
    save_figure(figure, folder / "permutation_importance.png")
    return Figure(
        "permutation_importance.png",
        "Permutation feature importance",
        f"Each raw feature column shuffled on the test split; bars are the mean worsening of "
        f"{score} (error bars: spread over repeats). Near zero or negative: the model does "
        "not rely on it.",
    )


def latent_picture(
    encoder: Any,
    x: np.ndarray,
    groups: np.ndarray,
    names: list[str],
    title: str,
    folder: Path,
) -> Figure:
    """``latent_space.png``: the encoder's codes of ``x`` on their first two principal
    components, one colour per group (``names[g]`` for group ``g``)."""
    from sklearn.decomposition import PCA

    codes = np.asarray(encoder.predict(x, batch_size=1024, verbose=0)).reshape(len(x), -1)
    if codes.shape[1] > 2:
        codes = PCA(n_components=2, random_state=0).fit_transform(codes)
    elif codes.shape[1] == 1:
        codes = np.column_stack([codes[:, 0], np.zeros(len(codes))])
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.6, 4.6))
    colours = plt.get_cmap("tab10")
    for group in np.unique(groups):
        chosen = groups == group
        axis.scatter(
            codes[chosen, 0], codes[chosen, 1], s=8, alpha=0.6, color=colours(int(group) % 10),
            label=f"{names[int(group)]} ({int(chosen.sum())})",
        )  # fmt: skip
    axis.set_xlabel("latent component 1")
    axis.set_ylabel("latent component 2")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8, markerscale=2)
    save_figure(figure, folder / "latent_space.png")
    return Figure("latent_space.png", "Latent space", title)


# === The page ===


def task_figures(metrics: dict[str, Any], run_dir: Path) -> list[Figure]:
    """The task's plots from ``test_outputs.npz`` and the pictures the task drew itself."""
    figures: list[Figure] = []
    task = metrics.get("task")
    path = run_dir / TEST_OUTPUTS
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            y, outputs = saved["y_true"], saved["outputs"]
        names = metrics.get("data", {}).get("class_names") or []
        if task == "classification":
            names = names or [str(i) for i in range(outputs.shape[-1])]
            figures.append(confusion_matrix_plot(y, outputs.argmax(axis=-1), names, run_dir))
        elif task in ("binary", "anomaly"):
            scores = outputs.reshape(len(outputs))
            threshold = float(metrics.get("decision", {}).get("threshold", 0.5))
            figures += ranking_plots(y, scores, threshold, run_dir)
            names = names or ["0", "1"]
            note = f" at the threshold {threshold:.3g} chosen on validation"
            predicted = (scores >= threshold).astype(int)
            figures.append(confusion_matrix_plot(y, predicted, names, run_dir, note))
        elif task == "regression":
            figures += regression_plots(y.reshape(-1), outputs.reshape(-1), run_dir)
    for filename, (title, caption) in DRAWN_BY_TASKS.items():
        if (run_dir / filename).is_file():
            figures.append(Figure(filename, title, caption))
    return figures


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

    table = pd.read_csv(path)
    return {column: table[column].tolist() for column in table.columns if column != "epoch"}


def write_report(run_dir: str | Path) -> Path:
    """Draw the run's pictures and write ``report.html`` into ``run_dir``; return its path."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise DltkError(
            f"{run_dir} has no metrics.json: it is not a finished run directory; pass a "
            "folder under runs/<recipe>/ that a completed dltk recipe/train wrote."
        )
    metrics = read_json(metrics_path)
    history = _history(run_dir)
    figures: list[Figure] = []
    curves = learning_curves(history, metrics.get("best_epoch"), run_dir)
    if curves is not None:
        figures.append(curves)
    figures += task_figures(metrics, run_dir)
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
        "<h2>Is it overfitting</h2>",
        f"<p class='{'warn' if note else 'ok'}'>"
        + escape(note or _no_overfitting(history, metrics))
        + "</p>",
        "<h2>What it cost</h2>",
        _cost_table(metrics),
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


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return html.escape(str(value))
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return html.escape(str(value))


def _scores_table(metrics: dict[str, Any], headline_name: str) -> str:
    """Test scores of the network and every baseline, one column each."""
    models = [("network", metrics.get("test", {}))]
    models += [(b["name"], b.get("test", {})) for b in metrics.get("baselines", [])]
    names = [
        key
        for key, value in metrics.get("test", {}).items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    head = "".join(f"<th>{html.escape(label)}</th>" for label, _ in models)
    rows = []
    for key in names:
        cells = "".join(f"<td>{_number(scores.get(key, ''))}</td>" for _, scores in models)
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
        "<tr>" + "".join(f"<td>{_number(v) if v is not None else '—'}</td>" for v in row) + "</tr>"
        for row in rows
    )
    extra = (
        f"<p class='meta'>peak memory {_number(cost.get('peak_memory_mib'))} MiB · devices "
        f"{html.escape(', '.join(cost.get('devices', [])) or 'cpu')} · epochs run "
        f"{_number(metrics.get('epochs_run'))}</p>"
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
        f"{html.escape(objective)} {_number(float(best[objective]))}; re-run it with "
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
