"""The SelfOrganizingMap layer, the som builder and the map measures, on every backend."""

from pathlib import Path

import keras
import numpy as np
import pytest

from dltoolkit.errors import ConfigError
from dltoolkit.layers import SelfOrganizingMap, SOMSchedule, grid_coordinates
from dltoolkit.models import MODELS, resolve_model_config
from dltoolkit.models.som import (
    hit_map,
    label_map,
    quantization_error,
    topographic_error,
    u_matrix,
)


def blobs(per_blob: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated Gaussian blobs in 3-D, with their labels."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 6]], dtype=np.float32)
    x = np.concatenate([c + 0.3 * rng.normal(size=(per_blob, 3)) for c in centres])
    return x.astype("float32"), np.repeat(np.arange(3), per_blob)


def trained_som(topology: str = "rectangular", neighborhood: str = "gaussian"):
    x, labels = blobs()
    model = MODELS.get("som")((3,), map_shape=[4, 5], topology=topology, neighborhood=neighborhood)
    model.compile()
    model.fit(x, epochs=4, batch_size=30, callbacks=[SOMSchedule()], verbose=0)
    return model, x, labels


def test_grid_coordinates_rectangular_and_hexagonal():
    rectangular = grid_coordinates((2, 3))
    np.testing.assert_allclose(rectangular[4], [1, 1])
    hexagonal = grid_coordinates((3, 3), "hexagonal")
    # The six neighbours of the centre unit of a hexagonal grid are all at distance 1.
    distance = np.linalg.norm(hexagonal - hexagonal[4], axis=1)
    assert np.sum(np.isclose(distance, 1.0)) == 6


def test_outputs_and_a_codebook_row_is_its_own_best_match():
    layer = SelfOrganizingMap((3, 4), decay_steps=10)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    outputs = layer(x)
    assert tuple(outputs["bmu"].shape) == (5,)
    assert tuple(outputs["bmu_coordinates"].shape) == (5, 2)
    assert tuple(outputs["distances"].shape) == (5, 12)
    codebook = keras.ops.convert_to_numpy(layer.codebook)
    own = layer(codebook)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(own["bmu"]), np.arange(12))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(own["bmu_coordinates"]), layer.coordinates, atol=1e-6
    )
    distances = keras.ops.convert_to_numpy(outputs["distances"])
    expected = np.linalg.norm(x[:, None, :] - codebook[None], axis=-1)
    np.testing.assert_allclose(distances, expected, atol=1e-4)


def test_inference_leaves_the_codebook_alone_and_training_moves_it():
    layer = SelfOrganizingMap((3, 3), decay_steps=10)
    x = np.random.default_rng(1).normal(size=(8, 2)).astype("float32")
    layer(x)
    before = keras.ops.convert_to_numpy(layer.codebook).copy()
    layer(x, training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.codebook), before)
    layer(x, training=True)
    after = keras.ops.convert_to_numpy(layer.codebook)
    assert not np.allclose(after, before)
    assert float(keras.ops.convert_to_numpy(layer.iterations)) == 1.0


def test_one_full_batch_step_at_learning_rate_one_is_the_batch_map():
    """With lr 1 a step sets each unit to the neighbourhood-weighted mean of the batch."""
    layer = SelfOrganizingMap(
        (2, 2), sigma=1.0, sigma_end=1.0, learning_rate=1.0, learning_rate_end=1.0, decay_steps=1
    )
    x = np.random.default_rng(2).normal(size=(6, 3)).astype("float32")
    layer(x)
    codebook = keras.ops.convert_to_numpy(layer.codebook).copy()
    bmu = np.linalg.norm(x[:, None] - codebook[None], axis=-1).argmin(axis=1)
    grid = layer.coordinates
    influence = np.exp(-np.sum((grid[bmu][:, None] - grid[None]) ** 2, axis=-1) / 2.0)
    expected = influence.T @ x / influence.sum(axis=0)[:, None]
    layer(x, training=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.codebook), expected, atol=1e-5)


