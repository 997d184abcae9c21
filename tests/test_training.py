"""Optimizers, options and learning-rate schedules chosen by name from a config."""

import keras
import numpy as np
import pytest

from dltoolkit.config import load_config
from dltoolkit.optimizers import learning_rate, make_optimizer

NO_PLATEAU = "train.reduce_lr_on_plateau.patience=null"


def config(*overrides: str):
    return load_config("cnn-image", [NO_PLATEAU, *overrides])


def rate_at(schedule, step: int) -> float:
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_constant_learning_rate_is_a_float():
    assert learning_rate(config("train.learning_rate=0.01"), 10) == 0.01


def test_cosine_schedule_spans_the_whole_run_by_default():
    run = config(
        "train.learning_rate=0.1",
        "train.epochs=4",
        "train.learning_rate_schedule.name=cosine",
        "train.learning_rate_schedule.end_fraction=0.1",
    )
    schedule = learning_rate(run, steps_per_epoch=25)  # 100 steps in all
    assert rate_at(schedule, 0) == pytest.approx(0.1)
    assert rate_at(schedule, 50) == pytest.approx(0.1 * (0.1 + 0.9 * 0.5), rel=1e-4)
    assert rate_at(schedule, 100) == pytest.approx(0.01, rel=1e-4)


def test_cosine_warmup_then_decay():
    run = config(
        "train.learning_rate=0.1",
        "train.epochs=2",
        "train.learning_rate_schedule.name=cosine",
        "train.learning_rate_schedule.warmup_steps=10",
    )
    schedule = learning_rate(run, steps_per_epoch=20)
    assert rate_at(schedule, 5) == pytest.approx(0.05, rel=1e-4)
    assert rate_at(schedule, 10) == pytest.approx(0.1, rel=1e-4)
    assert rate_at(schedule, 40) == pytest.approx(0.0, abs=1e-6)


def test_exponential_and_polynomial_schedules():
    exponential = learning_rate(
        config(
            "train.learning_rate=1.0",
            "train.learning_rate_schedule.name=exponential",
            "train.learning_rate_schedule.decay_steps=10",
            "train.learning_rate_schedule.decay_rate=0.5",
        ),
        steps_per_epoch=3,
    )
    assert rate_at(exponential, 20) == pytest.approx(0.25, rel=1e-4)
    polynomial = learning_rate(
        config(
            "train.learning_rate=1.0",
            "train.epochs=1",
            "train.learning_rate_schedule.name=polynomial",
            "train.learning_rate_schedule.end_fraction=0.2",
        ),
        steps_per_epoch=10,
    )
    assert rate_at(polynomial, 5) == pytest.approx(0.6, rel=1e-4)


@pytest.mark.parametrize(
    ("optimizer", "options", "attribute", "value"),
    [
        ("sgd", "{momentum: 0.9, nesterov: true}", "momentum", 0.9),
        ("adamw", "{weight_decay: 0.001}", "weight_decay", 0.001),
        ("rmsprop", "{rho: 0.8}", "rho", 0.8),
        ("adagrad", "{epsilon: 0.0001}", "epsilon", 0.0001),
    ],
)
def test_optimizer_options_reach_the_optimizer(optimizer, options, attribute, value):
    built = make_optimizer(
        config(f"train.optimizer={optimizer}", f"train.optimizer_options={options}")
    )
    assert getattr(built, attribute) == pytest.approx(value)


def test_a_schedule_drives_training():
    run = config(
        "train.optimizer=sgd",
        "train.learning_rate=0.1",
        "train.epochs=1",
        "train.learning_rate_schedule.name=exponential",
        "train.learning_rate_schedule.decay_steps=1",
        "train.learning_rate_schedule.decay_rate=0.5",
    )
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=make_optimizer(run, steps_per_epoch=4), loss="mse")
    model.fit(np.ones((16, 2), "float32"), np.ones((16, 1), "float32"), batch_size=4, verbose=0)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(
        0.1 / 16, rel=1e-4
    )
