"""Hyperparameter search jobs: a recipe, a search space (``tuning/RECIPE.yaml``) and one of
KerasTuner's stock tuners.

The search space is the only thing written here: :class:`RecipeHyperModel` declares the
space's parameters, applies the sampled values to the recipe's configuration, and builds
and fits the model with the same builders, compile step and callbacks as ``dltk recipe``.
KerasTuner's RandomSearch, BayesianOptimization and Hyperband run it, keep its state in
``<output>/<recipe>/`` (a re-run resumes; completed trials are not repeated) and, with
KERASTUNER_TUNER_ID / KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT set, run it as a
chief with workers. KerasTuner clears the Keras session before each trial's model is built.
At the end the trials are ranked in ``results.csv`` and the best values written as an
overrides file, ``best.yaml``, that ``dltk recipe RECIPE --config best.yaml`` re-runs.
"""

from __future__ import annotations

import copy
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

from dltoolkit.config import SERIES_TASKS, RunConfig, from_dict
from dltoolkit.cost import peak_memory_mib
from dltoolkit.errors import ConfigError, DltkError, did_you_mean
from dltoolkit.runs import write_text_atomic
from dltoolkit.search_space import SearchSpace, check_tuner, overrides_yaml

STATS_FILE = "trial_stats-{tuner_id}.json"
# Set in the child processes of a search run in chunks (see search_in_chunks).
CHUNK_ENVIRONMENT = "DLTK_SEARCH_CHUNK"
TOTAL_ENVIRONMENT = "DLTK_SEARCH_TOTAL"
# Objectives named cv_<score> rank trials by the K-fold cross-validation mean of <score>.
CV_PREFIX = "cv_"


def distributed() -> bool:
    """Whether this process is part of a chief/worker search (KerasTuner's own rule: the
    oracle's address is set)."""
    return "KERASTUNER_ORACLE_IP" in os.environ


def cross_validated(objective: str) -> bool:
    """Whether ``objective`` (e.g. ``cv_roc_auc``) scores each trial by the K-fold
    cross-validation mean of one of the task's test scores (``data.folds``)."""
    return objective.startswith(CV_PREFIX)


def cv_score(objective: str) -> str:
    """The test score a ``cv_<score>`` objective averages over the folds."""
    return objective[len(CV_PREFIX) :]


def objective_of(config: RunConfig, space: SearchSpace) -> keras_tuner.Objective:
    """The space's objective, else the recipe's early-stopping monitor; the direction is
    the space's, else max for accuracies and AUCs and min otherwise."""
    default = "val_silhouette" if config.task == "clustering" else None
    name = space.objective or default or config.train.early_stopping.monitor
    from dltoolkit.runs import higher_is_better

    direction = space.direction or ("max" if higher_is_better(name) else "min")
    return keras_tuner.Objective(name, direction)


def with_values(config: RunConfig, values: dict[str, Any]) -> RunConfig:
    """``config`` with each dotted ``path: value`` set, validated."""
    raw = copy.deepcopy(config.to_dict())
    for path, value in values.items():
        node = raw
        *parents, last = path.split(".")
        for depth, key in enumerate(parents):
            if not isinstance(node.get(key), dict):
                section = ".".join(parents[: depth + 1])
                raise ConfigError(f"{path}: {section} is not a config section.")
            node = node[key]
        node[last] = value
    return from_dict(raw)


def check_space(config: RunConfig, space: SearchSpace) -> None:
    """Every path names a builder hyperparameter or a train setting, and every end of
    every range makes a valid configuration: errors before any trial starts."""
    from dltoolkit.models.registry import builder_hyperparameters
    from dltoolkit.training import resolve

    try:
        space.sample(keras_tuner.HyperParameters())
    except ValueError as error:
        raise ConfigError(f"{space.source}: KerasTuner refuses the space: {error}") from None
    builder = config.model["builder"]
    model_keys = list(builder_hyperparameters(builder))
    for parameter in space.parameters:
        section, _, rest = parameter.path.partition(".")
        if section == "model" and rest not in model_keys:
            raise ConfigError(
                f"{space.source}: {parameter.path} is not a hyperparameter of builder "
                f"{builder!r}{did_you_mean(rest, model_keys)}; its hyperparameters: "
                f"{', '.join(model_keys)}."
            )
        for value in parameter.candidates():
            try:
                resolve(with_values(config, {parameter.path: value}))
            except DltkError as error:
                raise ConfigError(
                    f"{space.source}: {parameter.path} = {value!r}: {error}"
                ) from None


