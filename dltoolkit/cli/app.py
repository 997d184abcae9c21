"""The ``dltk`` command group."""

from __future__ import annotations

import sys
from typing import Any

import click

from dltoolkit import __version__


class OneLineUsageGroup(click.Group):
    """A command group whose usage errors (an unknown option, a bad value, a missing
    argument) are one ``Error:`` line with a pointer to ``--help`` and exit code 2, like
    every other input error, instead of click's usage block."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Run the command line; see the class text for how usage errors end."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as error:
            context = error.ctx
            where = context.command_path if context is not None else "dltk"
            message = " ".join(error.format_message().split())
            click.echo(f"Error: {message} (see {where} --help)", err=True)
            sys.exit(2)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)


@click.group(cls=OneLineUsageGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dltk")
def main() -> None:
    """dltk: train, evaluate, export and serve Keras models from YAML recipes."""
