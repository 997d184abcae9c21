"""``dltk tune``: a hyperparameter search over a recipe."""

from __future__ import annotations

import click

from dltoolkit import api
from dltoolkit.cli.app import main
from dltoolkit.cli.options import one_line_errors, run_options


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
@run_options
@one_line_errors
def tune(
    recipe_name, space, tuner, max_trials, overwrite, retrain_best, chief, worker, worker_id,
    trials_per_process, overrides, override_files, backend, settings,
) -> None:  # fmt: skip
    """Search RECIPE's hyperparameters with KerasTuner; resume by running it again."""
    output_dir = settings.pop("output_dir")  # the searches' root, not the runs'
    api.tune(
        recipe_name,
        overrides,
        space=space,
        tuner=tuner,
        max_trials=max_trials,
        overwrite=overwrite,
        retrain_best=retrain_best,
        chief=chief,
        worker=worker,
        worker_id=worker_id,
        trials_per_process=trials_per_process,
        backend=backend,
        output_dir=output_dir,
        echo=click.echo,
        override_files=override_files,
        **settings,
    )
