"""Every registered builder: output shapes, one training step, .keras round trip."""

from pathlib import Path

import keras
import numpy as np
import pytest

from dltoolkit.errors import ConfigError
from dltoolkit.models import MODELS

# builder -> (input shape, output units, output activation, hyperparameters)
CASES = {
    "cnn-2d": ("cnn", (8, 8, 1), 3, "softmax", {"filters": [4], "dense_units": [8]}),
    "cnn-augmented": (
        "cnn",
        (12, 12, 3),
        2,
        "softmax",
        {
            "filters": [4],
            "augment_flip": "horizontal",
            "augment_rotation": 0.1,
            "augment_zoom": 0.1,
            "augment_translation": 0.1,
            "augment_contrast": 0.2,
        },
    ),
    "cnn-1d": ("cnn", (12, 2), 1, None, {"filters": [4, 4], "global_pooling": "flatten"}),
    "mlp-classifier": ("mlp", (6,), 3, "softmax", {"hidden_units": [8, 4], "l2": 1e-3}),
    "mlp-regressor": (
        "mlp",
        (6,),
        1,
        None,
        {"hidden_units": [8], "batch_norm": True, "activation": "leaky_relu", "l1": 1e-4},
    ),
    "mlp-linear": ("mlp", (2, 3), 1, "sigmoid", {"hidden_units": []}),
    "lstm-forecast": ("rnn", (10, 3), 4, None, {"units": [8, 4]}),
    "gru-bidirectional": (
        "rnn",
        (10, 3),
        2,
        "softmax",
        {"cell": "gru", "bidirectional": True, "dense_units": [4]},
    ),
    "simple-rnn": ("rnn", (10, 3), 1, None, {"cell": "simple", "units": [4], "dropout": 0.1}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_builder_shapes_training_and_round_trip(case: str, tmp_path: Path):
    builder, shape, units, activation, hyperparameters = CASES[case]
    model = MODELS.get(builder)(shape, units, activation, **hyperparameters)
    assert model.output_shape == (None, units)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, *shape)).astype("float32")
    if activation == "softmax":
        y, loss = np.arange(16) % units, "sparse_categorical_crossentropy"
    elif activation == "sigmoid":
        y, loss = (np.arange(16) % 2).astype("float32")[:, None], "binary_crossentropy"
    else:
        y, loss = rng.normal(size=(16, units)).astype("float32"), "mse"
    model.compile(optimizer="adam", loss=loss)
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6, rtol=1e-6
    )
    rebuilt = keras.Model.from_config(model.get_config())
    assert rebuilt.count_params() == model.count_params()


def test_augmentation_acts_in_training_only():
    model = MODELS.get("cnn")((8, 8, 1), 2, filters=[2], augment_translation=0.3)
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    augment = model.get_layer("augment_translation")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(augment(x, training=False)), x)
    assert not np.allclose(keras.ops.convert_to_numpy(augment(x, training=True)), x)
    first, second = model(x, training=False), model(x, training=False)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(first), keras.ops.convert_to_numpy(second), atol=1e-6
    )


def test_mlp_regularisation_adds_losses():
    model = MODELS.get("mlp")((4,), 1, None, hidden_units=[3], l1=0.01, l2=0.01)
    model(np.ones((2, 4), "float32"))
    assert len(model.losses) == 2  # hidden and output kernels


@pytest.mark.parametrize(
    ("builder", "shape", "arguments", "expected"),
    [
        ("mlp", (4,), {"hidden_units": [0]}, "model.hidden_units must be a list of positive"),
        ("mlp", (4,), {"dropout": -0.1}, "model.dropout must be in [0, 1)"),
        ("mlp", (4,), {"l2": -1.0}, "model.l1 and model.l2 must be >= 0"),
        ("mlp", (4,), {"activation": "relu6x"}, "model.activation 'relu6x' is not"),
        ("rnn", (4,), {}, "rnn needs inputs of shape (steps, features)"),
        ("rnn", (5, 2), {"cell": "transformer"}, "model.cell must be one of lstm, gru"),
        ("rnn", (5, 2), {"units": []}, "model.units must be a non-empty list"),
        ("rnn", (5, 2), {"recurrent_dropout": 1.0}, "model.recurrent_dropout must be in"),
        ("cnn", (8, 8, 1), {"augment_flip": "diagonal"}, "model.augment_flip must be one of"),
        ("cnn", (8, 8, 1), {"augment_zoom": 1.5}, "model.augment_zoom must be in [0, 1)"),
        ("cnn", (20, 2), {"augment_rotation": 0.1}, "image augmentation (model.augment_*) needs"),
    ],
)
def test_builder_argument_errors(builder, shape, arguments, expected):
    with pytest.raises(ConfigError) as error:
        MODELS.get(builder)(shape, 2, **arguments)
    assert expected in str(error.value)
