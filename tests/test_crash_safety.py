"""Crash safety: a run killed mid-training resumes with the same command (or dltk train
--resume) into the same run directory; a NaN loss stops the run with one clear line; a
killed export never leaves a version folder that would not load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import BACKEND, invoke, one_line_error

SLOW_ENOUGH = (
    "recipe", "mlp-regression",
    "--set", "train.epochs=25",
    "--set", "train.batch_size=8",
    "--set", "train.early_stopping.patience=null",
    "--set", "train.verbose=0",
    "--set", "export.enabled=false",
)  # fmt: skip


def environment() -> dict[str, str]:
    env = {**os.environ, "KERAS_BACKEND": BACKEND}
    env.pop("TF_CONFIG", None)
    return env


def start(folder: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dltoolkit", *args], cwd=folder, env=environment(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def epochs_backed_up(folder: Path) -> int:
    """The epoch count in the newest backup's metadata (0 when there is none)."""
    found = list((folder / "runs" / ".backup").glob("*/fit-*/current/training_metadata.json"))
    if not found:
        return 0
    try:
        return int(json.loads(found[0].read_text())["epoch"]) + 1
    except (ValueError, KeyError, OSError):
        return 0  # being written


@pytest.mark.parametrize("how", ["same command", "--resume"])
def test_a_run_killed_mid_training_resumes_into_the_same_run_directory(
    tmp_path: Path, how: str
) -> None:
    first = start(tmp_path, *SLOW_ENOUGH)
    deadline = time.monotonic() + 300
    while epochs_backed_up(tmp_path) < 3 and time.monotonic() < deadline:
        assert first.poll() is None, first.stdout.read() if first.stdout else ""
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    (run_dir,) = (tmp_path / "runs" / "mlp-regression").iterdir()
    assert not (run_dir / "metrics.json").exists()
    if how == "same command":
        second = start(tmp_path, *SLOW_ENOUGH)
    else:
        second = start(tmp_path, "train", "--resume", str(run_dir))
    output = second.communicate(timeout=600)[0]
    assert second.returncode == 0, output[-3000:]
    assert f"resuming the interrupted run in runs/mlp-regression/{run_dir.name}" in output
    assert [p.name for p in (tmp_path / "runs" / "mlp-regression").iterdir()] == [run_dir.name]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == 25
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == list(range(25))
    assert not list((tmp_path / "runs" / ".backup").glob("*/*")), "backup outlived the run"


@pytest.mark.backend_neutral
def test_resume_of_a_finished_run_is_refused(workdir: Path) -> None:
    result = invoke(*SLOW_ENOUGH[:2], "--set", "train.epochs=1", "--set", "train.verbose=0",
                    "--set", "export.enabled=false")  # fmt: skip
    assert result.exit_code == 0, result.output
    (run_dir,) = (workdir / "runs" / "mlp-regression").iterdir()
    line = one_line_error(invoke("train", "--resume", str(run_dir)))
    assert "nothing to resume" in line and str(run_dir) in line


def test_a_nan_loss_stops_the_run_with_the_epoch_and_a_hint(workdir: Path) -> None:
    result = invoke(
        "recipe", "mlp-regression", "--set", "train.optimizer=sgd",
        "--set", "train.learning_rate=1e8", "--set", "train.epochs=5",
        "--set", "train.verbose=0", "--set", "export.enabled=false",
    )  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: training stopped: the loss became nan")
    assert "loss became" in line and "in epoch 1." in line and "train.learning_rate" in line
    (run_dir,) = (workdir / "runs" / "mlp-regression").iterdir()
    assert not (run_dir / "metrics.json").exists()


