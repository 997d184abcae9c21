"""The Python API: what the ``dltk`` commands do, as functions a notebook can call.

>>> import dltoolkit
>>> result = dltoolkit.run("cnn-image", overrides={"train.epochs": 3}, backend="jax")
>>> result.metrics["test"]["accuracy"]

Each function chooses the Keras backend first (``backend=``, else the config's, else
``$KERAS_BACKEND``, else TensorFlow) and imports Keras only then: Keras fixes its backend
when it is first imported, so the machinery is imported inside the functions.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dltoolkit.backend import requested_backend, use_backend
from dltoolkit.config import (
    RunConfig,
    apply_overrides,
    from_dict,
    load_config,
    merge,
    read_yaml,
    with_values,
)
from dltoolkit.errors import DltkError
from dltoolkit.runs import compare_runs, find_runs, read_run_metrics

Overrides = Mapping[str, Any] | Sequence[str] | None


def configure(
    recipe_or_file: str | Path | RunConfig,
    overrides: Overrides = None,
    override_files: Sequence[str | Path] = (),
    *,
    data: str | None = None,
    seed: int | None = None,
    output_dir: str | None = None,
) -> RunConfig:
    """A run's configuration: a recipe by name, a YAML file or a RunConfig, with override
    files merged, ``overrides`` applied (``{"train.epochs": 3}`` or ``["train.epochs=3"]``)
    and the data source, seed and output folder set where given."""
    strings = [] if overrides is None or isinstance(overrides, Mapping) else list(overrides)
    if isinstance(recipe_or_file, RunConfig):
        raw = recipe_or_file.to_dict()
        for path in override_files:
            raw = merge(raw, read_yaml(path))
        config = from_dict(apply_overrides(raw, strings))
    else:
        config = load_config(recipe_or_file, strings, override_files)
    if isinstance(overrides, Mapping):
        config = with_values(config, dict(overrides))
    if data is not None:
        config.data.source = data
    if seed is not None:
        config.seed = seed
    if output_dir is not None:
        config.output_dir = output_dir
    return config


def override_strings(overrides: Overrides) -> list[str]:
    """``--set`` strings from a mapping of dotted paths to values (JSON is YAML), or the
    strings given."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{path}={json.dumps(value)}" for path, value in overrides.items()]
    return list(overrides)


def start_backend(config: RunConfig | None, backend: str | None) -> str:
    """Choose this process's Keras backend (and its distribution environment)."""
    name = use_backend(requested_backend(backend, config.backend if config else None))
    if config is not None:
        from dltoolkit.distribute import prepare_environment

        config.backend = name
        prepare_environment(config.distribute, name)
    return name


def run(
    recipe_or_config: str | Path | RunConfig,
    overrides: Overrides = None,
    *,
    backend: str | None = None,
    resume: str | Path | None = None,
    echo: Callable[[str], None] = print,
    **settings: Any,
) -> Any:
    """Train, evaluate and export one run of a recipe, a YAML file or a RunConfig.

    Args:
        recipe_or_config: ``"cnn-image"``, ``"my-run.yaml"`` or a RunConfig.
        overrides: ``{"train.epochs": 3}`` or ``["train.epochs=3"]``.
        backend: ``tensorflow``, ``jax`` or ``torch``.
        resume: an interrupted run's directory to continue.
        echo: where progress lines go.
        **settings: ``override_files``, ``data``, ``seed``, ``output_dir`` (see
            :func:`configure`).

    Returns:
        A ``RunResult``: ``run_dir``, ``metrics`` (metrics.json), ``export_path``.
    """
    config = configure(recipe_or_config, overrides, **settings)
    start_backend(config, backend)
    from dltoolkit import distribute
    from dltoolkit.runner import run as run_loop

    result = run_loop(config, echo=echo, resume=Path(resume) if resume else None)
    distribute.current().finish()
    return result


def resolved(
    recipe_or_file: str | Path, overrides: Overrides = None, backend: str | None = None
) -> RunConfig:
    """A recipe's fully resolved configuration (builder defaults filled in, the task's
    rules checked), as ``dltk recipe show`` prints it."""
    config = configure(recipe_or_file, overrides)
    use_backend(requested_backend(backend, config.backend))
    from dltoolkit.runner import configure as resolve

    return resolve(config)[0]


