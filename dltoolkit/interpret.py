"""What drives a model: permutation feature importance for tables, gradient saliency for
images. Both run on the test split at the end of a run and feed its report."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit import features
from dltoolkit.plots import pyplot, save_figure
from dltoolkit.runs import higher_is_better
from dltoolkit.training import predict_outputs


def permutation_importance(
    model: keras.Model,
    data: Any,
    score_of: Callable[[np.ndarray], float],
    name: str,
    repeats: int,
    seed: int,
    batch_size: int,
) -> dict[str, Any]:
    """How much a test score worsens when one raw feature column is shuffled (the others
    kept), per column, ``repeats`` shuffles each.

    Args:
        model: the trained network, taking the FeatureSpace's encoding.
        data: the run's ArraySplits of a table (raw test frame in ``data.table.test``: the
            test split, or a bounded sample of it where the table streamed from disk).
        score_of: the score (named ``name``) of the model's outputs on the test rows.
        name: the score's name; whether higher is better follows from it.
        repeats: shuffles per column.
        seed: seed of the shuffles.
        batch_size: prediction batch size.

    Returns:
        ``{"score", "baseline_score", "repeats", "features": [{"feature", "mean", "std"}]}``,
        features ordered by mean worsening, largest first.
    """
    table, space = data.table, data.feature_space
    higher = higher_is_better(name)

    def score(x: np.ndarray) -> float:
        return float(score_of(predict_outputs(model, x, batch_size)))

    base = score(
        features.encode(space, table.test, table.numeric, table.categorical)
        if table.sampled
        else data.x_test
    )
    rng = np.random.default_rng(seed)
    results = []
    for column in [*table.numeric, *table.categorical]:
        worsening = []
        for _ in range(repeats):
            frame = table.test.copy()
            frame[column] = rng.permutation(frame[column].to_numpy())
            shuffled = score(features.encode(space, frame, table.numeric, table.categorical))
            worsening.append(base - shuffled if higher else shuffled - base)
        results.append(
            {"feature": column, "mean": float(np.mean(worsening)), "std": float(np.std(worsening))}
        )
    results.sort(key=lambda item: item["mean"], reverse=True)
    return {"score": name, "baseline_score": base, "repeats": repeats, "features": results}


def input_gradients(model: keras.Model, x: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """Gradient of each row's ``class_ids`` output with respect to its input, on the active
    backend (TensorFlow's GradientTape, ``jax.grad``, or torch autograd)."""
    x = np.asarray(x, np.float32)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        inputs = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = model(inputs, training=False)
            total = tf.reduce_sum(tf.gather(outputs, class_ids, axis=1, batch_dims=1))
        return tape.gradient(total, inputs).numpy()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def total(inputs):
            outputs = model(inputs, training=False)
            return jnp.take_along_axis(outputs, class_ids[:, None], axis=1).sum()

        return np.asarray(jax.grad(total)(jnp.asarray(x)))
    if backend == "torch":
        import torch

        inputs = torch.tensor(x, requires_grad=True)
        outputs = model(inputs, training=False)
        index = torch.as_tensor(class_ids, dtype=torch.int64)[:, None]
        torch.gather(outputs, 1, index).sum().backward()
        return inputs.grad.detach().cpu().numpy()
    raise NotImplementedError(f"input gradients are not written for backend {backend!r}")


def saliency_figure(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    folder: Path,
) -> dict[str, Any]:
    """``saliency.png``: each test image beside the magnitude of the gradient of its
    predicted class's probability per pixel (the largest over channels)."""
    outputs = np.asarray(model.predict(images, verbose=0))
    predicted = outputs.argmax(axis=-1)
    gradients = np.abs(input_gradients(model, images, predicted)).max(axis=-1)
    plt = pyplot()
    count = len(images)
    figure, axes = plt.subplots(2, count, figsize=(2.2 * count, 4.6), squeeze=False)
    for index in range(count):
        image = images[index]
        shown = image[..., 0] if image.shape[-1] == 1 else image / max(float(image.max()), 1.0)
        axes[0, index].imshow(shown, cmap="gray" if image.shape[-1] == 1 else None)
        axes[0, index].set_title(
            f"true {class_names[labels[index]]}\npredicted {class_names[predicted[index]]}",
            fontsize=8,
        )
        axes[1, index].imshow(gradients[index], cmap="inferno")
        for axis in axes[:, index]:
            axis.set_axis_off()
    save_figure(figure, folder / "saliency.png")
    return {"images": count, "predicted": predicted.tolist(), "true": labels.tolist()}


def token_occlusion(
    model: keras.Model,
    ids: np.ndarray,
    classes: np.ndarray,
    batch_size: int,
    hidden: int = 1,
    special: Collection[int] = (0,),
) -> np.ndarray:
    """How much each token of each row of ``ids`` (token ids) holds up the probability of
    that row's class in ``classes``: the probability minus the one with the token replaced
    by the id ``hidden`` (the unknown or mask token). Positive: the token argues for the
    class. Zero at ``special`` ids (padding, start and end tokens), which are never
    replaced. Works on any backend (predictions only); a row of ``n`` tokens costs ``n``
    predictions."""
    ids = np.asarray(ids)

    def probability(outputs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if outputs.shape[-1] == 1:  # one sigmoid unit: the positive class's probability
            outputs = np.concatenate([1.0 - outputs, outputs], axis=-1)
        return outputs[np.arange(len(outputs)), rows]

    # every (text, token) to occlude, text by text
    rows, positions = np.nonzero(~np.isin(ids, list(special)))
    variants = ids[rows].copy()
    variants[np.arange(len(rows)), positions] = hidden
    # One prediction over the texts and all their variants (one traced function).
    outputs = predict_outputs(model, np.concatenate([ids, variants]), batch_size)
    base = probability(outputs[: len(ids)], classes)
    occluded = probability(outputs[len(ids) :], classes[rows])
    weights = np.zeros(ids.shape, np.float64)
    weights[rows, positions] = base[rows] - occluded
    return weights


def token_figure(examples: list[dict[str, Any]], folder: Path, shown: int = 8) -> None:
    """``tokens.png``: for each explained text, its ``shown`` tokens that moved its
    predicted class's probability most (bars right: for the class, left: against)."""
    plt = pyplot()
    count = len(examples)
    figure, axes = plt.subplots(count, 1, figsize=(7.5, 1.9 * count + 0.4), squeeze=False)
    for axis, example in zip(axes[:, 0], examples, strict=True):
        top = example["tokens"][:shown][::-1]
        values = [weight for _, weight in top]
        axis.barh(
            range(len(top)),
            values,
            color=["#2a7ab0" if value >= 0 else "#c4512b" for value in values],
        )
        axis.set_yticks(range(len(top)), [token for token, _ in top], fontsize=8)
        axis.axvline(0, color="#888", linewidth=0.6)
        text = " ".join(example["text"].split())
        text = text if len(text) <= 90 else text[:87] + "..."
        axis.set_title(
            f"true {example['true']} · predicted {example['predicted']}\n{text}",
            fontsize=8,
            loc="left",
        )
        axis.tick_params(axis="x", labelsize=7)
    axes[-1, 0].set_xlabel("drop in the predicted class's probability without the token")
    figure.tight_layout()
    save_figure(figure, folder / "tokens.png")
