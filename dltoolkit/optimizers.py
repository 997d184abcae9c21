"""The optimizer of a run with its learning rate or schedule, and the check of metric names
(both questions only Keras can answer, asked before anything is written)."""

from __future__ import annotations

import keras

from dltoolkit import distribute
from dltoolkit.config import RunConfig
from dltoolkit.errors import ConfigError, did_you_mean

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
    "adagrad": keras.optimizers.Adagrad,
    "nadam": keras.optimizers.Nadam,
}


def check_metric_name(name: str, path: str) -> None:
    """Raise ConfigError unless ``keras.metrics.get`` knows ``name``."""
    try:
        keras.metrics.get(name)
        return
    except (ValueError, TypeError):
        pass
    known = _metric_names()
    raise ConfigError(
        f"{path} {name!r} is not a Keras metric name{did_you_mean(name, known)}; "
        f"use one keras.metrics.get accepts, e.g. {', '.join(known[:12])}, ..."
    )


def _metric_names() -> list[str]:
    """Snake-case names of Keras' metrics that build without arguments."""
    names = set()
    for attribute in dir(keras.metrics):
        candidate = getattr(keras.metrics, attribute)
        if isinstance(candidate, type) and issubclass(candidate, keras.metrics.Metric):
            try:
                names.add(candidate().name)
            except (TypeError, ValueError):
                continue  # needs arguments (e.g. PrecisionAtRecall)
    names.discard("metric")
    names.discard("mean_metric_wrapper")
    return sorted(names)


def learning_rate(config: RunConfig, steps_per_epoch: int):
    """The configured learning rate: a float, or a keras.optimizers.schedules schedule;
    times the number of replicas with ``distribute.scale_learning_rate``."""
    train, schedule = config.train, config.train.learning_rate_schedule
    rate = train.learning_rate
    if config.distribute.scale_learning_rate:
        rate *= distribute.current().replicas
    if schedule.name == "constant":
        return rate
    steps = schedule.decay_steps or max(1, train.epochs * steps_per_epoch - schedule.warmup_steps)
    schedules = keras.optimizers.schedules
    if schedule.name == "cosine":
        if schedule.warmup_steps:
            # Warm up linearly from 0 to the configured rate, then decay.
            return schedules.CosineDecay(
                0.0,
                steps,
                alpha=schedule.end_fraction,
                warmup_target=rate,
                warmup_steps=schedule.warmup_steps,
            )
        return schedules.CosineDecay(rate, steps, alpha=schedule.end_fraction)
    if schedule.name == "exponential":
        return schedules.ExponentialDecay(rate, steps, schedule.decay_rate)
    return schedules.PolynomialDecay(rate, steps, end_learning_rate=rate * schedule.end_fraction)


def make_optimizer(config: RunConfig, steps_per_epoch: int = 1) -> keras.optimizers.Optimizer:
    """The configured optimizer with its options and learning rate (or schedule)."""
    options = config.train.optimizer_options
    try:
        return OPTIMIZERS[config.train.optimizer](
            learning_rate=learning_rate(config, steps_per_epoch), **options
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"train.optimizer_options {options} are not valid for {config.train.optimizer!r}: "
            f"{error}"
        ) from None
