"""A ``dltk tune`` job from start to end: this process's place in a chief/worker search,
the search itself (in chunks of trials, each in a fresh process, where a backend keeps
memory from trial to trial), and the retraining of the best configuration."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import yaml

from dltoolkit.config import RunConfig, load_config, with_values
from dltoolkit.errors import DltkError
from dltoolkit.runner import RunResult, run
from dltoolkit.tasks import get_task
from dltoolkit.tuning.hypermodel import cross_validated
from dltoolkit.tuning.search import (
    CHUNK_ENVIRONMENT,
    TOTAL_ENVIRONMENT,
    SearchResult,
    distributed,
    prepare_search,
    print_results,
    search,
)
from dltoolkit.tuning.space import SearchSpace, flatten


def oracle_roles(chief: str | None, worker: str | None, worker_id: str) -> None:
    """Set KerasTuner's environment for a chief (serving the oracle at ``chief``) or a
    worker (asking the oracle at ``worker``), both ``HOST:PORT``."""
    if chief and worker:
        raise DltkError("pass --chief or --worker, not both: a process is one or the other.")
    for role, value, flag in (("chief", chief, "--chief"), (worker_id, worker, "--worker")):
        if value is None:
            continue
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise DltkError(f"{flag} {value!r} is not HOST:PORT (e.g. {flag} 127.0.0.1:8000).")
        os.environ.update(
            KERASTUNER_TUNER_ID=role, KERASTUNER_ORACLE_IP=host, KERASTUNER_ORACLE_PORT=port
        )


def run_search(
    config: RunConfig,
    space: SearchSpace,
    space_path: Path,
    output: str,
    *,
    tuner: str | None,
    max_trials: int | None,
    overwrite: bool,
    trials_per_process: int | None,
    arguments: Sequence[str],
    echo: Callable[[str], None] = print,
) -> SearchResult | None:
    """Search ``space`` over ``config``, ``trials_per_process`` trials at a time in fresh
    processes where that is set and helps (default: 10 on TensorFlow, whose memory grows
    with every trial; all in this process elsewhere). ``arguments`` are the ``dltk tune``
    arguments that rebuild this configuration in a chunk's process (recipe, ``--set``,
    ``--config``)."""
    tuner_name = tuner or space.tuner
    total = max_trials or space.max_trials
    if trials_per_process is None:
        trials_per_process = 10 if keras.backend.backend() == "tensorflow" else 0
    chunked = (
        0 < trials_per_process < total
        and tuner_name != "hyperband"  # its budget is not a number of trials
        and not distributed()
        and CHUNK_ENVIRONMENT not in os.environ
    )
    if not chunked:
        return search(
            config,
            space,
            output,
            tuner=tuner,
            max_trials=max_trials,
            overwrite=overwrite,
            echo=echo,
        )
    # Checked here once: bad spaces fail before any process starts a trial.
    prepare_search(config, space, output, tuner_name, overwrite)
    command = [sys.executable, "-m", "dltoolkit", "tune", *arguments, "--space",
               str(space_path), "--tuner", tuner_name, "--trials-per-process", "0",
               "--backend", keras.backend.backend(), "--seed", str(config.seed),
               "--output", output, "--data", config.data.source]  # fmt: skip
    return search_in_chunks(
        command, Path(output) / config.name, total, trials_per_process, overwrite, echo=echo
    )


def retrain_best(
    result: SearchResult,
    recipe: str,
    overrides: Sequence[str],
    override_files: Sequence[str],
    apply: Callable[[RunConfig], RunConfig],
    echo: Callable[[str], None] = print,
) -> RunResult:
    """Train the best configuration of a finished search, evaluate it on test and export
    it: the winning trial's values over the user's settings (``apply`` sets the command's
    flags again), refitted on training + validation rows for the best trial's epochs
    where the task refits that way and trials were scored on validation."""
    best_file = result.directory / "best.yaml"
    best = with_values(
        load_config(recipe, overrides, override_files),
        flatten(yaml.safe_load(best_file.read_text())),
    )
    # Cross-validated trials have no single best epoch, and a calibrated model needs its
    # validation rows held out: they retrain as the recipe does.
    if (
        get_task(best).refits_on_validation
        and not cross_validated(result.objective)
        and best.train.calibration == "none"
    ):
        best = with_values(
            best,
            {
                "train.refit_on_validation": True,
                "train.early_stopping.patience": None,
                "train.epochs": int(result.results[0]["best_epoch"] or 0) + 1,
            },
        )
    best = apply(best)
    best.backend = keras.backend.backend()
    echo(f"retraining the best configuration ({best_file})")
    return run(best, echo=echo)


def completed_trials(directory: Path) -> int:
    """Trials of the search in ``directory`` that KerasTuner recorded as completed."""
    count = 0
    for path in (directory / "kerastuner").glob("trial_*/trial.json"):
        count += json.loads(path.read_text()).get("status") == "COMPLETED"
    return count


def search_in_chunks(
    command: list[str],
    directory: Path,
    total: int,
    per_process: int,
    overwrite: bool,
    echo: Callable[[str], None] = print,
) -> SearchResult | None:
    """Run a search ``per_process`` trials at a time, each chunk in a fresh process that
    resumes it (``command``: the ``dltk tune`` arguments without ``--max-trials``), so
    memory a backend keeps after a trial is returned when the chunk's process ends.

    Returns None when no trial completed; the ranked results are in ``directory``.
    """
    import subprocess

    import pandas as pd

    environment = {**os.environ, CHUNK_ENVIRONMENT: "1", TOTAL_ENVIRONMENT: str(total)}
    done = 0 if overwrite else completed_trials(directory)
    first = True
    while done < total:
        cap = min(done + per_process, total)
        extra = ["--overwrite"] if overwrite and first else []
        result = subprocess.run([*command, "--max-trials", str(cap), *extra], env=environment)
        if result.returncode != 0:
            raise DltkError(
                f"a search process for trials {done + 1}-{cap} failed (exit code "
                f"{result.returncode}); run the same command again to resume."
            )
        now = completed_trials(directory)
        if now == done:  # the oracle has no new values to try
            break
        done, first = now, False
    results = directory / "results.csv"
    if not results.is_file():
        return None
    table = pd.read_csv(results)
    recorded = json.loads((directory / "search.json").read_text())
    paths = [c for c in table.columns if c.startswith(("model.", "train."))]
    print_results(directory, table, paths, echo)
    return SearchResult(
        directory,
        table.to_dict("records"),
        {},
        recorded["objective"],
        recorded["direction"],
    )
