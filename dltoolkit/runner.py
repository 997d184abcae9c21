"""The one run loop: data -> model -> fit -> evaluate -> baselines -> run directory ->
report -> export, for every task and every strategy.

The loop asks the run's task (:mod:`dltoolkit.tasks`) for everything that differs between
kinds of problem and does the rest itself: placement and the worker branch, the run
directory and resuming into it, config.yaml, cross-validation or walk-forward folds,
metrics.json, backups, the report and the SavedModel export. Call :func:`run` after the
Keras backend has been chosen (``dltoolkit.backend.use_backend``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit import distribute
from dltoolkit.config import RunConfig
from dltoolkit.export import export_saved_model, serving_head
from dltoolkit.report import write_report
from dltoolkit.runs import read_run_metrics, write_json, write_text_atomic
from dltoolkit.tasks import Task, get_task, task_class, with_headline
from dltoolkit.tasks.base import number
from dltoolkit.training import Fitted, drop_backups, open_run_dir, resolve, run_facts


@dataclasses.dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path | None  # None on a worker that is not the chief
    metrics: dict[str, Any]
    export_path: Path | None


def configure(config: RunConfig) -> tuple[RunConfig, Task]:
    """The config resolved (builder defaults filled in, Keras-level settings checked) and
    its task, whose own rules are checked too: every error before anything is written."""
    resolved = resolve(config)
    return resolved, get_task(resolved)


def run(
    config: RunConfig, echo: Callable[[str], None] = print, resume: Path | None = None
) -> RunResult:
    """Train, evaluate and export one configured run; return where everything went.

    Everything that can fail on bad input (config, data, model arguments) is checked before
    the run directory is created, so a failed start leaves nothing behind. A run that was
    interrupted (killed mid-training) is resumed into its own run directory by the same
    command, or by ``resume`` (its run directory).
    """
    placement = distribute.activate(config)
    config, task = configure(config)
    keras.utils.set_random_seed(config.seed)
    data = task.prepare_data()
    model = task.new_model(data)
    folds = int(config.data.folds or 0)
    if not placement.chief:  # train what the chief trains, in the same order; write nothing
        for index in range(folds):
            keras.utils.set_random_seed(config.seed)
            fit_fold(task, task.fold_data(index, folds), echo)
        if folds:
            keras.utils.set_random_seed(config.seed)
        fitted = task.fit(model, data, None, config.train.verbose, echo)
        echo(
            f"worker {placement.worker_index}: trained {len(fitted.history['loss'])} epochs; "
            "the chief writes the run directory"
        )
        return RunResult(run_dir=None, metrics={}, export_path=None)

    run_dir, resumed = open_run_dir(config, resume)
    write_text_atomic(run_dir / "config.yaml", config.to_yaml())
    if resumed:
        echo(f"resuming the interrupted run in {run_dir}")
    task.save_inputs(run_dir, data)
    echo(f"run directory: {run_dir}")
    echo(task.describe(data))
    if folds:
        over_folds = evaluate_folds(task, folds, echo)
        keras.utils.set_random_seed(config.seed)
    fitted = task.fit(model, data, run_dir, config.train.verbose, echo)
    evaluation = task.evaluate(fitted, data)
    baselines = task.baselines(data)
    comparison = task.compare(data, evaluation, baselines)
    evaluation.model.save(run_dir / "model.keras")

    metrics: dict[str, Any] = {
        "recipe": config.name,
        "task": config.task,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "headline": {"score": task.headline, "higher_is_better": task.higher_is_better},
        "test": evaluation.test,
        **evaluation.sections,
        # Per-row predictions of the baselines feed the artefacts, not metrics.json.
        "baselines": [without_predictions(b) for b in baselines],
        **run_facts(config, fitted),
        "data": task.data_facts(data),
    }
    if evaluation.decision is not None:
        metrics["decision"] = evaluation.decision
    if comparison is not None:
        metrics["comparison"] = comparison
    if folds:
        metrics[task.folds_entry] = over_folds
    metrics.update(task.artefacts(run_dir, data, fitted, evaluation, baselines, echo))
    write_json(run_dir / "metrics.json", metrics)
    drop_backups(config)
    echo(task.summary_line(metrics))
    if config.report.enabled:
        report(run_dir, echo)
    export_path = export(config, run_dir, metrics, echo)
    return RunResult(run_dir=run_dir, metrics=metrics, export_path=export_path)


def evaluate_folds(task: Task, count: int, echo: Callable[[str], None]) -> dict[str, Any]:
    """The network and the baselines trained and scored on each of ``count`` folds (K-fold
    cross-validation of a table, walk-forward blocks of a series); per-fold scores and, per
    model, the mean and standard deviation of every score that is a number in all folds.

    On workers other than the chief the folds are only trained (see :func:`run`)."""
    config, headline = task.config, task.headline
    per_fold = []
    held_out: dict[str, list] = {"y": [], "deep model": []}
    for index in range(count):
        keras.utils.set_random_seed(config.seed)
        data = task.fold_data(index, count)
        fitted = fit_fold(task, data, echo)
        evaluation = task.evaluate(fitted, data)
        baselines = task.baselines(data)
        scores = {"deep model": evaluation.test}
        scores.update({b["name"]: b["test"] for b in baselines})
        held_out["y"].append(np.asarray(data.y_test))
        held_out["deep model"].append((evaluation.outputs, evaluation.uncalibrated))
        for b in baselines:
            if b.get("predictions") is not None:
                pair = (b["predictions"], b.get("uncalibrated_predictions"))
                held_out.setdefault(b["name"], []).append(pair)
        per_fold.append(
            {
                "fold": index,
                **task.fold_facts(data),
                "epochs_run": len(fitted.history["loss"]),
                "scores": scores,
            }
        )
        echo(
            f"{task.fold_label(index, count, data)}: "
            + ", ".join(f"{name} {number(s.get(headline))}" for name, s in scores.items())
        )
    summary: dict[str, Any] = {"folds": count, "mean": {}, "std": {}, "per_fold": per_fold}
    for name in per_fold[0]["scores"]:
        numbers = {
            key: [fold["scores"][name].get(key) for fold in per_fold]
            for key in per_fold[0]["scores"][name]
        }
        numbers = {
            key: values
            for key, values in numbers.items()
            if all(isinstance(value, float) for value in values)
        }
        summary["mean"][name] = {key: float(np.mean(v)) for key, v in numbers.items()}
        summary["std"][name] = {key: float(np.std(v)) for key, v in numbers.items()}
    echo(
        f"{count}-fold mean {headline}: "
        + ", ".join(f"{name} {number(m.get(headline))}" for name, m in summary["mean"].items())
    )
    pooled = pooled_scores(task, held_out, count)
    if pooled:
        summary["pooled"] = pooled
    return summary


def pooled_scores(task: Task, held_out: dict[str, list], count: int) -> dict[str, Any]:
    """Each model's out-of-fold test outputs of all ``count`` folds scored together (every
    row once), where the task pools them and the model gave outputs in every fold."""
    if not task.pools_folds:
        return {}
    y = np.concatenate(held_out.pop("y"))
    pooled = {}
    for name, pairs in held_out.items():
        if len(pairs) != count:
            continue
        outputs = np.concatenate([np.asarray(o, np.float64).reshape(len(o), -1) for o, _ in pairs])
        befores = [before for _, before in pairs]
        before = None if any(b is None for b in befores) else np.concatenate(befores)
        scores = task.pooled_scores(y, outputs, before)
        if scores is not None:
            pooled[name] = scores
    return pooled


def without_predictions(baseline: dict[str, Any]) -> dict[str, Any]:
    """A baseline's entry of metrics.json: its per-row predictions feed the artefacts."""
    return {k: v for k, v in baseline.items() if not k.endswith("predictions")}


