"""Deep embedded clustering: DEC (Xie et al., 2016) and IDEC (Guo et al., 2017).

An autoencoder is pretrained on reconstruction; k-means on its codes places the cluster
centres of a :class:`~dltoolkit.layers.ClusteringLayer`; then the encoder and the centres
are trained together to match the sharpened target distribution of their own soft
assignments (self-training), recomputed every ``update_interval`` steps, until fewer than
``tolerance`` of the points change cluster between two updates. IDEC keeps the decoder's
reconstruction loss in that phase so the embedding keeps the data's local structure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Literal

import keras
import numpy as np

from dltoolkit.errors import ConfigError
from dltoolkit.layers.clustering import ClusteringLayer, target_distribution
from dltoolkit.models.arguments import require
from dltoolkit.models.autoencoder import autoencoder, reconstruction_target
from dltoolkit.models.registry import MODELS


@MODELS.register("dec")
def dec(
    input_shape: Sequence[int],
    output_units: int | None = None,
    output_activation: str | None = None,
    *,
    preprocessing: keras.layers.Layer | None = None,
    input_name: str = "inputs",
    name: str = "dec",
    num_clusters: int = 10,
    alpha: float = 1.0,
    kind: Literal["dense", "conv", "lstm"] = "dense",
    latent_dim: int = 10,
    hidden_units: list[int] = (500, 500, 2000),
    filters: list[int] = (32, 64),
    units: list[int] = (64,),
    activation: str = "relu",
    noise_stddev: float = 0.0,
    input_dropout: float = 0.0,
) -> keras.Model:
    """A DEC/IDEC model: an autoencoder whose code also feeds a ClusteringLayer.

    Outputs a dict: ``clusters`` (soft assignments, ``(batch, num_clusters)``) and
    ``reconstruction``. Sub-models ``encoder`` and ``decoder`` and the layer
    ``clustering`` are reachable with ``model.get_layer``. Train it with :func:`fit_dec`.

    Args:
        input_shape: shape of one example, without the batch axis.
        output_units: must be None; the number of clusters is ``num_clusters``.
        output_activation: must be None.
        preprocessing: optional layer applied to the raw input inside the encoder.
        input_name: name of the input.
        name: model name.
        num_clusters: number of clusters.
        alpha: degrees of freedom of the Student's t assignment kernel.
        kind: autoencoder variant, ``dense``, ``conv`` or ``lstm``.
        latent_dim: size of the embedding that is clustered.
        hidden_units: ``dense``: encoder layer sizes (the paper's 500-500-2000).
        filters: ``conv``: filters per encoder block.
        units: ``lstm``: units per encoder LSTM layer.
        activation: hidden activation.
        noise_stddev: Gaussian input noise during training (denoising pretraining).
        input_dropout: masking noise during training.

    Returns:
        An uncompiled keras.Model.

    Example:
        >>> model = dec((64,), num_clusters=10, hidden_units=[256, 256, 512])
    """
    require(
        output_units is None and output_activation is None,
        "a dec model has no output head; set model.num_clusters. Received output_units="
        f"{output_units}, output_activation={output_activation!r}.",
    )
    require(num_clusters > 1, f"model.num_clusters must be at least 2, received {num_clusters}.")
    require(alpha > 0, f"model.alpha must be positive, received {alpha}.")
    base = autoencoder(
        input_shape,
        preprocessing=preprocessing,
        input_name=input_name,
        kind=kind,
        latent_dim=latent_dim,
        hidden_units=hidden_units,
        filters=filters,
        units=units,
        activation=activation,
        noise_stddev=noise_stddev,
        input_dropout=input_dropout,
    )

    # === Layers ===
    inputs = keras.Input(shape=tuple(input_shape), name=input_name)
    code = base.get_layer("encoder")(inputs)
    clusters = ClusteringLayer(num_clusters, alpha=alpha, name="clustering")(code)
    reconstruction = base.get_layer("decoder")(code)
    return keras.Model(inputs, {"clusters": clusters, "reconstruction": reconstruction}, name=name)


@dataclasses.dataclass
class DECHistory:
    """What :func:`fit_dec` did: losses per phase, label changes, and why it stopped."""

    pretrain_loss: list[float]
    kmeans_inertia: float
    label_change: list[float]
    loss: list[float]
    iterations: int
    converged: bool
    clusters: np.ndarray


class DECSteps:
    """How :func:`fit_dec` trains and runs its models: Keras' own ``fit``,
    ``train_on_batch`` and ``predict`` (under whatever strategy scope or JAX distribution
    is active). A distributed custom loop substitutes its own methods."""

    def fit(self, model: keras.Model, x, y, batch_size: int, epochs: int) -> list[float]:
        """Train ``epochs`` epochs on ``(x, y)``; the loss of each epoch."""
        history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
        return [float(value) for value in history.history["loss"]]

    def train(self, model: keras.Model, x, targets: list, batches: list[np.ndarray]) -> list[float]:
        """One step on each batch of row indices, in order; the loss of every step (or of
        every run of steps, where they run as one loop)."""
        losses = []
        for rows in batches:
            parts = [part[rows] for part in targets]
            result = model.train_on_batch(x[rows], parts if len(parts) > 1 else parts[0])
            losses.append(float(np.ravel(result)[0]))
        return losses

    def predict(self, model: keras.Model, x) -> np.ndarray:
        """The model's outputs for every row of ``x``."""
        return model.predict(x, batch_size=1024, verbose=0)


def fit_dec(
    model: keras.Model,
    x,
    *,
    method: Literal["dec", "idec"] = "idec",
    pretrain_epochs: int = 200,
    pretrain_optimizer: str | keras.optimizers.Optimizer = "adam",
    pretrain_batch_size: int = 256,
    batch_size: int = 256,
    optimizer: str | keras.optimizers.Optimizer | None = None,
    max_iterations: int = 20000,
    update_interval: int = 140,
    tolerance: float = 0.001,
    gamma: float = 0.1,
    kmeans_restarts: int = 20,
    seed: int = 0,
    pretrain: bool = True,
    log: Callable[[str], None] | None = None,
    steps: DECSteps | None = None,
) -> DECHistory:
    """Pretrain, initialise by k-means and self-train a :func:`dec` model on ``x``.

    Args:
        model: a model built by :func:`dec`.
        x: the examples to cluster.
        method: ``dec`` (clustering loss only) or ``idec`` (``reconstruction + gamma *
            clustering``, keeping the decoder in training).
        pretrain_epochs: epochs of autoencoder pretraining.
        pretrain_optimizer: optimizer for pretraining.
        pretrain_batch_size: batch size of pretraining.
        batch_size: batch size of self-training.
        optimizer: optimizer for self-training; default SGD(0.01, momentum 0.9) for DEC
            and Adam(0.001) for IDEC, as in the papers.
        max_iterations: most self-training steps.
        update_interval: steps between recomputing the target distribution.
        tolerance: stop when fewer than this share of points change cluster between two
            target updates.
        gamma: weight of the clustering loss in IDEC.
        kmeans_restarts: k-means runs (best inertia kept) for the initial centres.
        seed: seed of k-means and of the batch order.
        pretrain: False skips pretraining (the autoencoder is already trained).
        log: called with one line per target update.
        steps: how models are trained and run (default :class:`DECSteps`: Keras' own).

    Returns:
        A :class:`DECHistory`; ``clusters`` holds each example's final cluster.
    """
    from sklearn.cluster import KMeans

    if method not in ("dec", "idec"):
        raise ConfigError(f"method must be 'dec' or 'idec', received {method!r}.")
    for name, value in (
        ("batch_size", batch_size),
        ("pretrain_batch_size", pretrain_batch_size),
        ("update_interval", update_interval),
    ):
        if value < 1:
            raise ConfigError(f"{name} must be a positive integer, received {value}.")
    x = np.asarray(x, dtype=np.float32)
    if len(x) < 2:
        raise ConfigError(f"fit_dec needs at least 2 examples, received {len(x)}.")
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    clustering = model.get_layer("clustering")
    if len(x) < clustering.num_clusters:
        raise ConfigError(
            f"fit_dec got {len(x)} examples for {clustering.num_clusters} clusters; "
            "lower model.num_clusters or give more data."
        )
    inputs = keras.Input(shape=x.shape[1:])
    code = encoder(inputs)
    pretraining = pretrain and pretrain_epochs > 0
    # Only the decoder's losses (pretraining, IDEC) need the reconstruction target.
    target = reconstruction_target(model, x) if pretraining or method == "idec" else None

    # === Pretraining ===
    steps = steps or DECSteps()
    pretrain_loss: list[float] = []
    if pretraining:
        autoencoder_model = keras.Model(inputs, decoder(code))
        autoencoder_model.compile(optimizer=pretrain_optimizer, loss="mse")
        pretrain_loss = steps.fit(
            autoencoder_model, x, target, pretrain_batch_size, pretrain_epochs
        )

    # === Centres from k-means on the codes ===
    codes = steps.predict(encoder, x)
    kmeans = KMeans(clustering.num_clusters, n_init=kmeans_restarts, random_state=seed)
    clusters = kmeans.fit_predict(codes)
    clustering.centres.assign(kmeans.cluster_centers_.astype(np.float32))

    # === Self-training ===
    assignments = keras.Model(inputs, clustering(code))
    if method == "dec":
        trainer = assignments
        trainer.compile(optimizer=optimizer or keras.optimizers.SGD(0.01, momentum=0.9), loss="kld")
    else:
        trainer = keras.Model(inputs, [clustering(code), decoder(code)])
        trainer.compile(
            optimizer=optimizer or keras.optimizers.Adam(0.001),
            loss=["kld", "mse"],
            loss_weights=[gamma, 1.0],
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    position = 0
    label_change: list[float] = []
    losses: list[float] = []
    converged = False
    iteration = 0
    # The target distribution is fixed between updates, so the steps of one interval
    # are handed over together.
    while iteration < max_iterations:
        q = steps.predict(assignments, x)
        p = target_distribution(q)
        previous, clusters = clusters, q.argmax(axis=1)
        change = float(np.mean(previous != clusters))
        label_change.append(change)
        if log is not None:
            recent = f", loss {losses[-1]:.5f}" if losses else ""
            log(f"iteration {iteration}: {change:.2%} of points changed cluster{recent}")
        if iteration > 0 and change < tolerance:
            converged = True
            break
        batches = []
        for _ in range(min(update_interval, max_iterations - iteration)):
            if position + batch_size > len(x):
                order, position = rng.permutation(len(x)), 0
            batches.append(order[position : position + batch_size])
            position += batch_size
        targets = [p] if method == "dec" else [p, target]
        losses.extend(steps.train(trainer, x, targets, batches))
        iteration += len(batches)
    clusters = steps.predict(assignments, x).argmax(axis=1)
    return DECHistory(
        pretrain_loss=pretrain_loss,
        kmeans_inertia=float(kmeans.inertia_),
        label_change=label_change,
        loss=losses,
        iterations=iteration,
        converged=converged,
        clusters=clusters,
    )


def predict_clusters(model: keras.Model, x, batch_size: int = 1024) -> np.ndarray:
    """Each example's most probable cluster under a trained :func:`dec` model."""
    outputs = model.predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(outputs["clusters"]).argmax(axis=1)
