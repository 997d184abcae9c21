"""The ``dltk`` command line: a thin layer over the Python API.

Keras (and with it TensorFlow, JAX or torch) is imported only inside commands, after the
backend is chosen, so ``dltk --help`` and ``dltk recipe list`` stay fast.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from dltoolkit import __version__
from dltoolkit.config import (
    BACKENDS,
    PRECISIONS,
    STRATEGIES,
    RunConfig,
    load_config,
    read_yaml,
    recipe_names,
    recipe_path,
)
from dltoolkit.errors import DltkError
from dltoolkit.runs import read_run_metrics


class _UserError(click.ClickException):
    """A DltkError shown as ``Error: <one line>`` with exit code 2."""

    exit_code = 2


def _one_line_errors(function: Callable) -> Callable:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except DltkError as error:
            raise _UserError(str(error)) from None

    return wrapper


def _run_options(function: Callable) -> Callable:
    """Options shared by ``dltk recipe NAME`` and ``dltk train CONFIG``."""
    options = [
        click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override a config value, e.g. --set train.epochs=5 "
            "--set model.filters=[32,64]. Repeatable.",
        ),
        click.option(
            "--config",
            "override_files",
            multiple=True,
            type=click.Path(dir_okay=False),
            metavar="FILE",
            help="YAML overrides merged into the config (e.g. a search's best.yaml); --set "
            "still wins. Repeatable.",
        ),
        click.option(
            "--data",
            "data_source",
            metavar="SOURCE",
            help="Data source: builtin:NAME, images:PATH, npz:PATH, tfds:NAME, csv:PATH or "
            "parquet:PATH.",
        ),
        click.option(
            "--backend",
            type=click.Choice(BACKENDS),
            help="Keras backend (default: config, then $KERAS_BACKEND, then tensorflow).",
        ),
        click.option(
            "--seed", type=int, help="Random seed for the split, initialisation and shuffling."
        ),
        click.option(
            "--output",
            "output_dir",
            type=click.Path(file_okay=False),
            help="Root folder for run directories (default: runs).",
        ),
        click.option(
            "--strategy",
            type=click.Choice(STRATEGIES),
            help="Distribution strategy (distribute.strategy): tf.distribute's on "
            "TensorFlow, keras.distribution's data_parallel/model_parallel on JAX.",
        ),
        click.option(
            "--mixed-precision",
            type=click.Choice(PRECISIONS[1:]),
            help="Compute in half precision with float32 weights (output layer float32).",
        ),
        click.option(
            "--cluster",
            type=click.Path(dir_okay=False),
            help="multi_worker: YAML/JSON file {job: [host:port, ...]} (else TF_CONFIG/SLURM).",
        ),
        click.option("--task", metavar="TYPE:INDEX", help="This process in --cluster: worker:1."),
        click.option(
            "--tensorboard",
            is_flag=True,
            default=None,
            help="Write TensorBoard logs into the run directory (report.tensorboard).",
        ),
    ]
    for option in reversed(options):
        function = option(function)

    @functools.wraps(function)
    def with_flag_overrides(*args: Any, **kwargs: Any) -> Any:
        # The distribute flags (and --tensorboard) are --set overrides, so they reach every
        # process a command starts (search chunks, launched workers) like any other.
        flags = {
            "strategy": kwargs.pop("strategy"),
            "precision": kwargs.pop("mixed_precision"),
            "cluster": kwargs.pop("cluster"),
            "task": kwargs.pop("task"),
        }
        extra = [f"distribute.{key}={value}" for key, value in flags.items() if value]
        if kwargs.pop("tensorboard"):
            extra.append("report.tensorboard=true")
        kwargs["overrides"] = (*kwargs["overrides"], *extra)
        return function(*args, **kwargs)

    return with_flag_overrides


def _apply_flags(
    config: RunConfig, data_source: str | None, seed: int | None, output_dir: str | None
) -> RunConfig:
    if data_source is not None:
        config.data.source = data_source
    if seed is not None:
        config.seed = seed
    if output_dir is not None:
        config.output_dir = output_dir
    return config


def _train(config: RunConfig, backend: str | None, resume: Path | None = None) -> None:
    from dltoolkit.backend import requested_backend, use_backend

    config.backend = use_backend(requested_backend(backend, config.backend))
    from dltoolkit.distribute import prepare_environment

    prepare_environment(config.distribute, config.backend)
    from dltoolkit import distribute, training

    training.run(config, echo=click.echo, resume=resume)
    distribute.current().finish()


# === Root ===


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dltk")
def main() -> None:
    """dltk: train, evaluate, export and serve Keras models from YAML recipes."""


# === dltk recipe ===


class RecipeGroup(click.Group):
    """``dltk recipe list``, ``dltk recipe show NAME`` and ``dltk recipe NAME [options]``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return ["list", "show", *recipe_names()]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        if name in recipe_names():
            return _recipe_command(name)
        return _unknown_recipe_command(name)


