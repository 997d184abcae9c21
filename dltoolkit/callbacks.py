"""Callbacks that make training resumable and stop it on a diverged loss.

A backup holds what an uninterrupted run would still have in memory at the end of an
epoch: the model's weights and epoch (Keras' BackupAndRestore files), and the state of the
callbacks that count epochs — EarlyStopping's patience, best value and best weights,
ReduceLROnPlateau's patience and cooldown — so a resumed run stops, lowers its learning
rate and restores its best weights when the uninterrupted one would have.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit.config import RunConfig
from dltoolkit.errors import DltkError
from dltoolkit.runs import fresh_folder, recover_folder, swap_in_folder

CALLBACK_STATE = "callbacks.json"

# The attributes that carry a callback's progress from one epoch to the next.
_STATE = {
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch", "stopped_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
}


def _stateful(callbacks: list[keras.callbacks.Callback]) -> list[keras.callbacks.Callback]:
    return [callback for callback in callbacks if type(callback) in _STATE]


def save_callback_state(callbacks: list[keras.callbacks.Callback], folder: Path) -> None:
    """Write the epoch-to-epoch state of ``callbacks`` (and EarlyStopping's best weights)
    into ``folder``."""
    states = []
    for index, callback in enumerate(_stateful(callbacks)):
        state: dict[str, Any] = {}
        for name in _STATE[type(callback)]:
            value = getattr(callback, name, None)
            state[name] = None if value is None else float(value)
        best_weights = getattr(callback, "best_weights", None)
        if best_weights is not None:
            state["best_weights"] = f"best-weights-{index}.npz"
            np.savez(folder / state["best_weights"], *[np.asarray(w) for w in best_weights])
        states.append({"callback": type(callback).__name__, **state})
    (folder / CALLBACK_STATE).write_text(json.dumps(states))


def restore_callback_state(callbacks: list[keras.callbacks.Callback], folder: Path) -> None:
    """Put back the state :func:`save_callback_state` wrote, if ``folder`` holds one. Call
    it after the callbacks' ``on_train_begin`` (which resets them)."""
    path = folder / CALLBACK_STATE
    if not path.exists():
        return
    stateful = _stateful(callbacks)
    states = json.loads(path.read_text())
    if [state["callback"] for state in states] != [type(c).__name__ for c in stateful]:
        return  # the callbacks changed since the backup: start them afresh
    for callback, state in zip(stateful, states, strict=True):
        for name in _STATE[type(callback)]:
            value = state[name]
            integer = name in ("wait", "best_epoch", "stopped_epoch", "cooldown_counter")
            setattr(callback, name, None if value is None else int(value) if integer else value)
        if "best_weights" in state:
            with np.load(folder / state["best_weights"]) as arrays:
                callback.best_weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore (same files, same restore) with every save atomic and the
    other callbacks' state saved too: weights, epoch and callback state are written into a
    fresh folder that then takes the backup's place, so a process killed while saving
    leaves the previous backup or the new one whole, never a torn weights file.

    Put it after the callbacks it saves, so it sees their state at the end of the epoch.
    """

    def __init__(self, folder: Path, saved: list[keras.callbacks.Callback] | None = None):
        self.current = Path(folder) / "current"
        self.saved = list(saved or [])
        self._restore_state = False
        super().__init__(str(self.current))

    def on_train_begin(self, logs: dict | None = None) -> None:
        recover_folder(self.current)
        self._restore_state = self.current.is_dir()
        super().on_train_begin(logs)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        # The first epoch begins after every callback's on_train_begin has reset it.
        if self._restore_state:
            restore_callback_state(self.saved, self.current)
            self._restore_state = False
        super().on_epoch_begin(epoch, logs)

    # Saves happen at epoch ends only, so the per-batch hook goes back to Keras' default:
    # a callback that overrides it makes fit wait for every batch's logs (on JAX and torch
    # it turns off asynchronous dispatch), which cost up to a fifth of the throughput.
    on_train_batch_end = keras.callbacks.Callback.on_train_batch_end

    def _save_model(self) -> None:  # Keras' hook for one save
        fresh = fresh_folder(self.current)
        self.model.save_weights(str(fresh / Path(self._weights_path).name))
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        (fresh / Path(self._training_metadata_path).name).write_text(json.dumps(metadata))
        save_callback_state(self.saved, fresh)
        swap_in_folder(fresh, self.current)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop training at the end of the first epoch whose loss is NaN or infinite, with a
    message that names the epoch and says what to try. It runs before the backup, so the
    backup keeps the last good epoch. (Checked per epoch, not per batch: reading the loss
    every batch would make the device wait for it.)"""

    def __init__(self, config: RunConfig, backup: Path):
        super().__init__()
        self.config = config
        self.backup = backup

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if value is None or math.isfinite(float(value)):
                continue
            kept = f"; the last good epoch is backed up in {self.backup}" if epoch else ""
            raise DltkError(
                f"training stopped: the {key.replace('_', ' ')} became {float(value)} in "
                f"epoch {epoch + 1}. Lower train.learning_rate (now "
                f"{self.config.train.learning_rate}), check that the inputs are scaled and "
                f"free of extreme values, or add regularisation{kept}."
            )
