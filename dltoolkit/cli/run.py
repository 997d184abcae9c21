"""``dltk recipe`` (list, show, run one) and ``dltk train`` (a YAML file, or resume a run)."""

from __future__ import annotations

from pathlib import Path

import click

from dltoolkit import api
from dltoolkit.cli.app import main
from dltoolkit.cli.options import backend_option, one_line_errors, run_options
from dltoolkit.config import read_yaml, recipe_names, recipe_path
from dltoolkit.errors import DltkError


class RecipeGroup(click.Group):
    """``dltk recipe list``, ``dltk recipe show NAME`` and ``dltk recipe NAME [options]``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return ["list", "show", *recipe_names()]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        if name in recipe_names():
            return recipe_command(name)
        return unknown_recipe_command(name)


def recipe_description(name: str) -> str:
    """A recipe's one-line description."""
    try:
        return str(read_yaml(recipe_path(name)).get("description", "")).strip()
    except DltkError as error:
        return f"(unreadable: {error})"


def recipe_command(name: str) -> click.Command:
    """``dltk recipe NAME [options]``: train, evaluate and export the recipe."""

    @click.command(name=name, help=recipe_description(name))
    @run_options
    @one_line_errors
    def command(overrides, override_files, backend, settings):
        api.run(
            name,
            overrides,
            backend=backend,
            echo=click.echo,
            override_files=override_files,
            **settings,
        )

    return command


def unknown_recipe_command(name: str) -> click.Command:
    """A command that fails with the "unknown recipe ... did you mean" error."""

    @click.command(
        name=name, context_settings={"ignore_unknown_options": True}, add_help_option=False
    )
    @click.argument("ignored", nargs=-1, type=click.UNPROCESSED)
    @one_line_errors
    def command(ignored):
        recipe_path(name)

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
        click.echo(f"{name:<{width}}  {recipe_description(name)}")


@recipe.command("show")
@click.argument("name")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value before showing it. Repeatable.",
)
@backend_option
@one_line_errors
def recipe_show(name: str, overrides: tuple[str, ...], backend: str | None) -> None:
    """Print recipe NAME's fully resolved YAML (defaults and builder arguments filled in)."""
    click.echo(api.resolved(name, overrides, backend).to_yaml(), nl=False)


@main.command()
@click.argument("config_file", type=click.Path(dir_okay=False), required=False)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False),
    help="Continue the interrupted run in RUN_DIR from its last complete epoch (run from "
    "the folder it was started in).",
)
@run_options
@one_line_errors
def train(config_file, resume_dir, overrides, override_files, backend, settings) -> None:
    """Train from a YAML config (e.g. a run directory's config.yaml), or resume a run."""
    if resume_dir is not None:
        if config_file is not None:
            raise DltkError("pass a CONFIG_FILE or --resume RUN_DIR, not both.")
        config_file = str(Path(resume_dir) / "config.yaml")
    if config_file is None:
        raise DltkError("pass a CONFIG_FILE (YAML), or --resume RUN_DIR.")
    if not Path(config_file).is_file():
        raise DltkError(f"config file {config_file!r} does not exist; pass a YAML file.")
    api.run(
        config_file,
        overrides,
        backend=backend,
        resume=resume_dir,
        echo=click.echo,
        override_files=override_files,
        **settings,
    )