def test_sigma_and_learning_rate_decay_to_their_end_values():
    layer = SelfOrganizingMap((4, 4), sigma=2.0, sigma_end=0.5, decay_steps=4)
    x = np.zeros((2, 2), "float32")
    layer(x)
    sigma, rate = (
        float(keras.ops.convert_to_numpy(v)) for v in layer.current_sigma_and_learning_rate()
    )
    assert (sigma, rate) == pytest.approx((2.0, 0.5))
    for _ in range(6):  # past the end of the decay it stays at the end values
        layer(x, training=True)
    sigma, rate = (
        float(keras.ops.convert_to_numpy(v)) for v in layer.current_sigma_and_learning_rate()
    )
    assert (sigma, rate) == pytest.approx((0.5, 0.01), rel=1e-5)


def test_training_without_decay_steps_says_how_to_set_them():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, SelfOrganizingMap((2, 2))(inputs))
    model.compile()
    with pytest.raises(ValueError, match="SOMSchedule"):
        model.fit(np.zeros((4, 2), "float32"), epochs=1, verbose=0)


@pytest.mark.parametrize(
    ("topology", "neighborhood"),
    [("rectangular", "gaussian"), ("hexagonal", "gaussian"), ("rectangular", "bubble")],
)
def test_fit_lowers_the_quantization_error_and_maps_blobs_apart(topology, neighborhood):
    x, labels = blobs()
    model = MODELS.get("som")((3,), map_shape=[4, 5], topology=topology, neighborhood=neighborhood)
    model.compile()
    before = quantization_error(model, x)
    history = model.fit(x, epochs=4, batch_size=30, callbacks=[SOMSchedule()], verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    after = quantization_error(model, x)
    assert after < 0.5 * before
    assert after < 1.0  # blobs have a standard deviation of 0.3 per axis
    # Each blob's examples land on units that no other blob uses.
    bmu = model.predict(x, verbose=0)["bmu"]
    units_per_blob = [set(bmu[labels == label]) for label in range(3)]
    assert not (units_per_blob[0] & units_per_blob[1] or units_per_blob[1] & units_per_blob[2])


def test_map_measures():
    model, x, labels = trained_som()
    hits = hit_map(model, x)
    assert hits.shape == (4, 5) and hits.sum() == len(x)
    labelled = label_map(model, x, labels)
    assert labelled.shape == (4, 5)
    assert set(np.unique(labelled)) <= {-1, 0, 1, 2}
    assert np.all((labelled == -1) == (hits == 0))
    assert {0, 1, 2} <= set(np.unique(labelled))
    assert 0.0 <= topographic_error(model, x) <= 1.0
    heights = u_matrix(model)
    assert heights.shape == (4, 5) and np.all(heights >= 0)


def test_topographic_error_counts_non_adjacent_first_and_second_units():
    layer = SelfOrganizingMap((1, 3), decay_steps=1)
    inputs = keras.Input((1,))
    model = keras.Model(inputs, layer(inputs))
    layer.codebook.assign(np.array([[0.0], [10.0], [1.0]], "float32"))
    # 0.4: first unit 0, second unit 2 (two apart); 9.0: first unit 1, second unit 2.
    x = np.array([[0.4], [9.0]], "float32")
    assert topographic_error(model, x) == pytest.approx(0.5)


def test_u_matrix_is_the_mean_distance_to_grid_neighbours():
    layer = SelfOrganizingMap((1, 3), decay_steps=1)
    layer.build((None, 1))
    layer.codebook.assign(np.array([[0.0], [10.0], [1.0]], "float32"))
    np.testing.assert_allclose(u_matrix(layer), [[10.0, 9.5, 9.0]], atol=1e-5)
    square = SelfOrganizingMap((2, 2), decay_steps=1)
    square.build((None, 1))
    square.codebook.assign(np.array([[0.0], [1.0], [2.0], [3.0]], "float32"))
    # On a rectangular grid the diagonal unit is a neighbour too.
    np.testing.assert_allclose(u_matrix(square).ravel(), [2.0, 4 / 3, 4 / 3, 2.0], atol=1e-5)


def test_pca_initialisation_spans_the_leading_components():
    x, _ = blobs()
    layer = SelfOrganizingMap((6, 3))
    layer.initialize_from(x, "pca")
    codebook = keras.ops.convert_to_numpy(layer.codebook)
    np.testing.assert_allclose(codebook.mean(axis=0), x.mean(axis=0), atol=1e-4)
    # Adjacent units along the longer side differ along the first principal component.
    _, _, components = np.linalg.svd(x - x.mean(axis=0))
    step = codebook[3] - codebook[0]
    cosine = abs(step @ components[0]) / np.linalg.norm(step)
    assert cosine > 0.99


def test_serialization_round_trip_keeps_the_trained_map(tmp_path: Path):
    model, x, _ = trained_som("hexagonal")
    layer = model.get_layer("som")
    clone = SelfOrganizingMap.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    path = tmp_path / "som.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    expected, got = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    np.testing.assert_array_equal(got["bmu"], expected["bmu"])
    np.testing.assert_allclose(got["distances"], expected["distances"], atol=1e-5)
    assert loaded.get_layer("som").topology == "hexagonal"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"map_shape": [0, 3]}, "model.map_shape must be [rows, columns] of positive"),
        ({"map_shape": [3]}, "model.map_shape must be [rows, columns]"),
        ({"topology": "square"}, "topology must be one of"),
        ({"neighborhood": "mexican"}, "neighborhood must be one of"),
        ({"sigma": 1.0, "sigma_end": 2.0}, "Need 0 < sigma_end <= sigma"),
        ({"learning_rate": 1.5}, "Need 0 < learning_rate_end <= learning_rate <= 1"),
    ],
)
def test_som_argument_errors(arguments, expected):
    with pytest.raises(ConfigError) as error:
        MODELS.get("som")((3,), **arguments)
    assert expected in str(error.value)