def fit_fold(task: Task, data: Any, echo: Callable[[str], None] = print) -> Fitted:
    """A new network fitted on one fold, without a run directory or a progress log."""
    return task.fit(task.new_model(data), data, None, 0, echo)


def report(run_dir: Path, echo: Callable[[str], None]) -> None:
    """Write the run's report.html; a failure is reported without losing the finished run."""
    try:
        path = write_run_report(run_dir)
    except Exception as error:  # the run itself is complete and saved by now
        echo(
            f"report.html could not be written ({type(error).__name__}: {error}); the run is "
            f"complete, retry with: dltk report {run_dir}"
        )
        return
    echo(f"report: {path}")


def write_run_report(run_dir: str | Path) -> Path:
    """(Re)draw a finished run's report.html with its task's figures; return its path."""
    run_dir = Path(run_dir)
    metrics = read_run_metrics(run_dir)
    figures = task_class(metrics["task"]).report_figures(metrics, run_dir) if metrics else []
    return write_report(run_dir, figures, complete=with_headline)


def export(
    config: RunConfig, run_dir: Path, metrics: dict[str, Any], echo: Callable[[str], None]
) -> Path | None:
    """Export ``run_dir/model.keras`` when ``export.enabled``; record where in metrics.json."""
    if not config.export.enabled:
        return None
    export_path = export_saved_model(
        run_dir / "model.keras",
        config.export.directory,
        config.export.model_name or config.name,
        serving_head(metrics),
    )
    metrics["export"] = {"path": str(export_path), "version": int(export_path.name)}
    write_json(run_dir / "metrics.json", metrics)
    echo(f"SavedModel: {export_path}")
    return export_path
