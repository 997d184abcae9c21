"""ClusteringLayer, the target distribution, the dec builder, fit_dec and clustering scores."""

from pathlib import Path

import keras
import numpy as np
import pytest

from dltoolkit.errors import ConfigError
from dltoolkit.layers import ClusteringLayer, target_distribution
from dltoolkit.models import MODELS
from dltoolkit.models.dec import fit_dec, predict_clusters
from dltoolkit.tasks.clustering import cluster_accuracy, clustering_scores


def blobs(per_blob: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated clusters in 6-D, with their labels."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * np.eye(3, 6, dtype=np.float32)
    x = np.concatenate([c + 0.2 * rng.normal(size=(per_blob, 6)) for c in centres])
    return x.astype("float32"), np.repeat(np.arange(3), per_blob)


def test_soft_assignments_are_the_students_t_kernel_and_sum_to_one():
    layer = ClusteringLayer(3, alpha=1.0)
    z = np.random.default_rng(0).normal(size=(5, 2)).astype("float32")
    q = keras.ops.convert_to_numpy(layer(z))
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-6)
    centres = keras.ops.convert_to_numpy(layer.centres)
    kernel = 1.0 / (1.0 + np.sum((z[:, None] - centres[None]) ** 2, axis=-1))
    np.testing.assert_allclose(q, kernel / kernel.sum(axis=1, keepdims=True), atol=1e-6)
    # A point at a centre is assigned to that centre most.
    at_centres = keras.ops.convert_to_numpy(layer(centres))
    np.testing.assert_array_equal(at_centres.argmax(axis=1), np.arange(3))


def test_target_distribution_sharpens_and_sums_to_one():
    q = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]], "float32")
    p = target_distribution(q)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    weight = q**2 / q.sum(axis=0)
    np.testing.assert_allclose(p, weight / weight.sum(axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_array_equal(p.argmax(axis=1), q.argmax(axis=1))
    # Every row is more confident: its largest entry grows and its entropy falls.
    assert np.all(p.max(axis=1) > q.max(axis=1))
    entropy = lambda a: -(a * np.log(a)).sum(axis=1)  # noqa: E731
    assert np.all(entropy(p) < entropy(q))


def test_clustering_layer_round_trip_and_errors():
    layer = ClusteringLayer(4, alpha=2.0, name="clusters")
    clone = ClusteringLayer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="num_clusters must be a positive integer"):
        ClusteringLayer(0)
    with pytest.raises(ValueError, match="alpha must be positive"):
        ClusteringLayer(2, alpha=0)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, features\)"):
        ClusteringLayer(2)(np.zeros((2, 3, 4), "float32"))


@pytest.mark.backend_neutral
def test_cluster_accuracy_finds_the_best_mapping():
    labels = [0, 0, 1, 1, 2, 2]
    assert cluster_accuracy(labels, [2, 2, 0, 0, 1, 1]) == 1.0
    assert cluster_accuracy(labels, [1, 1, 1, 1, 0, 0]) == pytest.approx(4 / 6)
    assert cluster_accuracy(["a", "a", "b"], [5, 5, 5]) == pytest.approx(2 / 3)
    scores = clustering_scores(labels, [2, 2, 0, 0, 1, 1])
    assert scores == pytest.approx({"accuracy": 1.0, "nmi": 1.0, "ari": 1.0})
    with pytest.raises(ValueError, match="two 1-D arrays of equal length"):
        cluster_accuracy([0, 1], [0])


@pytest.mark.parametrize("method", ["dec", "idec"])
def test_fit_dec_clusters_separated_blobs(method: str, tmp_path: Path):
    x, labels = blobs()
    keras.utils.set_random_seed(0)
    model = MODELS.get("dec")((6,), num_clusters=3, latent_dim=2, hidden_units=[16])
    lines: list[str] = []
    history = fit_dec(
        model,
        x,
        method=method,
        pretrain_epochs=30,
        pretrain_batch_size=16,
        batch_size=16,
        update_interval=5,
        max_iterations=60,
        log=lines.append,
    )
    assert history.pretrain_loss[-1] < history.pretrain_loss[0]
    assert len(history.label_change) == len(lines) >= 1
    assert clustering_scores(labels, history.clusters)["accuracy"] == 1.0
    np.testing.assert_array_equal(predict_clusters(model, x), history.clusters)

    path = tmp_path / "dec.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(predict_clusters(loaded, x), history.clusters)
    outputs = loaded.predict(x, verbose=0)
    assert outputs["clusters"].shape == (len(x), 3)
    assert outputs["reconstruction"].shape == x.shape


def test_self_training_moves_the_centres():
    x, _ = blobs()
    keras.utils.set_random_seed(1)
    model = MODELS.get("dec")((6,), num_clusters=3, latent_dim=2, hidden_units=[8])
    fit_dec(model, x, pretrain_epochs=5, max_iterations=0)
    after_kmeans = keras.ops.convert_to_numpy(model.get_layer("clustering").centres).copy()
    fit_dec(model, x, pretrain=False, method="dec", max_iterations=10, batch_size=16)
    trained = keras.ops.convert_to_numpy(model.get_layer("clustering").centres)
    assert not np.allclose(after_kmeans, trained)


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"method": "kmeans"}, "method must be 'dec' or 'idec'"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"update_interval": 0}, "update_interval must be a positive integer"),
    ],
)
def test_fit_dec_argument_errors(arguments, expected):
    model = MODELS.get("dec")((6,), num_clusters=3, hidden_units=[4])
    with pytest.raises(ConfigError, match=expected):
        fit_dec(model, blobs()[0], **arguments)


def test_fit_dec_needs_more_examples_than_clusters():
    model = MODELS.get("dec")((6,), num_clusters=3, hidden_units=[4])
    with pytest.raises(ConfigError, match="fit_dec got 2 examples for 3 clusters"):
        fit_dec(model, blobs()[0][:2])


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"num_clusters": 1}, "model.num_clusters must be at least 2"),
        ({"alpha": 0.0}, "model.alpha must be positive"),
        ({"hidden_units": [0]}, "model.hidden_units must be a list of positive"),
    ],
)
def test_dec_builder_argument_errors(arguments, expected):
    with pytest.raises(ConfigError) as error:
        MODELS.get("dec")((6,), **arguments)
    assert expected in str(error.value)
