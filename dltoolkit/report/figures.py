"""The report's pictures: learning curves with overfitting called out, confusion matrices,
ROC and precision-recall curves, predicted against actual, feature importance and latent
spaces. Each function draws one picture into the run directory and returns its
:class:`Figure` (file, title, caption); tasks call the ones that fit them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dltoolkit.plots import pyplot, save_figure

TEST_OUTPUTS = "test_outputs.npz"


@dataclass
class Figure:
    """One picture of the report: its file in the run directory, title and caption."""

    filename: str
    title: str
    caption: str = ""


def save_test_outputs(run_dir: Path, y_true: np.ndarray, outputs: np.ndarray, **extra) -> None:
    """Keep the network's test outputs beside the run, for the report's plots."""
    np.savez_compressed(run_dir / TEST_OUTPUTS, y_true=y_true, outputs=outputs, **extra)


def load_test_outputs(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The saved test labels and outputs of a run, or None where it kept none."""
    path = run_dir / TEST_OUTPUTS
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as saved:
        return saved["y_true"], saved["outputs"]


def load_test_extra(run_dir: Path, name: str) -> np.ndarray | None:
    """A further test array a run saved beside its outputs, or None."""
    path = run_dir / TEST_OUTPUTS
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as saved:
        return saved[name] if name in saved.files else None


def reliability_plot(
    tables: dict[str, dict[str, Any]], rows: int, folder: Path, bins: int = 10
) -> Figure:
    """Observed against predicted positive rate over equal-count bins of test
    probabilities: one line per reliability table in ``tables`` (label: the table and its
    expected calibration error, as ``reliability`` scores give them)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(4.6, 4.2))
    axis.plot([0, 1], [0, 1], color="0.7", ls=":", label="perfectly calibrated")
    for label, scores in tables.items():
        table = scores["calibration"]
        error = scores["expected_calibration_error"]
        label = f"{label} (ECE {error:.3f})"
        axis.plot(table["predicted"], table["observed"], "o-", ms=4, label=label)
    axis.set_xlabel("predicted probability (bin mean)")
    axis.set_ylabel("observed positive rate")
    axis.legend(fontsize=8, loc="upper left")
    save_figure(figure, folder / "reliability.png")
    caption = (
        f"Test split, {bins} bins of equal count; ECE is the expected calibration error. On "
        f"a few hundred rows even a perfectly calibrated model shows an ECE of several "
        f"hundredths from sampling alone ({rows} test rows here)."
    )
    return Figure("reliability.png", "Reliability diagram", caption)


def points_plot(
    goods: np.ndarray, bads: np.ndarray, class_names: list[str], folder: Path
) -> Figure:
    """Histograms of the scorecard points of the test split's goods and bads."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.6, 3.6))
    both = np.concatenate([goods, bads])
    edges = np.histogram_bin_edges(both, bins=30) if len(both) else 10
    for values, name in ((goods, class_names[0]), (bads, class_names[1])):
        axis.hist(values, bins=edges, alpha=0.55, label=f"{name} ({len(values)})")
    axis.set_xlabel("scorecard points (higher: lower risk)")
    axis.set_ylabel("test rows")
    axis.legend(fontsize=8)
    save_figure(figure, folder / "scorecard_points.png")
    return Figure(
        "scorecard_points.png",
        "Scorecard points of goods and bads",
        "Test split: the further apart the two histograms, the better the score separates them.",
    )


def overfitting_note(history: dict[str, list[float]], monitor: str = "val_loss") -> str | None:
    """A sentence when the validation loss turned up while the training loss kept falling
    (the network started to overfit), else None."""
    validation, training = history.get(monitor), history.get("loss")
    if not validation or not training or len(validation) < 3:
        return None
    best = int(np.argmin(validation))
    last = len(validation) - 1
    if best >= last - 1:
        return None
    rise = validation[last] - validation[best]
    if rise <= 0.02 * abs(validation[best]) or training[last] >= training[best]:
        return None
    return (
        f"Overfitting: validation loss bottomed at epoch {best + 1} ({validation[best]:.4g}) and "
        f"rose to {validation[last]:.4g} by epoch {last + 1} while the training loss kept "
        f"falling ({training[best]:.4g} to {training[last]:.4g}); the generalisation gap widened "
        f"from {validation[best] - training[best]:.4g} to {validation[last] - training[last]:.4g}."
    )