@pytest.mark.skipif(
    BACKEND != "tensorflow", reason="export runs under TensorFlow whatever the backend"
)
def test_a_killed_export_never_leaves_a_version_that_would_not_load(
    trained_run: Path, tmp_path: Path
) -> None:
    import tensorflow as tf

    repository = tmp_path / "repository"
    for delay in (0.5, 2.0, 4.0, 8.0):
        process = subprocess.Popen(
            [sys.executable, "-m", "dltoolkit.export", str(trained_run / "model.keras"),
             str(repository), "cnn-image"],
            env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
    folder = repository / "cnn-image"
    versions = (
        [child for child in folder.iterdir() if child.name.isdigit()] if folder.exists() else []
    )
    for version in versions:
        loaded = tf.saved_model.load(str(version))
        assert "serving_default" in loaded.signatures
    leftovers = (
        [child.name for child in folder.iterdir() if not child.name.isdigit()]
        if folder.exists()
        else []
    )
    assert all(name.startswith(".") for name in leftovers), leftovers
    # The next export clears the hidden folders the killed ones left behind.
    subprocess.run(
        [sys.executable, "-m", "dltoolkit.export", str(trained_run / "model.keras"),
         str(repository), "cnn-image"],
        env=environment(), check=True, capture_output=True,
    )  # fmt: skip
    assert [child.name for child in folder.iterdir() if child.name.startswith(".")] == []
    newest = max(int(child.name) for child in folder.iterdir())
    assert "serving_default" in tf.saved_model.load(str(folder / str(newest))).signatures


class _Interrupted(Exception):
    pass


class _StopAfter(__import__("keras").callbacks.Callback):
    """Interrupt a fit at the end of epoch ``epoch`` (after the backup, being later in
    the callback list)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.epoch:
            raise _Interrupted


def test_a_resumed_fit_keeps_early_stopping_and_learning_rate_state(tmp_path: Path) -> None:
    """Interrupted after 2 epochs and resumed, a fit stops at the same epoch with the
    same best weights and learning rate as an uninterrupted one: the backup carries
    EarlyStopping's patience and best weights and ReduceLROnPlateau's counters."""
    import keras
    import numpy as np

    from dltoolkit.callbacks import AtomicBackupAndRestore

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], "float32"))[:, None]

    def fit(backup: Path, stop_after: int | None = None) -> tuple:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="out")])
        model.compile(keras.optimizers.SGD(0.01), "mse")
        # min_delta so large that only the first epoch counts as an improvement.
        stopping = keras.callbacks.EarlyStopping(
            "loss", min_delta=1e6, patience=4, restore_best_weights=True
        )
        plateau = keras.callbacks.ReduceLROnPlateau(
            "loss", factor=0.5, patience=1, cooldown=1, min_delta=1e6
        )
        callbacks = [stopping, plateau, AtomicBackupAndRestore(backup, [stopping, plateau])]
        if stop_after is not None:
            callbacks.append(_StopAfter(stop_after))
        history = model.fit(
            x, y, epochs=20, batch_size=64, shuffle=False, callbacks=callbacks, verbose=0
        )
        return model, history.history, stopping, plateau

    whole, whole_history, stopping, plateau = fit(tmp_path / "whole")
    assert len(whole_history["loss"]) == 5 and stopping.stopped_epoch == 4

    with pytest.raises(_Interrupted):
        fit(tmp_path / "cut", stop_after=2)
    resumed, resumed_history, stopping_again, plateau_again = fit(tmp_path / "cut")
    assert stopping_again.stopped_epoch == 4
    assert len(resumed_history["loss"]) == 2  # epochs 4 and 5, after the restored 3
    for mine, theirs in zip(resumed.get_weights(), whole.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-6)
    assert float(np.asarray(resumed.optimizer.learning_rate)) == pytest.approx(
        float(np.asarray(whole.optimizer.learning_rate))
    )
    assert (plateau_again.wait, plateau_again.cooldown_counter) == (
        plateau.wait,
        plateau.cooldown_counter,
    )


def test_the_backup_leaves_batches_asynchronous(tmp_path: Path) -> None:
    """A callback with its own per-batch hook makes fit wait for every batch's logs; the
    backup (saved at epoch ends only) keeps Keras' default hook."""
    import keras

    from dltoolkit.callbacks import AtomicBackupAndRestore, StopOnNonFiniteLoss
    from dltoolkit.config import RunConfig
    from dltoolkit.cost import EpochTimer

    added = [
        AtomicBackupAndRestore(tmp_path),
        StopOnNonFiniteLoss(RunConfig(name="check"), tmp_path),
        EpochTimer(),
    ]
    for callback in added:
        for hook in ("on_batch_end", "on_train_batch_end", "on_test_batch_end"):
            assert getattr(getattr(callback, hook), "_is_default", False), (callback, hook)
    if BACKEND != "tensorflow":  # Keras dispatches callbacks asynchronously on these
        callback_list = keras.callbacks.CallbackList(added)
        assert callback_list._async_train and callback_list._async_test