class RecipeHyperModel(keras_tuner.HyperModel):
    """The recipe's model with the space's values: built and fitted as ``dltk recipe`` does."""

    def __init__(self, config: RunConfig, space: SearchSpace, data: Any):
        super().__init__(name=config.name)
        self.config = config
        self.space = space
        self.data = data

    def trial_config(self, hp: keras_tuner.HyperParameters) -> RunConfig:
        """The recipe's configuration with this trial's values."""
        from dltoolkit.training import resolve

        return resolve(with_values(self.config, self.space.sample(hp)))

    def check_builds(self) -> None:
        """Build the model at every end of every range (the builders check their
        arguments), so a bad range fails before the first trial."""
        from dltoolkit.training import resolve

        for parameter in self.space.parameters:
            for value in parameter.candidates():
                try:
                    self.build_config(resolve(with_values(self.config, {parameter.path: value})))
                except DltkError as error:
                    raise ConfigError(
                        f"{self.space.source}: {parameter.path} = {value!r}: {error}"
                    ) from None
                finally:
                    keras.backend.clear_session()

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """Declare the space on ``hp`` and build and compile the recipe's model."""
        return self.build_config(self.trial_config(hp))

    def build_config(self, config: RunConfig) -> keras.Model:
        """The compiled model of one trial's configuration (in the strategy's scope)."""
        from dltoolkit import distribute

        with distribute.current().scope():
            return self._build_config(config)

    def _build_config(self, config: RunConfig) -> keras.Model:
        if config.task == "clustering":
            from dltoolkit.training import build_model

            return build_model(config, self.data)
        if config.task in SERIES_TASKS:
            from dltoolkit.timeseries import new_model

            return new_model(config, self.data)
        from dltoolkit.training import build_model, compile_model, oversampled, steps_per_epoch

        keras.utils.set_random_seed(config.seed)
        data = oversampled(config, self.data)
        model = build_model(config, data)
        compile_model(model, config, steps_per_epoch(config, data))
        return model

    def fit(self, hp, model, *args, callbacks=None, epochs=None, **kwargs):
        """``model.fit`` on the task's arrays with the trial's batch size, epochs (or
        Hyperband's), early stopping and learning-rate settings."""
        from dltoolkit.tasks import get_task
        from dltoolkit.training import callbacks as standard_callbacks
        from dltoolkit.training import class_weights, oversampled

        config = self.trial_config(hp)
        kwargs.pop("verbose", None)  # search(verbose=...) is the tuner's, not the fit's
        data = self.data if config.task in SERIES_TASKS else oversampled(config, self.data)
        x_train, y_train, x_val, y_val = get_task(config.task).fit_arrays(data)
        weights = None
        if config.task not in SERIES_TASKS:
            weights = class_weights(config, data.y_train, data.num_classes)
        return model.fit(
            x_train,
            y_train,
            validation_data=(x_val, y_val),
            epochs=epochs or config.train.epochs,
            batch_size=config.train.batch_size,
            callbacks=[*(callbacks or []), *standard_callbacks(config, None)],
            class_weight=weights,
            verbose=0,
            **kwargs,
        )

    def score_names(self) -> list[str]:
        """The test scores of this recipe's task (from the untrained model's outputs on the
        validation rows: the same keys every trained fold reports)."""
        from dltoolkit.tasks import get_task
        from dltoolkit.training import predict_outputs

        task = get_task(self.config.task)
        try:
            model = self.build_config(self.config)
            outputs = predict_outputs(model, self.data.x_val, self.config.train.batch_size)
        finally:
            keras.backend.clear_session()
        decision = task.decision(self.data.y_val, outputs, self.config.train.threshold)
        return [key for key, value in task.scores(self.data.y_val, outputs, decision).items()
                if isinstance(value, float)]  # fmt: skip

    def run_cross_validation(self, hp: keras_tuner.HyperParameters, objective: str) -> dict:
        """A trial scored by ``objective`` (``cv_<score>``): the mean over ``data.folds``
        folds of the network's test ``<score>``, every fold trained as ``dltk recipe``
        trains it (its own validation rows for early stopping and the threshold)."""
        from dltoolkit.training import cross_validate

        summary = cross_validate(self.trial_config(hp), echo=lambda line: None)
        return {objective: summary["mean"]["deep model"][cv_score(objective)]}

    def run_clustering(self, hp: keras_tuner.HyperParameters) -> dict[str, float]:
        """A ``clustering`` trial: DEC/IDEC fitted on the training rows (pretraining for
        ``train.epochs``, or Hyperband's epochs), scored by the silhouette of the
        validation rows assigned to its segments."""
        from dltoolkit.models.dec import predict_clusters
        from dltoolkit.segmentation import cluster_quality, fit_segments
        from dltoolkit.training import build_model

        config = self.trial_config(hp)
        keras.utils.set_random_seed(config.seed)
        model = build_model(config, self.data)
        epochs = int(hp.values.get("tuner/epochs", config.train.epochs))
        fit_segments(config, model, self.data.x_train, pretrain_epochs=epochs)
        segments = predict_clusters(model, self.data.x_val)
        quality = cluster_quality(self.data.x_val, segments, config.seed)
        return {f"val_{name}": value for name, value in quality.items()}


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
            if self.hypermodel.config.task == "clustering":
                return self.hypermodel.run_clustering(trial.hyperparameters)
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
    from dltoolkit import distribute
    from dltoolkit.training import prepare_data, resolve

    if config.distribute.strategy == "multi_worker":
        raise ConfigError(
            "dltk tune spreads trials over machines with --chief/--worker; inside a trial use "
            "distribute.strategy mirrored (TensorFlow) or data_parallel (JAX), not multi_worker."
        )
    distribute.activate(config)
    config = resolve(config)
    check_tuner(tuner)
    check_space(config, space)
    objective = objective_of(config, space)
    if cross_validated(objective.name) and (
        not config.data.folds or config.task == "clustering" or config.task in SERIES_TASKS
    ):
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
    if config.task in SERIES_TASKS:
        from dltoolkit.timeseries import prepare_series

        data = prepare_series(config)
    elif config.task == "clustering":
        from dltoolkit.features import load_table_dataset

        data = load_table_dataset(config.data, config.seed, classes=False, labelled=False)
    else:
        data = prepare_data(config)
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
    from dltoolkit.report import write_search_report

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