def _recipe_description(name: str) -> str:
    try:
        return str(read_yaml(recipe_path(name)).get("description", "")).strip()
    except DltkError as error:
        return f"(unreadable: {error})"


def _recipe_command(name: str) -> click.Command:
    @click.command(name=name, help=_recipe_description(name))
    @_run_options
    @_one_line_errors
    def command(overrides, override_files, data_source, backend, seed, output_dir):
        config = load_config(name, overrides, override_files)
        _train(_apply_flags(config, data_source, seed, output_dir), backend)

    return command


def _unknown_recipe_command(name: str) -> click.Command:
    @click.command(
        name=name, context_settings={"ignore_unknown_options": True}, add_help_option=False
    )
    @click.argument("ignored", nargs=-1, type=click.UNPROCESSED)
    @_one_line_errors
    def command(ignored):
        recipe_path(name)  # raises the "unknown recipe ... did you mean" error

    return command


@main.group(cls=RecipeGroup)
def recipe() -> None:
    """Run a recipe (`dltk recipe cnn-image`), list recipes or show one's resolved YAML."""


@recipe.command("list")
def recipe_list() -> None:
    """Print every recipe with a one-line description."""
    names = recipe_names()
    width = max(map(len, names), default=0)
    for name in names:
        click.echo(f"{name:<{width}}  {_recipe_description(name)}")


@recipe.command("show")
@click.argument("name")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value before showing it. Repeatable.",
)
@click.option("--backend", type=click.Choice(BACKENDS), help="Keras backend to resolve under.")
@_one_line_errors
def recipe_show(name: str, overrides: tuple[str, ...], backend: str | None) -> None:
    """Print recipe NAME's fully resolved YAML (defaults and builder arguments filled in)."""
    from dltoolkit.backend import requested_backend, use_backend

    config = load_config(name, overrides)
    use_backend(requested_backend(backend, config.backend))
    from dltoolkit.training import resolve

    click.echo(resolve(config).to_yaml(), nl=False)


# === dltk tune ===


def _address(value: str | None, flag: str) -> tuple[str, str] | None:
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise DltkError(f"{flag} {value!r} is not HOST:PORT (e.g. {flag} 127.0.0.1:8000).")
    return host, port


