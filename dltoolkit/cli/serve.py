"""``dltk serve`` (TF Serving's REST API over a model repository) and ``dltk launch`` (a
local training cluster)."""

from __future__ import annotations

import sys

import click

from dltoolkit.cli.app import main
from dltoolkit.cli.options import one_line_errors


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
@one_line_errors
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
@one_line_errors
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
