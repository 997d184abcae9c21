"""Training a model that starts from a pretrained backbone, as ``train.fine_tune`` says:
the new head first with the backbone frozen, then the backbone's last layers unfrozen at
the (lower) training learning rate. One history across both phases, epochs numbered on."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from dltoolkit import distribute, training
from dltoolkit.config import RunConfig
from dltoolkit.errors import ConfigError
from dltoolkit.models import backbone_of, set_trainable
from dltoolkit.training import Fitted


def fit_in_phases(
    task: Any,
    model: keras.Model,
    data: Any,
    run_dir: Path | None,
    verbose: int,
    echo: Callable[[str], None],
) -> Fitted:
    """Fit ``model`` (a ``transfer`` network) for ``task`` in the phases of
    ``train.fine_tune``; the returned record spans both."""
    config = task.config
    tune = config.train.fine_tune
    backbone = backbone_of(model)
    if tune.head_epochs is not None and distribute.current().in_loop:
        raise ConfigError(
            f"train.fine_tune.head_epochs under distribute.strategy="
            f"{config.distribute.strategy} is not supported (its training loop runs one "
            "phase); set train.fine_tune.head_epochs=null, or train on one machine."
        )
    if tune.head_epochs is None:
        unfrozen = set_trainable(backbone, tune.unfreeze)
        echo(f"fine-tuning {unfrozen} backbone layers with the head, {config.train.epochs} epochs")
        task.compile(model, data, config)
        return fit_phase(task, model, config, data, run_dir, verbose, echo)

    head = dataclasses.replace(
        config,
        train=dataclasses.replace(
            config.train, epochs=tune.head_epochs, learning_rate=tune.head_learning_rate
        ),
    )
    backbone.trainable = False
    task.compile(model, data, head)
    echo(f"phase 1: the new head alone for {tune.head_epochs} epochs (backbone frozen)")
    first = fit_phase(task, model, head, data, run_dir, verbose, echo)
    training.drop_backups(head)
    # The head's epochs (the CSV log read back may hold a resumed run's later ones too).
    done = min(len(first.history["loss"]), tune.head_epochs)
    unfrozen = set_trainable(backbone, tune.unfreeze)
    if not unfrozen:
        echo("train.fine_tune.unfreeze is 0: the head's phase is the whole training")
        return first
    task.compile(first.model, data, config)
    echo(
        f"phase 2: {unfrozen} backbone layers unfrozen, {config.train.epochs} epochs at "
        f"learning rate {config.train.learning_rate:g}"
    )
    second = fit_phase(task, first.model, config, data, run_dir, verbose, echo, done)
    history = second.history
    if run_dir is None:  # no CSV log to read both phases back from
        history = {
            key: first.history.get(key, []) + second.history.get(key, [])
            for key in dict.fromkeys([*first.history, *second.history])
        }
    return Fitted(
        second.model,
        history,
        first.train_seconds + second.train_seconds,
        second.examples,
        first.epoch_seconds + second.epoch_seconds,
    )


def fit_phase(
    task: Any,
    model: keras.Model,
    config: RunConfig,
    data: Any,
    run_dir: Path | None,
    verbose: int,
    echo: Callable[[str], None],
    initial_epoch: int = 0,
) -> Fitted:
    """One phase: ``config.train.epochs`` epochs after ``initial_epoch``."""
    return training.fit(
        model,
        config,
        task.fit_arrays(data),
        training.callbacks(config, run_dir),
        verbose,
        echo,
        task.class_weights(data),
        initial_epoch=initial_epoch,
    )
