"""Hyperparameter search jobs: a recipe, a search space (``tuning/RECIPE.yaml``) and one of
KerasTuner's stock tuners.

The search space is the only thing written here (:mod:`.hypermodel`); KerasTuner's
RandomSearch, BayesianOptimization and Hyperband run it, keep its state in
``<output>/<recipe>/`` (a re-run resumes; completed trials are not repeated) and, with
KERASTUNER_TUNER_ID / KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT set, run it as a
chief with workers. At the end the trials are ranked in ``results.csv`` and the best
values written as an overrides file, ``best.yaml``, that ``dltk recipe RECIPE --config
best.yaml`` re-runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import numpy as np

from dltoolkit import distribute
from dltoolkit.config import RunConfig
from dltoolkit.cost import peak_memory_mib
from dltoolkit.errors import ConfigError, DltkError
from dltoolkit.report import write_search_report
from dltoolkit.runner import configure
from dltoolkit.runs import write_text_atomic
from dltoolkit.tuning.hypermodel import (
    CV_PREFIX,
    RecipeHyperModel,
    check_space,
    cross_validated,
    cv_score,
    objective_of,
)
from dltoolkit.tuning.space import SearchSpace, check_tuner, overrides_yaml

STATS_FILE = "trial_stats-{tuner_id}.json"
# Set in the child processes of a search run in chunks (see search_in_chunks).
CHUNK_ENVIRONMENT = "DLTK_SEARCH_CHUNK"
TOTAL_ENVIRONMENT = "DLTK_SEARCH_TOTAL"


def distributed() -> bool:
    """Whether this process is part of a chief/worker search (KerasTuner's own rule: the
    oracle's address is set)."""
    return "KERASTUNER_ORACLE_IP" in os.environ


def tuner_class(name: str) -> type:
    """The KerasTuner tuner class for ``random``, ``bayesian`` or ``hyperband``, with
    trial timing and a progress line per trial."""
    base = {
        "random": keras_tuner.RandomSearch,
        "bayesian": keras_tuner.BayesianOptimization,
        "hyperband": keras_tuner.Hyperband,
    }[check_tuner(name)]

    class ProgressTuner(base):
        echo: Callable[[str], None] = print
        planned: int | None = None

        def run_trial(self, trial, *args, **kwargs):
            own = self.hypermodel.run_own_trial(trial.hyperparameters)
            if own is not None:
                return own
            objective = self.oracle.objective.name
            if cross_validated(objective):
                return self.hypermodel.run_cross_validation(trial.hyperparameters, objective)
            return super().run_trial(trial, *args, **kwargs)

        def on_trial_begin(self, trial):
            super().on_trial_begin(trial)
            self._started = time.perf_counter()

        def on_trial_end(self, trial):
            seconds = time.perf_counter() - self._started
            super().on_trial_end(trial)
            stats_path = Path(self.project_dir) / STATS_FILE.format(tuner_id=self.tuner_id)
            stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
            stats[trial.trial_id] = {
                "seconds": round(seconds, 3),
                "peak_memory_mib": peak_memory_mib(),
                "process": os.getpid(),
            }
            write_text_atomic(stats_path, json.dumps(stats, indent=1))
            self._report(trial, seconds)

        def _report(self, trial, seconds: float) -> None:
            objective = self.oracle.objective.name
            score = self.oracle.get_trial(trial.trial_id).score
            best = self.oracle.get_best_trials(1)
            done = f"trial {trial.trial_id}"
            if hasattr(self.oracle, "trials"):
                completed = sum(t.status == "COMPLETED" for t in self.oracle.trials.values())
                done += f" ({completed}/{self.planned or '?'} done)"
            best_text = (
                f" | best {best[0].score:.5g} (trial {best[0].trial_id})"
                if best and best[0].score is not None
                else ""
            )
            shown = "failed" if score is None else f"{score:.5g}"
            values = ", ".join(
                f"{path.split('.', 1)[1]}={_short(value)}"
                for path, value in self.hypermodel.space.sample(
                    trial.hyperparameters.copy()
                ).items()
            )
            self.echo(f"{done}: {objective} {shown}{best_text} | {seconds:.1f} s | {values}")

    ProgressTuner.__name__ = f"Progress{base.__name__}"
    return ProgressTuner


@dataclasses.dataclass
class SearchResult:
    """Where a search left its results and what it found."""

    directory: Path
    results: list[dict[str, Any]]
    best_values: dict[str, Any]
    objective: str
    direction: str


def prepare_search(
    config: RunConfig,
    space: SearchSpace,
    output: str | Path,
    tuner: str,
    overwrite: bool,
    checked: bool = False,
) -> tuple[RecipeHyperModel, keras_tuner.Objective, Path]:
    """Everything a search needs before its first trial, checked: the resolved config,
    the space against it (unless ``checked``: every range end built once, and a ``cv_``
    objective's score found among the task's), the resume state, and the data. Returns
    the hypermodel, the objective and the search folder."""
    if config.distribute.strategy == "multi_worker":
        raise ConfigError(
            "dltk tune spreads trials over machines with --chief/--worker; inside a trial use "
            "distribute.strategy mirrored (TensorFlow) or data_parallel (JAX), not multi_worker."
        )
    distribute.activate(config)
    config, task = configure(config)
    check_tuner(tuner)
    check_space(config, space)
    objective = objective_of(config, space)
    if cross_validated(objective.name) and not (config.data.folds and task.cross_validates):
        raise ConfigError(
            f"{space.source}: objective {objective.name!r} scores each trial by K-fold "
            f"cross-validation of a table, which needs data.folds (received "
            f"{config.data.folds!r}, task {config.task!r}); set --set data.folds=5, or use a "
            "validation objective such as val_loss."
        )
    if cross_validated(objective.name) and tuner == "hyperband":
        raise ConfigError(
            f"{space.source}: objective {objective.name!r} trains data.folds models a trial, "
            "which hyperband cannot continue in stages; use --tuner random or bayesian."
        )
    directory = Path(output) / config.name
    _check_resume(directory, space, tuner, objective.name, overwrite)
    keras.utils.set_random_seed(config.seed)
    data = task.load_data()
    hypermodel = RecipeHyperModel(config, space, data)
    if not checked:
        hypermodel.check_builds()
        if cross_validated(objective.name):
            names = hypermodel.score_names()
            if cv_score(objective.name) not in names:
                raise ConfigError(
                    f"{space.source}: objective {objective.name!r} names no test score of task "
                    f"{config.task!r}; expected one of {', '.join(CV_PREFIX + n for n in names)}."
                )
    return hypermodel, objective, directory


def search(
    config: RunConfig,
    space: SearchSpace,
    output: str | Path = "searches",
    *,
    tuner: str | None = None,
    max_trials: int | None = None,
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> SearchResult:
    """Run (or resume) a search of ``space`` over ``config``; rank and save the trials.

    Args:
        config: the recipe's configuration (overrides applied).
        space: the parsed search space.
        output: root folder; the search lives in ``output/<recipe>/``.
        tuner: ``random``, ``bayesian`` or ``hyperband`` (default: the space's).
        max_trials: number of trials (default: the space's); Hyperband's budget is set
            by ``train.epochs`` instead.
        overwrite: start afresh instead of resuming.
        echo: where progress lines go.
    """
    tuner_name = check_tuner(tuner or space.tuner)
    trials = max_trials or space.max_trials
    hypermodel, objective, directory = prepare_search(
        config,
        space,
        output,
        tuner_name,
        overwrite,
        checked=bool(os.environ.get(CHUNK_ENVIRONMENT)),
    )
    config = hypermodel.config
    settings: dict[str, Any] = {
        "objective": objective,
        "directory": str(directory),
        "project_name": "kerastuner",
        "overwrite": overwrite,
        "seed": config.seed,
    }
    if tuner_name == "hyperband":
        settings.update(max_epochs=config.train.epochs, factor=3)
    else:
        settings["max_trials"] = trials
    cls = tuner_class(tuner_name)
    cls.echo = staticmethod(echo)
    total = os.environ.get(TOTAL_ENVIRONMENT, trials)  # a chunk reports the whole search's
    cls.planned = None if tuner_name == "hyperband" else int(total)
    runner = cls(hypermodel, **settings)
    directory.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        directory / "search.json",
        json.dumps(
            {
                "recipe": config.name,
                "space": space.source,
                "fingerprint": space.fingerprint(),
                "tuner": tuner_name,
                "objective": objective.name,
                "direction": objective.direction,
                "backend": keras.backend.backend(),
            },
            indent=1,
        ),
    )
    echo(
        f"search {directory}: {tuner_name} over {len(space.parameters)} parameters, "
        f"{objective.name} ({objective.direction}), "
        + (f"{trials} trials" if tuner_name != "hyperband" else f"max {config.train.epochs} epochs")
    )
    runner.search(verbose=0)
    if distributed() and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", ""):
        return SearchResult(directory, [], {}, objective.name, objective.direction)
    return summarise(directory, runner.oracle, space, objective, echo)


def _check_resume(
    directory: Path, space: SearchSpace, tuner: str, objective: str, overwrite: bool
) -> None:
    recorded = directory / "search.json"
    if overwrite or not recorded.is_file():
        return
    previous = json.loads(recorded.read_text())
    now = {"fingerprint": space.fingerprint(), "tuner": tuner, "objective": objective}
    words = {"fingerprint": "search space", "tuner": "tuner", "objective": "objective"}
    changed = [words[key] for key, value in now.items() if previous.get(key) != value]
    if changed:
        raise ConfigError(
            f"the search in {directory} was started with a different {' and '.join(changed)}; "
            "resume it unchanged, pass --overwrite to start afresh, or use another --output."
        )


def summarise(
    directory: Path,
    oracle: Any,
    space: SearchSpace,
    objective: keras_tuner.Objective,
    echo: Callable[[str], None] = print,
) -> SearchResult:
    """Rank the completed trials; write results.csv and best.yaml; print the table."""
    import pandas as pd

    stats: dict[str, dict[str, float]] = {}
    for path in sorted((directory / "kerastuner").glob(STATS_FILE.format(tuner_id="*"))):
        stats.update(json.loads(path.read_text()))
    trials = [t for t in oracle.get_best_trials(num_trials=10**6) if t.score is not None]
    paths = [p.path for p in space.parameters]
    rows = []
    for rank, trial in enumerate(trials, start=1):
        values = _trial_values(space, trial.hyperparameters)
        rows.append(
            {
                "rank": rank,
                "trial": trial.trial_id,
                **{path: values.get(path) for path in paths},
                objective.name: trial.score,
                # Hyperband continues trials from an earlier one's epochs; a cross-validated
                # trial has one best epoch per fold, so none.
                "best_epoch": None
                if cross_validated(objective.name)
                else trial.best_step + trial.hyperparameters.values.get("tuner/initial_epoch", 0),
                "seconds": stats.get(trial.trial_id, {}).get("seconds"),
                "peak_memory_mib": stats.get(trial.trial_id, {}).get("peak_memory_mib"),
            }
        )
    if not rows:
        raise DltkError(f"no trial of the search in {directory} completed; see the errors above.")
    table = pd.DataFrame(rows)
    table.to_csv(directory / "results.csv", index=False)
    best = _trial_values(space, trials[0].hyperparameters)
    header = (
        f"Best of {len(rows)} trials of the search in {directory} (trial {trials[0].trial_id}, "
        f"{objective.name} {trials[0].score:.6g}).\n"
        f"Re-run: dltk recipe {directory.name} --config {directory / 'best.yaml'}"
    )
    write_text_atomic(directory / "best.yaml", overrides_yaml(best, header))
    _search_report(directory, echo)
    if os.environ.get(CHUNK_ENVIRONMENT):
        return SearchResult(directory, rows, best, objective.name, objective.direction)
    print_results(directory, table, paths, echo)
    return SearchResult(directory, rows, best, objective.name, objective.direction)


def _search_report(directory: Path, echo: Callable[[str], None]) -> None:
    try:
        write_search_report(directory)
    except Exception as error:  # the search itself is complete and saved by now
        echo(f"report.html could not be written ({type(error).__name__}: {error})")


def print_results(directory: Path, table: Any, paths: list[str], echo: Callable) -> None:
    """The ranked trials as a text table, and where the files are."""
    with_strings = table.copy()
    for path in paths:
        with_strings[path] = with_strings[path].map(_short)
    echo(with_strings.to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    echo(f"results: {directory / 'results.csv'}; best: {directory / 'best.yaml'}")


def _trial_values(space: SearchSpace, hyperparameters: Any) -> dict[str, Any]:
    """A finished trial's values by config path (lists rebuilt from their parts)."""
    return space.sample(hyperparameters.copy())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value) if not isinstance(value, (list, np.ndarray)) else str(list(value))