def test_som_rejects_an_output_head():
    with pytest.raises(ConfigError, match="a som has no output head"):
        MODELS.get("som")((3,), 10, "softmax")


@pytest.mark.backend_neutral
def test_som_config_resolves_with_defaults():
    resolved = resolve_model_config({"builder": "som", "map_shape": [8, 8], "sigma": 2})
    assert resolved["map_shape"] == [8, 8]
    assert resolved["sigma"] == 2.0
    assert resolved["topology"] == "rectangular"


def test_a_fresh_process_loads_the_map_after_importing_dltoolkit_layers(tmp_path: Path):
    """Custom layers register on import of dltoolkit.layers, which export and serve use."""
    import subprocess
    import sys

    model, x, _ = trained_som()
    path = tmp_path / "som.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, keras, dltoolkit.layers\n"
        "model = keras.saving.load_model(sys.argv[1], safe_mode=True)\n"
        "np.save(sys.argv[2], model.predict(np.load(sys.argv[3]), verbose=0)['bmu'])\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(path),
            str(tmp_path / "bmu.npy"),
            str(tmp_path / "x.npy"),
        ],
        check=True,
        capture_output=True,
    )
    expected = model.predict(x, verbose=0)["bmu"]
    np.testing.assert_array_equal(np.load(tmp_path / "bmu.npy"), expected)


def test_layer_input_and_initialisation_errors():
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, features\)"):
        SelfOrganizingMap((2, 2))(np.zeros((2, 3, 4), "float32"))
    layer = SelfOrganizingMap((2, 2))
    layer.build((None, 3))
    with pytest.raises(ValueError, match="initialize_from got 5 features; the map has 3"):
        layer.initialize_from(np.zeros((4, 5), "float32"))
    with pytest.raises(ValueError, match="method must be 'pca' or 'sample'"):
        layer.initialize_from(np.zeros((4, 3), "float32"), "kmeans")
    with pytest.raises(ValueError, match="decay_steps must be a positive integer"):
        layer.set_decay_steps(0)
