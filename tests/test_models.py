import numpy as np
import pytest

from dltoolkit.errors import ConfigError
from dltoolkit.models import MODELS, builder_hyperparameters, resolve_model_config


def test_cnn_2d_output_shape_and_one_training_step():
    model = MODELS.get("cnn")((8, 8, 1), 10, filters=[4, 8], dense_units=[8])
    assert model.output_shape == (None, 10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
    y = np.arange(16) % 10
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    probabilities = model.predict(x, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)


def test_cnn_1d_on_sequences():
    model = MODELS.get("cnn")((20, 3), 2, filters=[4], global_pooling="max")
    assert model.output_shape == (None, 2)
    assert any("conv1d" in type(layer).__name__.lower() for layer in model.layers)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"filters": []}, "model.filters must be a non-empty list"),
        ({"filters": [0]}, "model.filters must be a non-empty list of positive integers"),
        ({"block_dropout": 1.0}, "model.block_dropout must be in [0, 1)"),
        ({"activation": "nope"}, "model.activation 'nope' is not a Keras activation"),
        ({"global_pooling": "mean"}, "model.global_pooling must be avg, max or flatten"),
    ],
)
def test_cnn_argument_validation(arguments, expected):
    with pytest.raises(ConfigError) as error:
        MODELS.get("cnn")((8, 8, 1), 10, **arguments)
    assert expected in str(error.value)


def test_cnn_rejects_unsupported_input_rank():
    with pytest.raises(ConfigError, match=r"received input_shape=\(8,\)"):
        MODELS.get("cnn")((8,), 10)


@pytest.mark.backend_neutral
def test_resolve_fills_defaults_and_checks_types():
    resolved = resolve_model_config({"builder": "cnn", "filters": [16]})
    assert resolved["filters"] == [16]
    assert resolved["dense_units"] == [128]
    assert set(resolved) == {"builder", *builder_hyperparameters("cnn")}
    with pytest.raises(ConfigError, match=r"model\.kernel_size must be an integer"):
        resolve_model_config({"builder": "cnn", "kernel_size": "3"})
    with pytest.raises(ConfigError, match=r"model\.global_pooling must be one of"):
        resolve_model_config({"builder": "cnn", "global_pooling": "mean"})
    with pytest.raises(ConfigError, match="unknown model builder 'cn'"):
        resolve_model_config({"builder": "cn"})
