"""The search space as a KerasTuner HyperModel: a recipe's configuration with a trial's
values, built and fitted by the run's task exactly as ``dltk recipe`` builds and fits it.

KerasTuner clears the Keras session before each trial's model is built.
"""

from __future__ import annotations

from typing import Any

import keras
import keras_tuner

from dltoolkit.config import RunConfig, with_values
from dltoolkit.errors import ConfigError, DltkError, did_you_mean
from dltoolkit.models import builder_hyperparameters
from dltoolkit.runner import configure, evaluate_folds
from dltoolkit.runs import higher_is_better
from dltoolkit.tasks import Task, get_task
from dltoolkit.tuning.space import SearchSpace

# Objectives named cv_<score> rank trials by the K-fold cross-validation mean of <score>.
CV_PREFIX = "cv_"


def cross_validated(objective: str) -> bool:
    """Whether ``objective`` (e.g. ``cv_roc_auc``) scores each trial by the K-fold
    cross-validation mean of one of the task's test scores (``data.folds``)."""
    return objective.startswith(CV_PREFIX)


def cv_score(objective: str) -> str:
    """The test score a ``cv_<score>`` objective averages over the folds."""
    return objective[len(CV_PREFIX) :]


def objective_of(config: RunConfig, space: SearchSpace) -> keras_tuner.Objective:
    """The space's objective, else the recipe's early-stopping monitor; the direction is
    the space's, else max for accuracies and AUCs and min otherwise."""
    default = get_task(config).default_objective
    name = space.objective or default or config.train.early_stopping.monitor
    direction = space.direction or ("max" if higher_is_better(name) else "min")
    return keras_tuner.Objective(name, direction)


def check_space(config: RunConfig, space: SearchSpace) -> None:
    """Every path names a builder hyperparameter or a train setting, and every end of
    every range makes a valid configuration: errors before any trial starts."""
    try:
        space.sample(keras_tuner.HyperParameters())
    except ValueError as error:
        raise ConfigError(f"{space.source}: KerasTuner refuses the space: {error}") from None
    builder = config.model["builder"]
    model_keys = list(builder_hyperparameters(builder))
    for parameter in space.parameters:
        section, _, rest = parameter.path.partition(".")
        if section == "model" and rest not in model_keys:
            raise ConfigError(
                f"{space.source}: {parameter.path} is not a hyperparameter of builder "
                f"{builder!r}{did_you_mean(rest, model_keys)}; its hyperparameters: "
                f"{', '.join(model_keys)}."
            )
        for value in parameter.candidates():
            try:
                configure(with_values(config, {parameter.path: value}))
            except DltkError as error:
                raise ConfigError(
                    f"{space.source}: {parameter.path} = {value!r}: {error}"
                ) from None


class RecipeHyperModel(keras_tuner.HyperModel):
    """The recipe's model with the space's values: built and fitted as ``dltk recipe`` does."""

    def __init__(self, config: RunConfig, space: SearchSpace, data: Any):
        super().__init__(name=config.name)
        self.config = config
        self.space = space
        self.data = data
        self.task = get_task(config)

    def trial_task(self, hp: keras_tuner.HyperParameters) -> Task:
        """The task of the recipe's configuration with this trial's values (declared on
        ``hp``)."""
        return configure(with_values(self.config, self.space.sample(hp)))[1]

    def check_builds(self) -> None:
        """Build the model at every end of every range (the builders check their
        arguments), so a bad range fails before the first trial."""
        for parameter in self.space.parameters:
            for value in parameter.candidates():
                try:
                    self.build_task(configure(with_values(self.config, {parameter.path: value}))[1])
                except DltkError as error:
                    raise ConfigError(
                        f"{self.space.source}: {parameter.path} = {value!r}: {error}"
                    ) from None
                finally:
                    # No garbage collection per build (half a second each with the
                    # frameworks loaded, for models of a few kilobytes).
                    keras.backend.clear_session(free_memory=False)

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """Declare the space on ``hp`` and build and compile the recipe's model."""
        return self.build_task(self.trial_task(hp))

    def build_task(self, task: Task) -> keras.Model:
        """The compiled model of one trial's task, from the seed (in the strategy's scope)."""
        keras.utils.set_random_seed(task.config.seed)
        return task.new_model(task.training_splits(self.data))

    def fit(self, hp, model, *args, callbacks=None, epochs=None, **kwargs):
        """The task's fit for a search (``model.fit`` on the task's arrays) with the
        trial's batch size, epochs (or Hyperband's), early stopping and learning-rate
        settings."""
        task = self.trial_task(hp)
        kwargs.pop("verbose", None)  # search(verbose=...) is the tuner's, not the fit's
        return task.search_fit(
            model,
            task.training_splits(self.data),
            epochs or task.config.train.epochs,
            list(callbacks or []),
            **kwargs,
        )

    def score_names(self) -> list[str]:
        """The test scores of this recipe's task (from the untrained model's outputs: the
        same keys every trained fold reports)."""
        task = self.task
        try:
            model = self.build_task(task)
            outputs = task.outputs(model, self.data.x_test)
            decision = task.decision(self.data, model)
        finally:
            keras.backend.clear_session(free_memory=False)
        scores = task.score(self.data, outputs, decision)
        return [key for key, value in scores.items() if isinstance(value, float)]

    def run_cross_validation(self, hp: keras_tuner.HyperParameters, objective: str) -> dict:
        """A trial scored by ``objective`` (``cv_<score>``): the mean over ``data.folds``
        folds of the network's test ``<score>``, every fold trained as ``dltk recipe``
        trains it (its own validation rows for early stopping and the threshold)."""
        task = self.trial_task(hp)
        summary = evaluate_folds(task, int(task.config.data.folds), echo=lambda line: None)
        return {objective: summary["mean"]["deep model"][cv_score(objective)]}

    def run_own_trial(self, hp: keras_tuner.HyperParameters) -> dict[str, float] | None:
        """A trial the task scores with its own loop (pretraining for ``train.epochs``, or
        Hyperband's epochs), or None for KerasTuner's standard trial."""
        task = self.trial_task(hp)
        epochs = int(hp.values.get("tuner/epochs", task.config.train.epochs))
        return task.trial_scores(self.data, epochs)