@main.command()
@click.argument("recipe_name", metavar="RECIPE")
@click.option(
    "--space",
    type=click.Path(dir_okay=False),
    help="Search-space YAML (default: the recipe's tuning/RECIPE.yaml).",
)
@click.option("--tuner", help="random, bayesian or hyperband (default: the space's).")
@click.option("--max-trials", type=click.IntRange(min=1), help="Trials (default: the space's).")
@click.option("--overwrite", is_flag=True, help="Start afresh instead of resuming the search.")
@click.option(
    "--retrain-best",
    is_flag=True,
    help="Then train the best configuration on training and validation rows for the best "
    "trial's epochs, evaluate on test and export it.",
)
@click.option(
    "--chief", metavar="HOST:PORT", help="Serve the search's oracle to workers at HOST:PORT."
)
@click.option("--worker", metavar="HOST:PORT", help="Run trials for the chief at HOST:PORT.")
@click.option(
    "--worker-id", default="tuner0", show_default=True, help="This worker's name (unique)."
)
@click.option(
    "--trials-per-process",
    type=click.IntRange(min=0),
    help="Run the search this many trials at a time, each batch in a fresh process "
    "(default: 10 on TensorFlow, whose memory grows with every trial; 0 elsewhere: one "
    "process). 0 runs every trial in this process.",
)
@_run_options
@_one_line_errors
def tune(
    recipe_name, space, tuner, max_trials, overwrite, retrain_best, chief, worker, worker_id,
    trials_per_process, overrides, override_files, data_source, backend, seed, output_dir,
) -> None:  # fmt: skip
    """Search RECIPE's hyperparameters with KerasTuner; resume by running it again."""
    import os

    from dltoolkit.backend import requested_backend, use_backend
    from dltoolkit.search_space import check_tuner, load_space, tuning_dir

    if chief and worker:
        raise DltkError("pass --chief or --worker, not both: a process is one or the other.")
    config = load_config(recipe_name, overrides, override_files)
    config = _apply_flags(config, data_source, seed, None)
    space_path = Path(space) if space else tuning_dir() / f"{config.name}.yaml"
    if not space_path.is_file():
        raise DltkError(
            f"no search space at {space_path}; pass --space FILE (see tuning/ for examples)."
        )
    parsed = load_space(space_path)
    if tuner is not None:
        check_tuner(tuner)
    for role, address in (
        ("chief", _address(chief, "--chief")),
        (worker_id, _address(worker, "--worker")),
    ):
        if address is not None:
            os.environ.update(
                KERASTUNER_TUNER_ID=role,
                KERASTUNER_ORACLE_IP=address[0],
                KERASTUNER_ORACLE_PORT=address[1],
            )
    config.backend = use_backend(requested_backend(backend, config.backend))
    from dltoolkit.distribute import prepare_environment

    prepare_environment(config.distribute, config.backend)
    from dltoolkit import tuning

    tuner_name = tuner or parsed.tuner
    total = max_trials or parsed.max_trials
    if trials_per_process is None:
        trials_per_process = 10 if config.backend == "tensorflow" else 0
    chunked = (
        0 < trials_per_process < total
        and tuner_name != "hyperband"  # its budget is not a number of trials
        and not tuning.distributed()
        and tuning.CHUNK_ENVIRONMENT not in os.environ
    )
    if chunked:
        # Checked here once: bad spaces fail before any process starts a trial.
        tuning.prepare_search(config, parsed, output_dir or "searches", tuner_name, overwrite)
        command = [sys.executable, "-m", "dltoolkit", "tune", recipe_name, "--space",
                   str(space_path), "--tuner", tuner_name, "--trials-per-process", "0",
                   "--backend", config.backend, "--seed", str(config.seed),
                   "--output", output_dir or "searches", "--data", config.data.source,
                   *[f"--set={item}" for item in overrides],
                   *[f"--config={item}" for item in override_files]]  # fmt: skip
        result = tuning.search_in_chunks(
            command,
            Path(output_dir or "searches") / config.name,
            total,
            trials_per_process,
            overwrite,
            echo=click.echo,
        )
    else:
        result = tuning.search(
            config,
            parsed,
            output_dir or "searches",
            tuner=tuner,
            max_trials=max_trials,
            overwrite=overwrite,
            echo=click.echo,
        )
    if retrain_best and result is not None and result.results:
        import yaml

        from dltoolkit import training
        from dltoolkit.search_space import flatten

        # The winning trial's values over the user's settings, as in the trial itself; the
        # refit's fixed epochs on training + validation rows over both.
        best_file = result.directory / "best.yaml"
        best = tuning.with_values(
            load_config(recipe_name, overrides, override_files),
            flatten(yaml.safe_load(best_file.read_text())),
        )
        # A refit on training + validation rows needs the best trial's epoch count, which
        # clustering and cross-validated trials do not have: they retrain as the recipe does.
        if config.task != "clustering" and not tuning.cross_validated(result.objective):
            best = tuning.with_values(
                best,
                {
                    "train.refit_on_validation": True,
                    "train.early_stopping.patience": None,
                    "train.epochs": int(result.results[0]["best_epoch"] or 0) + 1,
                },
            )
        best = _apply_flags(best, data_source, seed, None)
        best.backend = config.backend
        click.echo(f"retraining the best configuration ({best_file})")
        training.run(best, echo=click.echo)


# === dltk train / evaluate / export / predict ===


