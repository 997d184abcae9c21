"""What every command shares: one-line errors and the options of a training run."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from dltoolkit.config import BACKENDS, PRECISIONS, STRATEGIES
from dltoolkit.errors import DltkError


class UserError(click.ClickException):
    """A DltkError shown as ``Error: <one line>`` with exit code 2."""

    exit_code = 2


def one_line_errors(function: Callable) -> Callable:
    """Turn the DltkErrors a command raises into one ``Error:`` line and exit code 2."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except DltkError as error:
            raise UserError(str(error)) from None

    return wrapper


backend_option = click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    help="Keras backend (default: config, then $KERAS_BACKEND, then tensorflow).",
)


def run_options(function: Callable) -> Callable:
    """Options shared by ``dltk recipe NAME``, ``dltk train CONFIG`` and ``dltk tune``.

    The distribute flags (and ``--tensorboard``) become ``--set`` overrides, so they reach
    every process a command starts (search chunks, launched workers) like any other; the
    command receives ``overrides``, ``override_files`` and ``settings`` (data, seed,
    output_dir) and ``backend``.
    """
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
        backend_option,
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
        kwargs["settings"] = {
            "data": kwargs.pop("data_source"),
            "seed": kwargs.pop("seed"),
            "output_dir": kwargs.pop("output_dir"),
        }
        return function(*args, **kwargs)

    return with_flag_overrides