def learning_curves(
    history: dict[str, list[float]], best_epoch: int | None, folder: Path
) -> Figure | None:
    """Training vs validation per metric, the best (restored) epoch marked."""
    names = [n for n in history if not n.startswith("val_") and f"val_{n}" in history]
    if not names:
        return None
    plt = pyplot()
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    epochs = np.arange(1, len(history[names[0]]) + 1)
    for axis, name in zip(axes[0], names, strict=True):
        axis.plot(epochs, history[name], label="training")
        axis.plot(epochs, history[f"val_{name}"], label="validation")
        if best_epoch:
            axis.axvline(best_epoch, color="0.5", ls="--", lw=1, label=f"best epoch {best_epoch}")
        axis.set_xlabel("epoch")
        axis.set_title(name.replace("_", " "))
        axis.legend(fontsize=8)
    save_figure(figure, folder / "learning_curves.png")
    return Figure(
        "learning_curves.png",
        "Learning curves",
        "Training vs validation per epoch; the dashed line is the epoch whose weights were kept.",
    )


def confusion_matrix_plot(
    y: np.ndarray, predicted: np.ndarray, names: list[str], folder: Path, note: str = ""
) -> Figure:
    """Row-normalised confusion matrix with counts."""
    from sklearn.metrics import confusion_matrix

    labels = list(range(len(names)))
    counts = confusion_matrix(y, predicted, labels=labels)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    plt = pyplot()
    size = min(2.5 + 0.45 * len(names), 9)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axis, label="share of the true class")
    if len(names) <= 20:
        for (row, column), count in np.ndenumerate(counts):
            colour = "white" if shares[row, column] > 0.5 else "black"
            axis.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    axis.set_xticks(labels, names, rotation=45 if len(names) > 6 else 0, ha="right")
    axis.set_yticks(labels, names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    save_figure(figure, folder / "confusion_matrix.png")
    return Figure("confusion_matrix.png", "Confusion matrix", f"Test split{note}.")


# The share of rows ranked highest whose positives binary runs count (a campaign mailing the
# top fifth of its customers; CoIL 2000's 800 of 4,000), and the gains chart marks.
TOP_SHARE = 0.2


def ranking_plots(
    y: np.ndarray, scores: np.ndarray, threshold: float, folder: Path
) -> list[Figure]:
    """ROC and precision-recall curves with the chosen threshold's point marked."""
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    if len(np.unique(y)) < 2:
        return []
    plt = pyplot()
    chosen = scores >= threshold
    positives, negatives = max(int((y == 1).sum()), 1), max(int((y == 0).sum()), 1)
    tpr = float((chosen & (y == 1)).sum()) / positives
    fpr = float((chosen & (y == 0)).sum()) / negatives
    precision_at = float((chosen & (y == 1)).sum()) / max(int(chosen.sum()), 1)

    figure, axis = plt.subplots(figsize=(4.6, 4.2))
    false_rate, true_rate, _ = roc_curve(y, scores)
    axis.plot(false_rate, true_rate, label=f"network (AUC {roc_auc_score(y, scores):.3f})")
    axis.plot([0, 1], [0, 1], color="0.7", ls=":", label="chance")
    axis.plot([fpr], [tpr], "o", color="C3", label=f"threshold {threshold:.3g}")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate (recall)")
    axis.legend(fontsize=8, loc="lower right")
    save_figure(figure, folder / "roc.png")

    figure, axis = plt.subplots(figsize=(4.6, 4.2))
    precision, recall, _ = precision_recall_curve(y, scores)
    average = average_precision_score(y, scores)
    axis.plot(recall, precision, label=f"network (average precision {average:.3f})")
    axis.axhline(float(np.mean(y)), color="0.7", ls=":", label="chance (positive rate)")
    axis.plot([tpr], [precision_at], "o", color="C3", label=f"threshold {threshold:.3g}")
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.legend(fontsize=8, loc="upper right")
    save_figure(figure, folder / "precision_recall.png")

    figure, axis = plt.subplots(figsize=(4.6, 4.2))
    order = np.argsort(-scores, kind="stable")
    contacted = np.arange(len(y) + 1) / len(y)
    captured = np.concatenate([[0.0], np.cumsum(y[order] == 1) / positives])
    axis.plot(contacted, captured, label="network")
    axis.plot([0, 1], [0, 1], color="0.7", ls=":", label="random order")
    top = max(1, round(TOP_SHARE * len(y)))
    lift = (
        f"top {TOP_SHARE:.0%}: {captured[top]:.0%} of positives "
        f"(lift {captured[top] / TOP_SHARE:.2f})"
    )
    axis.plot([TOP_SHARE], [captured[top]], "o", color="C3", label=lift)
    axis.set_xlabel("share of rows, highest scores first")
    axis.set_ylabel("share of positives found")
    axis.legend(fontsize=8, loc="lower right")
    save_figure(figure, folder / "gains.png")
    return [
        Figure("roc.png", "ROC curve", _THRESHOLD_DOT),
        Figure("precision_recall.png", "Precision-recall curve", _THRESHOLD_DOT),
        Figure(
            "gains.png",
            "Cumulative gains",
            "Test split: the share of all positives among the rows scored highest (whom a "
            f"campaign would contact first); the dot is the top {TOP_SHARE:.0%}.",
        ),
    ]


_THRESHOLD_DOT = "Test split; the dot is the threshold chosen on validation."


def regression_plots(y: np.ndarray, predicted: np.ndarray, folder: Path) -> list[Figure]:
    """Predicted vs actual, and residuals against the prediction."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(4.6, 4.4))
    axis.scatter(y, predicted, s=10, alpha=0.6)
    low, high = float(min(y.min(), predicted.min())), float(max(y.max(), predicted.max()))
    axis.plot([low, high], [low, high], color="0.5", ls="--", lw=1, label="perfect")
    axis.set_xlabel("actual")
    axis.set_ylabel("predicted")
    axis.legend(fontsize=8)
    save_figure(figure, folder / "predicted_vs_actual.png")

    residuals = y - predicted
    figure, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.6))
    left.scatter(predicted, residuals, s=10, alpha=0.6)
    left.axhline(0, color="0.5", ls="--", lw=1)
    left.set_xlabel("predicted")
    left.set_ylabel("actual - predicted")
    right.hist(residuals, bins=30, color="C0")
    right.set_xlabel("residual")
    right.set_ylabel("rows")
    save_figure(figure, folder / "residuals.png")
    return [
        Figure("predicted_vs_actual.png", "Predicted vs actual", "Test split."),
        Figure("residuals.png", "Residuals", "Test split: structure here is signal left unused."),
    ]


def importance_plot(importances: list[dict[str, Any]], score: str, folder: Path) -> Figure:
    """Horizontal bars: how much the test score worsens when each feature is shuffled."""
    ordered = sorted(importances, key=lambda item: item["mean"])[-25:]
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 0.3 * len(ordered) + 1.2))
    axis.barh(
        [item["feature"] for item in ordered],
        [item["mean"] for item in ordered],
        xerr=[item["std"] for item in ordered],
        color="C0",
    )
    axis.axvline(0, color="0.5", lw=0.8)
    axis.set_xlabel(f"loss of test {score} when the feature is shuffled")
    save_figure(figure, folder / "permutation_importance.png")
    return Figure(
        "permutation_importance.png",
        "Permutation feature importance",
        f"Each raw feature column shuffled on the test split; bars are the mean worsening of "
        f"{score} (error bars: spread over repeats). Near zero or negative: the model does "
        "not rely on it.",
    )


def latent_picture(
    encoder: Any,
    x: np.ndarray,
    groups: np.ndarray,
    names: list[str],
    title: str,
    folder: Path,
) -> Figure:
    """``latent_space.png``: the encoder's codes of ``x`` on their first two principal
    components, one colour per group (``names[g]`` for group ``g``)."""
    from sklearn.decomposition import PCA

    codes = np.asarray(encoder.predict(x, batch_size=1024, verbose=0)).reshape(len(x), -1)
    if codes.shape[1] > 2:
        codes = PCA(n_components=2, random_state=0).fit_transform(codes)
    elif codes.shape[1] == 1:
        codes = np.column_stack([codes[:, 0], np.zeros(len(codes))])
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.6, 4.6))
    colours = plt.get_cmap("tab10")
    for group in np.unique(groups):
        chosen = groups == group
        axis.scatter(
            codes[chosen, 0], codes[chosen, 1], s=8, alpha=0.6, color=colours(int(group) % 10),
            label=f"{names[int(group)]} ({int(chosen.sum())})",
        )  # fmt: skip
    axis.set_xlabel("latent component 1")
    axis.set_ylabel("latent component 2")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8, markerscale=2)
    save_figure(figure, folder / "latent_space.png")
    return Figure("latent_space.png", "Latent space", title)