def tune(
    recipe: str,
    overrides: Overrides = None,
    *,
    space: str | Path | None = None,
    tuner: str | None = None,
    max_trials: int | None = None,
    overwrite: bool = False,
    retrain_best: bool = False,
    chief: str | None = None,
    worker: str | None = None,
    worker_id: str = "tuner0",
    trials_per_process: int | None = None,
    backend: str | None = None,
    output_dir: str | None = None,
    echo: Callable[[str], None] = print,
    **settings: Any,
) -> Any:
    """Search a recipe's hyperparameters with KerasTuner (resumed when run again).

    Args:
        recipe: the recipe's name.
        overrides: settings applied before the search (as for :func:`run`).
        space: a search-space YAML (default: ``tuning/RECIPE.yaml``).
        tuner: ``random``, ``bayesian`` or ``hyperband`` (default: the space's).
        max_trials: trials (default: the space's).
        overwrite: start afresh instead of resuming.
        retrain_best: then train the best configuration, evaluate and export it.
        chief, worker: ``HOST:PORT`` of a distributed search's oracle (serve it, or ask it).
        worker_id: this worker's unique name.
        trials_per_process: trials per fresh process (default: 10 on TensorFlow, else all).
        backend: the Keras backend.
        output_dir: the searches' root folder (default ``searches``).
        echo: where progress lines go.
        **settings: ``override_files``, ``data``, ``seed`` (see :func:`configure`).

    Returns:
        A ``SearchResult`` (None where no trial completed).
    """
    from dltoolkit.tuning import check_tuner, load_space, tuning_dir

    strings = override_strings(overrides)
    override_files = [str(path) for path in settings.pop("override_files", ())]
    config = configure(recipe, strings, override_files, **settings)
    space_path = Path(space) if space else tuning_dir() / f"{config.name}.yaml"
    if not space_path.is_file():
        raise DltkError(
            f"no search space at {space_path}; pass --space FILE (see tuning/ for examples)."
        )
    parsed = load_space(space_path)
    if tuner is not None:
        check_tuner(tuner)
    if chief and worker:
        raise DltkError("pass --chief or --worker, not both: a process is one or the other.")
    start_backend(config, backend)
    from dltoolkit.tuning.jobs import oracle_roles, run_search
    from dltoolkit.tuning.jobs import retrain_best as retrain

    oracle_roles(chief, worker, worker_id)
    output = output_dir or "searches"
    arguments = [recipe, *[f"--set={item}" for item in strings]]
    arguments += [f"--config={item}" for item in override_files]
    result = run_search(
        config,
        parsed,
        space_path,
        output,
        tuner=tuner,
        max_trials=max_trials,
        overwrite=overwrite,
        trials_per_process=trials_per_process,
        arguments=arguments,
        echo=echo,
    )
    if retrain_best and result is not None and result.results:

        def again(best: RunConfig) -> RunConfig:
            return configure(best, data=settings.get("data"), seed=settings.get("seed"))

        retrain(result, recipe, strings, override_files, again, echo)
    return result


def evaluate(run_dir: str | Path, backend: str | None = None) -> dict[str, Any]:
    """Re-score a run's ``model.keras`` on its test split."""
    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml")
    use_backend(requested_backend(backend, config.backend))
    from dltoolkit.evaluation import evaluate_run

    return evaluate_run(run_dir)


def export_model(
    model_path: str | Path, name: str | None = None, repository: str | None = None
) -> Path:
    """Export a run directory's model (or a ``.keras`` file) as the next SavedModel version
    of ``repository/name`` (defaults: the run's export settings, or the file's name)."""
    model_path = Path(model_path)
    path = model_path / "model.keras" if model_path.is_dir() else model_path
    defaults = {"name": path.stem, "repository": "saved_models"}
    if model_path.is_dir():
        config = load_config(model_path / "config.yaml")
        defaults = {
            "name": config.export.model_name or config.name,
            "repository": config.export.directory,
        }
    written = read_run_metrics(path.parent)
    # Writing happens under TensorFlow; another backend hands it to a TensorFlow process.
    use_backend(requested_backend(None, None))
    from dltoolkit.export import export_saved_model, serving_head

    return export_saved_model(
        path,
        repository or defaults["repository"],
        name or defaults["name"],
        serving_head(written),
    )


def predictions(
    model_path: str | Path,
    source: str,
    *,
    batch_size: int = 256,
    chunk_rows: int = 8192,
    backend: str | None = None,
) -> Any:
    """Predictions of a run's model (or a ``.keras`` file) for every input of ``source``,
    streamed a chunk at a time: a ``PredictionStream`` (``total``, ``unit``, and
    ``batches`` of ``(rows, progress)``)."""
    model_path = Path(model_path)
    path = model_path / "model.keras" if model_path.is_dir() else model_path
    use_backend(requested_backend(backend, None))
    from dltoolkit.predict import stream_predictions

    return stream_predictions(path, source, batch_size, read_run_metrics(path.parent), chunk_rows)


def list_runs(runs_dir: str | Path = "runs", recipe: str | None = None) -> list[dict[str, Any]]:
    """The finished runs under ``runs_dir`` (optionally one recipe's), oldest first: when,
    what, the headline score beside the best baseline's, parameters, training time."""
    return find_runs(runs_dir, recipe, complete=completed)


def compare(run_dirs: Sequence[str | Path]) -> str:
    """Runs side by side as a text table: cost, every test score, the best baseline and
    the settings in which their configurations differ."""
    return compare_runs([Path(d) for d in run_dirs], complete=completed)


def completed(metrics: dict[str, Any]) -> dict[str, Any]:
    """A run's metrics.json with what older runs lack (the headline entry) filled in by
    its task; Keras is imported only for such a run."""
    if "headline" in metrics:
        return metrics
    keep_backend()
    from dltoolkit.tasks import with_headline

    return with_headline(metrics)


def keep_backend() -> None:
    """Choose the default backend unless Keras is imported already (it keeps its own)."""
    if "keras" not in sys.modules:
        use_backend(requested_backend(None, None))


def draw_report(folder: str | Path) -> Path:
    """(Re)draw a run's report.html, or a search folder's; return its path."""
    if not Path(folder).is_dir():
        raise DltkError(f"{str(folder)!r} is not a folder; pass a run directory (dltk runs list).")
    folder = Path(folder)
    if (folder / "search.json").is_file():
        from dltoolkit.report import write_search_report

        return write_search_report(folder)
    keep_backend()  # the run's task draws some of its figures
    from dltoolkit.runner import write_run_report

    return write_run_report(folder)