@main.command()
@click.argument("repository", default="saved_models", required=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--max-batch",
    default=1024,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most rows in one request.",
)
@click.option(
    "--max-body-mb",
    default=16.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Largest request body.",
)
@_one_line_errors
def serve(repository: str, host: str, port: int, max_batch: int, max_body_mb: float) -> None:
    """Serve every model and version in REPOSITORY (default saved_models/) with TF
    Serving's REST API: GET /v1/models/NAME, GET /v1/models/NAME/metadata, POST
    /v1/models/NAME[/versions/N]:predict with {"instances": [...]} or {"inputs": ...}."""
    from dltoolkit.serve import serve as run_server

    run_server(repository, host, port, max_batch, max_body_mb)


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Processes."
)
@click.option(
    "--max-restarts",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Times to restart the cluster after a worker dies (training resumes from backup).",
)
@click.option(
    "--parameter-servers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="With K > 0: strategy parameter_server with a chief, the workers and K ps tasks.",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@_one_line_errors
def launch(
    workers: int, max_restarts: int, parameter_servers: int, command: tuple[str, ...]
) -> None:
    """Train on a cluster of local processes, to try it out: dltk launch --workers 2
    recipe mlp-regression --set train.epochs=5 (strategy multi_worker; worker 0 writes
    the run), or with --parameter-servers 1 (strategy parameter_server; the chief writes
    it). On a real cluster run the same dltk command on every machine with TF_CONFIG,
    --cluster FILE --task TYPE:N, or under SLURM."""
    from dltoolkit.launch import launch as launch_workers

    status = launch_workers(command, workers, max_restarts, click.echo, parameter_servers)
    if status:
        sys.exit(status if status > 0 else 1)


@main.command()
@click.argument("config_file", type=click.Path(dir_okay=False), required=False)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False),
    help="Continue the interrupted run in RUN_DIR from its last complete epoch (run from "
    "the folder it was started in).",
)
@_run_options
@_one_line_errors
def train(
    config_file, resume_dir, overrides, override_files, data_source, backend, seed, output_dir
) -> None:
    """Train from a YAML config (e.g. a run directory's config.yaml), or resume a run."""
    if resume_dir is not None:
        if config_file is not None:
            raise DltkError("pass a CONFIG_FILE or --resume RUN_DIR, not both.")
        config_file = str(Path(resume_dir) / "config.yaml")
    if config_file is None:
        raise DltkError("pass a CONFIG_FILE (YAML), or --resume RUN_DIR.")
    if not Path(config_file).is_file():
        raise DltkError(f"config file {config_file!r} does not exist; pass a YAML file.")
    config = load_config(config_file, overrides, override_files)
    resume = Path(resume_dir) if resume_dir is not None else None
    _train(_apply_flags(config, data_source, seed, output_dir), backend, resume)


def _run_dir_of(path: str) -> Path:
    run_dir = Path(path)
    missing = [name for name in ("config.yaml", "model.keras") if not (run_dir / name).is_file()]
    if not run_dir.is_dir() or missing:
        raise DltkError(
            f"{path!r} is not a run directory (missing {', '.join(missing) or 'folder'}); "
            "pass a folder written by `dltk recipe` or `dltk train`."
        )
    return run_dir


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--backend", type=click.Choice(BACKENDS), help="Keras backend to evaluate on.")
@_one_line_errors
def evaluate(run_dir: str, backend: str | None) -> None:
    """Re-evaluate a run's model.keras on its test split and print the metrics as JSON."""
    from dltoolkit.backend import requested_backend, use_backend

    directory = _run_dir_of(run_dir)
    config = load_config(directory / "config.yaml")
    use_backend(requested_backend(backend, config.backend))
    from dltoolkit.evaluation import evaluate_run

    click.echo(json.dumps(evaluate_run(directory), indent=2))


@main.command()
@click.argument("run_dir", type=click.Path(), metavar="RUN_DIR|SEARCH_DIR")
@_one_line_errors
def report(run_dir: str) -> None:
    """(Re)draw the pictures and report.html of a run directory, or of a search folder
    (searches/RECIPE)."""
    directory = Path(run_dir)
    if not directory.is_dir():
        raise DltkError(f"{run_dir!r} is not a folder; pass a run directory (dltk runs list).")
    from dltoolkit.report import write_report, write_search_report

    if (directory / "search.json").is_file():
        click.echo(f"report: {write_search_report(directory)}")
    else:
        click.echo(f"report: {write_report(directory)}")


@main.group()
def runs() -> None:
    """List and compare past runs."""


@runs.command("list")
@click.argument("recipe_name", required=False, metavar="[RECIPE]")
@click.option(
    "--runs-dir", default="runs", show_default=True, help="Folder that holds the run directories."
)
@_one_line_errors
def runs_list(recipe_name: str | None, runs_dir: str) -> None:
    """Past runs, oldest first: time, recipe, backend, headline score beside the best
    baseline's, parameters and training time."""
    from dltoolkit.runs import find_runs, text_table

    found = find_runs(runs_dir, recipe_name)
    if not found:
        where = f"{runs_dir}/{recipe_name}" if recipe_name else runs_dir
        raise DltkError(f"no finished runs under {where!r}; run dltk recipe NAME first.")
    keys = ["created", "recipe", "backend", "score", "network", "baseline", "parameters",
            "train_seconds", "run"]  # fmt: skip
    click.echo(text_table(keys, [[run[key] for key in keys] for run in found]))


