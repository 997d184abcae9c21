"""How the clustering task's DEC/IDEC training runs its steps: Keras' own fit with the
pretraining backed up every epoch, or a distribution strategy's own loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit import distribute, training
from dltoolkit.callbacks import AtomicBackupAndRestore, StopOnNonFiniteLoss
from dltoolkit.config import RunConfig
from dltoolkit.cost import EpochTimer
from dltoolkit.models.dec import DECSteps


class BackedUpSteps(DECSteps):
    """Keras' own steps, with the autoencoder's pretraining logged into the run directory's
    ``history.csv``, timed, backed up every epoch (an interrupted run started again resumes
    it) and stopped on a non-finite loss, as every task's fit is.

    After pretraining, ``history`` holds every epoch's loss (a resumed run's included) and
    ``epoch_seconds`` the seconds of the epochs this process trained."""

    def __init__(self, config: RunConfig, run_dir: Path | None):
        self.config = config
        self.run_dir = run_dir
        self.history: dict[str, list[float]] = {}
        self.epoch_seconds: list[float] = []

    def fit(self, model: keras.Model, x, y, batch_size: int, epochs: int) -> list[float]:
        """Pretrain for ``epochs`` epochs from the last backup; the loss of each epoch."""
        placement = distribute.current()
        placement.fits += 1
        backup = training.backup_dir(self.config) / f"fit-{placement.fits}"
        logged: list[keras.callbacks.Callback] = []
        if self.run_dir is not None:
            logged.append(keras.callbacks.CSVLogger(str(self.run_dir / "history.csv"), append=True))
        timer = EpochTimer()
        extra: list[keras.callbacks.Callback] = [StopOnNonFiniteLoss(self.config, backup), timer]
        if self.config.train.backup:
            extra.append(AtomicBackupAndRestore(backup, saved=logged))
        fitted = model.fit(
            x, y, batch_size=batch_size, epochs=epochs, callbacks=[*logged, *extra], verbose=0
        )
        self.history = training.whole_history(logged, fitted.history)
        self.epoch_seconds = timer.seconds
        return [float(value) for value in fitted.history["loss"]]


class LoopSteps(DECSteps):
    """DEC's training and inference where Keras' fit does not run (multi_worker,
    parameter_server): epochs and runs of self-training steps go through the strategy's
    own loop (:func:`dltoolkit.distribute.fit_in_loop`), each run of steps as one epoch
    over its rows; outputs come from calling the model on batches of rows."""

    def __init__(self, placement: Any, seed: int):
        self.placement = placement
        self.seed = seed
        self.runs = 0

    def _loop(self, epochs: int, batch_size: int) -> Any:
        return distribute.Loop(epochs, batch_size, [], 0, self.seed + self.runs, None)

    def fit(self, model: keras.Model, x, y, batch_size: int, epochs: int) -> list[float]:
        """Train ``epochs`` epochs on ``(x, y)``; the loss of each epoch."""
        history = distribute.fit_in_loop(
            model, self.placement, (x, y), None, self._loop(epochs, batch_size)
        )
        return [float(value) for value in history["loss"]]

    def train(self, model: keras.Model, x, targets: list, batches: list) -> list[float]:
        """The batches' steps as one epoch over their rows; its mean loss."""
        rows = np.concatenate(batches)
        parts = tuple(part[rows] for part in targets)
        self.runs += 1
        history = distribute.fit_in_loop(
            model,
            self.placement,
            (x[rows], parts if len(parts) > 1 else parts[0]),
            None,
            self._loop(1, len(batches[0])),
        )
        return [float(history["loss"][-1])]

    def predict(self, model: keras.Model, x) -> np.ndarray:
        """The model's outputs for every row of ``x``, 1,024 rows at a time."""
        outputs = [
            keras.ops.convert_to_numpy(model(x[start : start + 1024], training=False))
            for start in range(0, len(x), 1024)
        ]
        return np.concatenate(outputs)
