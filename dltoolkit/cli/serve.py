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
@click.option("--port", default=8501, show_default=True, type=click.IntRange(0, 65535),
              help="REST port.")  # fmt: skip
@click.option(
    "--grpc-port",
    default=8500,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="gRPC port (TF Serving's PredictionService and ModelService); 0: REST only.",
)
@click.option(
    "--max-batch",
    default=1024,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most rows in one request, and in one model call gathered from several.",
)
@click.option(
    "--batch-timeout-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="How long the first request of a batch waits for others to join it (0: a batch is "
    "what queued while the previous call ran).",
)
@click.option(
    "--batch-threads",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Model calls running at once per model version.",
)
@click.option(
    "--max-body-mb",
    default=16.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Largest request body (REST) or message (gRPC).",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds a REST client has to send a request's headers.",
)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds a REST client has to send a request's body.",
)
@click.option(
    "--keep-alive",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds an idle keep-alive connection stays open.",
)
@click.option(
    "--access-log",
    default="-",
    show_default=True,
    metavar="FILE|-|off",
    help="Access log in the Common Log Format: - (standard error), a file, or off.",
)
@one_line_errors
def serve(
    repository: str,
    host: str,
    port: int,
    grpc_port: int,
    max_batch: int,
    batch_timeout_ms: float,
    batch_threads: int,
    max_body_mb: float,
    header_timeout: float,
    body_timeout: float,
    keep_alive: float,
    access_log: str,
) -> None:
    """Serve every model and version in REPOSITORY (default saved_models/) with TF
    Serving's REST API (GET /v1/models/NAME[/metadata], POST
    /v1/models/NAME[/versions/N]:predict|:classify|:regress; described at
    /v1/openapi.json; metrics at /monitoring/prometheus/metrics) and its gRPC API."""
    from dltoolkit.serve import Batching, Limits, Timeouts
    from dltoolkit.serve import serve as run_server

    run_server(
        repository, host, port, grpc_port or None,
        Limits(max_rows=max_batch, max_body_bytes=int(max_body_mb * 1024 * 1024)),
        Batching(timeout_ms=batch_timeout_ms, threads=batch_threads),
        Timeouts(header_s=header_timeout, body_s=body_timeout, keep_alive_s=keep_alive),
        None if access_log == "off" else access_log,
    )  # fmt: skip


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
