"""``npz:PATH``: a NumPy archive with arrays ``x`` (inputs) and ``y`` (labels)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from dltoolkit.config import DataConfig
from dltoolkit.data.arrays import LabelledArrays, labels_to_indices
from dltoolkit.errors import DataError


def load(path: str, config: DataConfig, require_labels: bool = True) -> LabelledArrays:
    """Load ``x`` and ``y`` from an .npz file; grey images of shape (N, H, W) get a channel."""
    source = f"npz:{path}"
    if not Path(path).is_file():
        raise DataError(f"npz file {path!r} does not exist; pass --data npz:PATH to a .npz file.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"{path!r} is not a readable .npz archive ({error}).") from None
    needed = ("x", "y") if require_labels else ("x",)
    missing = [key for key in needed if key not in arrays]
    if missing:
        raise DataError(
            f"npz file {path!r} has arrays {sorted(arrays)}, missing {missing}; "
            "save inputs as x and integer or string labels as y (np.savez(path, x=..., y=...))."
        )
    x = arrays["x"]
    if x.dtype.kind not in "iuf":
        raise DataError(f"npz file {path!r}: x has dtype {x.dtype}, expected numbers.")
    x = x.astype(np.float32)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim < 2:
        raise DataError(f"npz file {path!r}: x has shape {x.shape}, expected (N, features...).")
    if "y" not in arrays:
        return LabelledArrays(x=x, y=np.zeros(len(x), np.int64), class_names=[])
    y, class_names = labels_to_indices(arrays["y"], source)
    if "class_names" in arrays and len(arrays["class_names"]) == len(class_names):
        class_names = [str(name) for name in arrays["class_names"]]
    return LabelledArrays(x=x, y=y, class_names=class_names)
