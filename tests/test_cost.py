"""Forward FLOPs per example, and the cost block of a run's metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import BACKEND

from dltoolkit.cost import forward_flops
from dltoolkit.models import MODELS


def test_dense_conv_and_recurrent_layers_are_counted_by_hand():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="first")(inputs)  # 8*8 x 3x3x3
    x = keras.layers.BatchNormalization()(x)  # elementwise: not counted
    x = keras.layers.Conv2D(5, 3, name="second")(x)  # 6*6 positions, 3x3x4 kernel
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    counted = forward_flops(keras.Model(inputs, outputs))
    assert counted["by_layer"] == {
        "first": 2 * 64 * 27 * 4,
        "second": 2 * 36 * 36 * 5,
        "head": 2 * 5 * 2,
    }
    assert counted["not_counted"] == []
    sequence = keras.Input((10, 3))
    x = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))(sequence)
    x = keras.layers.GRU(6)(x)
    recurrent = forward_flops(keras.Model(sequence, keras.layers.Dense(1)(x)))
    lstm = 2 * (2 * 10 * 4 * 4 * (3 + 4))  # both directions, 4 gates, every step
    gru = 2 * 10 * 3 * 6 * (8 + 6)  # its input is both directions' 4 units
    assert recurrent["per_example"] == lstm + gru + 2 * 6


def test_nested_models_are_opened_and_unknown_layers_named():
    model = MODELS.get("som")((4,), map_shape=[3, 3])
    counted = forward_flops(model)
    assert counted["not_counted"]  # the map's distance computation is not counted
    rnn = MODELS.get("rnn")((12, 2), 1, None, units=[8])
    assert forward_flops(rnn)["by_layer"]["lstm1"] == 2 * 12 * 4 * 8 * (2 + 8)


@pytest.mark.skipif(BACKEND != "torch", reason="cross-checks against torch's FLOP counter")
def test_counts_agree_with_torch_flop_counter():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    for model in (
        MODELS.get("cnn")((8, 8, 1), 10, filters=[4, 8], batch_norm=False),
        MODELS.get("mlp")((20,), 3, hidden_units=[16, 8]),
        MODELS.get("rnn")((6, 3), 1, None, units=[5], cell="gru"),
        MODELS.get("rnn")((6, 3), 1, None, units=[5], cell="lstm"),
    ):
        x = np.ones((1, *model.inputs[0].shape[1:]), np.float32)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x, training=False)
        assert forward_flops(model)["per_example"] == counter.get_total_flops(), model.name


def test_a_run_records_its_cost(trained_run: Path):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    cost = metrics["cost"]
    assert cost["flops_per_example"] > 10 * metrics["parameters"]["total"]  # convolutions
    assert len(cost["seconds_per_epoch"]) == metrics["epochs_run"]
    assert cost["peak_memory_mib"] > 100
    assert cost["devices"]
