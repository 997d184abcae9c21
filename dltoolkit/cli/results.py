"""What comes after training: ``dltk evaluate``, ``dltk report``, ``dltk runs``,
``dltk export`` and ``dltk predict``."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import click

from dltoolkit import api
from dltoolkit.cli.app import main
from dltoolkit.cli.options import backend_option, one_line_errors
from dltoolkit.errors import DltkError
from dltoolkit.runs import text_table


def run_dir_of(path: str) -> Path:
    """``path`` as a run directory (its config.yaml and model.keras present)."""
    run_dir = Path(path)
    missing = [name for name in ("config.yaml", "model.keras") if not (run_dir / name).is_file()]
    if not run_dir.is_dir() or missing:
        raise DltkError(
            f"{path!r} is not a run directory (missing {', '.join(missing) or 'folder'}); "
            "pass a folder written by `dltk recipe` or `dltk train`."
        )
    return run_dir


def model_file(model_path: str) -> Path:
    """A run directory, or an existing ``.keras`` file, as given."""
    if Path(model_path).is_dir():
        return run_dir_of(model_path)
    path = Path(model_path)
    if path.suffix != ".keras" or not path.is_file():
        raise DltkError(f"{model_path!r} is neither a run directory nor an existing .keras file.")
    return path


@main.command()
@click.argument("run_dir", type=click.Path())
@backend_option
@one_line_errors
def evaluate(run_dir: str, backend: str | None) -> None:
    """Re-evaluate a run's model.keras on its test split and print the metrics as JSON."""
    click.echo(json.dumps(api.evaluate(run_dir_of(run_dir), backend), indent=2))


@main.command()
@click.argument("run_dir", type=click.Path(), metavar="RUN_DIR|SEARCH_DIR")
@one_line_errors
def report(run_dir: str) -> None:
    """(Re)draw the pictures and report.html of a run directory, or of a search folder
    (searches/RECIPE)."""
    click.echo(f"report: {api.draw_report(run_dir)}")


@main.group()
def runs() -> None:
    """List and compare past runs."""


@runs.command("list")
@click.argument("recipe_name", required=False, metavar="[RECIPE]")
@click.option(
    "--runs-dir", default="runs", show_default=True, help="Folder that holds the run directories."
)
@one_line_errors
def runs_list(recipe_name: str | None, runs_dir: str) -> None:
    """Past runs, oldest first: time, recipe, backend, headline score beside the best
    baseline's, parameters and training time."""
    found = api.list_runs(runs_dir, recipe_name)
    if not found:
        where = f"{runs_dir}/{recipe_name}" if recipe_name else runs_dir
        raise DltkError(f"no finished runs under {where!r}; run dltk recipe NAME first.")
    keys = ["created", "recipe", "backend", "score", "network", "baseline", "parameters",
            "train_seconds", "run"]  # fmt: skip
    click.echo(text_table(keys, [[run[key] for key in keys] for run in found]))


@runs.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR RUN_DIR ...")
@one_line_errors
def runs_compare(run_dirs: tuple[str, ...]) -> None:
    """Runs side by side: cost, every test score, the best baseline and the settings in
    which their configurations differ."""
    click.echo(api.compare(run_dirs))


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
@one_line_errors
def export_command(model_path: str, model_name: str | None, repository: str | None) -> None:
    """Export a run directory or a .keras file as the next SavedModel version."""
    click.echo(str(api.export_model(model_file(model_path), model_name, repository)))


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
@backend_option
@one_line_errors
def predict(model_path, data_source, output_file, batch_size, chunk_rows, backend) -> None:
    """Predict with a run directory's or a .keras file's model; stream rows into a CSV.

    Rows go to a hidden partial file beside --output as each chunk is predicted; only a
    complete prediction is renamed to --output, so an interrupted one never looks finished.
    """
    path = model_file(model_path)
    output = Path(output_file)
    if output.exists():
        raise DltkError(
            f"output file {output_file!r} already exists and will not be overwritten; "
            "choose another --output."
        )
    stream = api.predictions(
        path, data_source, batch_size=batch_size, chunk_rows=chunk_rows, backend=backend
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