@runs.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR RUN_DIR ...")
@_one_line_errors
def runs_compare(run_dirs: tuple[str, ...]) -> None:
    """Runs side by side: cost, every test score, the best baseline and the settings in
    which their configurations differ."""
    from dltoolkit.runs import compare_runs

    click.echo(compare_runs([Path(d) for d in run_dirs]))


@main.command(name="export")
@click.argument("model_path", type=click.Path())
@click.option(
    "--name",
    "model_name",
    help="Model name in the repository (default: the run's export.model_name or recipe).",
)
@click.option(
    "--repository",
    type=click.Path(file_okay=False),
    help="Model repository root (default: the run's export.directory or saved_models).",
)
@_one_line_errors
def export_command(model_path: str, model_name: str | None, repository: str | None) -> None:
    """Export a run directory or a .keras file as the next SavedModel version."""
    from dltoolkit.backend import requested_backend, use_backend

    path = _model_file(model_path)
    defaults: dict[str, Any] = {"name": path.stem, "repository": "saved_models"}
    if Path(model_path).is_dir():
        config = load_config(path.parent / "config.yaml")
        defaults = {
            "name": config.export.model_name or config.name,
            "repository": config.export.directory,
        }
    written = read_run_metrics(path.parent)
    # Writing happens under TensorFlow; another backend hands it to a TensorFlow process.
    use_backend(requested_backend(None, None))
    from dltoolkit.export import export_saved_model

    target = export_saved_model(
        path,
        repository or defaults["repository"],
        model_name or defaults["name"],
        written.get("data", {}).get("class_names"),
        task=written.get("task", "classification"),
        decision=written.get("decision"),
        series=written.get("data", {}).get("series"),
    )
    click.echo(str(target))


def _model_file(model_path: str) -> Path:
    """The .keras file named by a run directory or given directly."""
    if Path(model_path).is_dir():
        return _run_dir_of(model_path) / "model.keras"
    path = Path(model_path)
    if path.suffix != ".keras" or not path.is_file():
        raise DltkError(f"{model_path!r} is neither a run directory nor an existing .keras file.")
    return path


@main.command()
@click.argument("model_path", type=click.Path())
@click.option(
    "--data",
    "data_source",
    required=True,
    metavar="SOURCE",
    help="Inputs: images:PATH (any images below PATH), npz:PATH (array x), builtin:NAME, "
    "or csv:PATH / parquet:PATH (raw columns) for table models.",
)
@click.option(
    "--output",
    "output_file",
    default="predictions.csv",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="CSV file to write (never overwritten).",
)
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--chunk-rows",
    default=8192,
    show_default=True,
    type=click.IntRange(min=1),
    help="Inputs read and predicted at a time; memory use follows this, not the input size.",
)
@click.option("--backend", type=click.Choice(BACKENDS), help="Keras backend to predict on.")
@_one_line_errors
def predict(model_path, data_source, output_file, batch_size, chunk_rows, backend) -> None:
    """Predict with a run directory's or a .keras file's model; stream rows into a CSV.

    Rows go to a hidden partial file beside --output as each chunk is predicted; only a
    complete prediction is renamed to --output, so an interrupted one never looks finished.
    """
    from dltoolkit.backend import requested_backend, use_backend

    path = _model_file(model_path)
    output = Path(output_file)
    if output.exists():
        raise DltkError(
            f"output file {output_file!r} already exists and will not be overwritten; "
            "choose another --output."
        )
    use_backend(requested_backend(backend, None))
    from dltoolkit.predict import stream_predictions

    stream = stream_predictions(
        path, data_source, batch_size, read_run_metrics(path.parent), chunk_rows
    )
    partial = output.with_name(f".{output.name}.partial")
    count = 0
    try:
        with (
            open(partial, "w", newline="") as handle,
            click.progressbar(
                length=stream.total,
                label=f"predicting ({stream.unit})",
                file=sys.stderr,
                hidden=not sys.stderr.isatty(),  # a bar only where someone watches it
            ) as bar,
        ):
            writer = None
            for rows, progress in stream.batches:
                if writer is None:
                    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                    writer.writeheader()
                writer.writerows(rows)
                handle.flush()
                count += len(rows)
                bar.update(progress)
        os.link(partial, output)  # fails rather than replace a file that appeared meanwhile
    except FileExistsError:
        raise DltkError(
            f"output file {output_file!r} appeared while predicting; the predictions are "
            f"kept in {str(partial)!r}."
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.unlink()
    click.echo(f"{count} predictions written to {output_file}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
