"""The ``dltk`` command group."""

from __future__ import annotations

import click

from dltoolkit import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dltk")
def main() -> None:
    """dltk: train, evaluate, export and serve Keras models from YAML recipes."""
