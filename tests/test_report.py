"""report.html and its pictures, interpretability, dltk report, dltk runs list/compare,
and the page rendered by headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import BACKEND, invoke, one_line_error, run_recipe_in

from dltoolkit.report import overfitting_note, verdict

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def figures_in(page: str) -> int:
    return len(re.findall(r"<img [^>]*src='data:image/png;base64,", page))


def test_an_image_run_has_a_report_with_curves_confusion_and_saliency(trained_run: Path):
    page = (trained_run / "report.html").read_text()
    for name in ("learning_curves.png", "confusion_matrix.png", "saliency.png"):
        assert (trained_run / name).stat().st_size > 1000, name
        assert name in page
    assert figures_in(page) == int(re.search(r'data-figures="(\d+)"', page).group(1)) >= 3
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["interpretability"]["saliency"]["images"] == 4
    assert "logistic regression" in page and "training time" in page  # the verdict
    assert (trained_run / "test_outputs.npz").is_file()


def test_dltk_report_redraws_the_page(trained_run: Path, tmp_path: Path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    for path in copy.glob("*.png"):
        if path.name != "saliency.png":  # drawn by the run from the model, kept
            path.unlink()
    (copy / "report.html").unlink()
    result = invoke("report", str(copy))
    assert result.exit_code == 0, result.output
    assert (copy / "learning_curves.png").is_file() and (copy / "confusion_matrix.png").is_file()
    assert figures_in((copy / "report.html").read_text()) >= 3
    assert "not a finished run directory" in one_line_error(invoke("report", str(tmp_path)))


@pytest.mark.backend_neutral
def test_overfitting_is_called_out_only_when_validation_loss_turns_up():
    turning = {"loss": [1.0, 0.7, 0.5, 0.3, 0.2], "val_loss": [1.0, 0.8, 0.7, 0.8, 0.95]}
    note = overfitting_note(turning)
    assert note is not None and "bottomed at epoch 3 (0.7)" in note and "epoch 5" in note
    falling = {"loss": [1.0, 0.7, 0.5, 0.3], "val_loss": [1.0, 0.8, 0.7, 0.69]}
    assert overfitting_note(falling) is None
    flat = {"loss": [1.0, 0.7, 0.5, 0.3], "val_loss": [1.0, 0.6, 0.6001, 0.6002]}
    assert overfitting_note(flat) is None  # a rise of under 2% is noise


@pytest.mark.backend_neutral
def test_the_verdict_names_the_best_baseline_and_the_time_ratio():
    metrics = {
        "task": "binary",
        "test": {"roc_auc": 0.80},
        "train_seconds": 30.0,
        "baselines": [
            {"name": "logistic_regression", "test": {"roc_auc": 0.76}, "train_seconds": 1.0},
            {"name": "hist_gradient_boosting", "test": {"roc_auc": 0.79}, "train_seconds": 2.0},
        ],
    }
    line = verdict(metrics)
    assert line.startswith("The network beats hist gradient boosting by 0.01 roc_auc")
    assert "at 15x its training time" in line
    metrics["task"], metrics["test"] = "regression", {"rmse": 2.0}
    for baseline, rmse in zip(metrics["baselines"], (1.5, 2.5), strict=True):
        baseline["test"] = {"rmse": rmse}
    line = verdict(metrics)
    assert "trails logistic regression by 0.5 rmse" in line and "better choice" in line


def test_input_gradients_of_a_linear_model_are_its_kernel_columns():
    import keras

    from dltoolkit.interpret import input_gradients

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3, name="out")]
    )
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 1)).astype("float32")
    classes = np.array([2, 0])
    gradients = input_gradients(model, x, classes)
    kernel = np.asarray(model.get_layer("out").kernel)  # linear: d out_c / d x = kernel[:, c]
    for row, chosen in enumerate(classes):
        np.testing.assert_allclose(gradients[row].reshape(-1), kernel[:, chosen], atol=1e-6)


def test_permutation_importance_finds_the_feature_the_label_depends_on():
    import keras

    from dltoolkit.data.sources import ArraySplits
    from dltoolkit.features import encode, feature_space
    from dltoolkit.interpret import permutation_importance
    from dltoolkit.tasks.binary import binary_scores, positive

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "signal": rng.normal(size=600),
            "noise": rng.normal(size=600),
            "colour": rng.choice(["red", "blue"], 600),
        }
    )
    y = (frame["signal"] > 0).astype(np.int64).to_numpy()
    numeric, categorical = ["signal", "noise"], ["colour"]
    space = feature_space(frame[:400], numeric, categorical)
    x = encode(space, frame, numeric, categorical)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Dense(1, "sigmoid")])
    model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy")
    model.fit(x[:400], y[:400], epochs=40, batch_size=64, verbose=0)

    class Table:
        test = frame[400:].reset_index(drop=True)
        sampled = False

    Table.numeric, Table.categorical = numeric, categorical
    data = ArraySplits(x[:400], y[:400], x[:0], y[:0], x[400:], y[400:], ["0", "1"], "test")
    data.table, data.feature_space = Table, space

    def roc_auc(outputs: np.ndarray) -> float:
        return binary_scores(data.y_test, positive(outputs), 0.5)["roc_auc"]

    found = permutation_importance(model, data, roc_auc, "roc_auc", 3, 0, 256)
    ranked = {item["feature"]: item["mean"] for item in found["features"]}
    assert found["score"] == "roc_auc" and found["baseline_score"] > 0.95
    assert next(iter(ranked)) == "signal" and ranked["signal"] > 0.3
    assert abs(ranked["noise"]) < 0.05 and abs(ranked["colour"]) < 0.05


def test_runs_list_and_compare(trained_run: Path, tmp_path: Path):
    runs = tmp_path / "runs" / "cnn-image"
    runs.mkdir(parents=True)
    first, second = runs / "20260101T000000Z", runs / "20260102T000000Z"
    shutil.copytree(trained_run, first)
    shutil.copytree(trained_run, second)
    config = (second / "config.yaml").read_text().replace("seed: 0", "seed: 7")
    (second / "config.yaml").write_text(config)
    result = invoke("runs", "list", "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:5] == ["created", "recipe", "backend", "score", "network"]
    assert len(lines) == 4 and all("accuracy" in line for line in lines[2:])
    assert "logistic_regression" in lines[2]
    result = invoke("runs", "compare", str(first), str(second))
    assert result.exit_code == 0, result.output
    assert re.search(r"config seed\s+0\s+7", result.output)
    assert re.search(r"test accuracy\s+\S+\s+\S+", result.output)
    missing = invoke("runs", "list", "no-such-recipe", "--runs-dir", str(tmp_path / "runs"))
    assert "no finished runs" in one_line_error(missing)


def test_a_table_run_reports_curves_importance_and_tensorboard_logs(tmp_path: Path):
    from test_tabular import transactions, write_csv

    frame = transactions(300)
    path = write_csv(tmp_path, frame)
    run_dir = run_recipe_in(
        tmp_path, "mlp-regression", "--data", f"csv:{path}", "--set", "data.label=amount",
        "--set", "train.epochs=3", "--set", "train.verbose=0", "--set", "export.enabled=false",
        "--set", "report.permutation_repeats=2", "--tensorboard",
    )  # fmt: skip
    assert list((run_dir / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert list((run_dir / "tensorboard" / "validation").glob("events.out.tfevents.*"))
    page = (run_dir / "report.html").read_text()
    for name in ("predicted_vs_actual.png", "residuals.png", "permutation_importance.png"):
        assert (run_dir / name).is_file() and name in page, name
    importance = json.loads((run_dir / "metrics.json").read_text())["interpretability"]
    features = {item["feature"] for item in importance["permutation_importance"]["features"]}
    assert features == {"hour", "merchant", "fraud"}


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
@pytest.mark.skipif(BACKEND != "tensorflow", reason="the page is the same whatever the backend")
def test_headless_chromium_renders_the_report_with_its_images(trained_run: Path, tmp_path: Path):
    from PIL import Image

    page = trained_run / "report.html"
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
    ]  # fmt: skip
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    expected = int(re.search(r'data-figures="(\d+)"', dom).group(1))
    shown = re.search(r'data-figures-shown="(\d+)"', dom)
    assert shown is not None, "the page's load handler did not run"
    assert expected >= 3 and int(shown.group(1)) == expected
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={screenshot}", "--window-size=1200,2400", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    pixels = np.asarray(Image.open(screenshot).convert("RGB"), dtype=np.int64)
    colours = len(np.unique(pixels.reshape(-1, 3) @ np.array([65536, 256, 1])))
    assert pixels.shape[0] >= 2000 and colours > 500, colours  # plots, not a blank page
