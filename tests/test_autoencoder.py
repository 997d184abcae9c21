"""The autoencoder builder: variants, encoder/decoder sub-models, denoising, round trip."""

from pathlib import Path

import keras
import numpy as np
import pytest

from dltoolkit.errors import ConfigError
from dltoolkit.models import MODELS
from dltoolkit.models.autoencoder import reconstruction_error, reconstruction_target

# case -> (input shape, hyperparameters)
CASES = {
    "dense": ((12,), {"hidden_units": [16, 8], "batch_norm": True}),
    "dense-rank2": ((3, 4), {"hidden_units": [8]}),
    "conv2d": ((8, 8, 1), {"kind": "conv", "filters": [4, 8]}),
    "conv2d-odd-size": ((7, 9, 2), {"kind": "conv", "filters": [4, 4]}),
    "conv1d-odd-length": ((15, 2), {"kind": "conv", "filters": [4, 4]}),
    "lstm": ((6, 3), {"kind": "lstm", "units": [8, 4]}),
    "denoising": ((12,), {"hidden_units": [8], "noise_stddev": 0.2, "input_dropout": 0.1}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_shapes_training_and_round_trip(case: str, tmp_path: Path):
    shape, hyperparameters = CASES[case]
    model = MODELS.get("autoencoder")(shape, latent_dim=3, **hyperparameters)
    assert model.output_shape == (None, *shape)
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    assert encoder.output_shape == (None, 3)
    assert decoder.input_shape == (None, 3)

    x = np.random.default_rng(0).random((16, *shape)).astype("float32")
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, reconstruction_target(model, x), epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # The autoencoder is exactly decoder(encoder(x)).
    np.testing.assert_allclose(
        model.predict(x, verbose=0),
        decoder.predict(encoder.predict(x, verbose=0), verbose=0),
        atol=1e-5,
    )
    errors = reconstruction_error(model, x)
    assert errors.shape == (16,) and np.all(errors >= 0)

    path = tmp_path / "autoencoder.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_allclose(
        loaded.get_layer("encoder").predict(x, verbose=0),
        encoder.predict(x, verbose=0),
        atol=1e-5,
    )


def test_denoising_noise_is_active_in_training_only():
    model = MODELS.get("autoencoder")((12,), latent_dim=2, hidden_units=[], noise_stddev=1.0)
    x = np.ones((4, 12), "float32")
    encoder = model.get_layer("encoder")
    inference = keras.ops.convert_to_numpy(encoder(x, training=False))
    np.testing.assert_allclose(inference, keras.ops.convert_to_numpy(encoder(x)), atol=1e-6)
    noisy = keras.ops.convert_to_numpy(encoder(x, training=True))
    assert not np.allclose(noisy, inference)


def test_preprocessing_sets_the_reconstruction_target():
    x = (np.random.default_rng(1).random((32, 5)) * 100 + 50).astype("float32")
    normalization = keras.layers.Normalization()
    normalization.adapt(x)
    model = MODELS.get("autoencoder")((5,), preprocessing=normalization, hidden_units=[4])
    target = reconstruction_target(model, x)
    np.testing.assert_allclose(target.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(target.std(axis=0), 1.0, atol=1e-3)
    plain = MODELS.get("autoencoder")((5,), hidden_units=[4])
    np.testing.assert_array_equal(reconstruction_target(plain, x), x)


def test_a_trained_autoencoder_scores_outliers_higher():
    rng = np.random.default_rng(2)
    basis = rng.normal(size=(2, 10)).astype("float32")
    normal = (rng.normal(size=(400, 2)) @ basis).astype("float32")  # a 2-D subspace
    outliers = rng.normal(scale=2.0, size=(20, 10)).astype("float32")
    keras.utils.set_random_seed(0)
    model = MODELS.get("autoencoder")((10,), latent_dim=2, hidden_units=[16])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(normal, normal, epochs=40, batch_size=32, verbose=0)
    assert np.median(reconstruction_error(model, outliers)) > 5 * np.median(
        reconstruction_error(model, normal)
    )


@pytest.mark.parametrize(
    ("shape", "arguments", "expected"),
    [
        ((4,), {"kind": "vae"}, "model.kind must be one of dense, conv, lstm"),
        ((4,), {"latent_dim": 0}, "model.latent_dim must be positive"),
        ((4,), {"noise_stddev": -1.0}, "model.noise_stddev must be >= 0"),
        ((4,), {"input_dropout": 1.0}, "model.input_dropout must be in [0, 1)"),
        ((4,), {"kind": "conv"}, "a conv autoencoder needs inputs of fixed shape"),
        ((4,), {"kind": "lstm"}, "an lstm autoencoder needs inputs of shape (steps, features)"),
        ((4,), {"latent_activation": "nope"}, "model.latent_activation 'nope' is not"),
        ((5, 3), {"kind": "lstm", "batch_norm": True}, "model.batch_norm is not available"),
    ],
)
def test_autoencoder_argument_errors(shape, arguments, expected):
    with pytest.raises(ConfigError) as error:
        MODELS.get("autoencoder")(shape, **arguments)
    assert expected in str(error.value)


def test_autoencoder_rejects_an_output_head():
    with pytest.raises(ConfigError, match="has no output head"):
        MODELS.get("autoencoder")((4,), 3, "softmax")
