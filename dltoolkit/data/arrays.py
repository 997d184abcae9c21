"""Labelled examples as arrays, and their train/validation/test split."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dltoolkit.errors import DataError


@dataclass
class LabelledArrays:
    """Examples ``x`` with integer labels ``y`` indexing ``class_names``."""

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    file_paths: list[str] = field(default_factory=list)


@dataclass
class ArraySplits:
    """A train/validation/test split of labelled arrays."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    source: str
    # Tables: the raw split (TableSplits) and the FeatureSpace that encoded it.
    table: Any = None
    feature_space: Any = None
    # Texts: the tokenizer that turned the table's text column into token ids
    # (dltoolkit.data.text.TextTokenizer).
    text: Any = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def sizes(self) -> dict[str, int]:
        """Number of examples per split."""
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}


def labels_to_indices(labels: np.ndarray, source: str) -> tuple[np.ndarray, list[str]]:
    """Map arbitrary labels (ints or strings) to 0..K-1 and the sorted class names."""
    if labels.ndim != 1:
        raise DataError(
            f"data source {source!r}: labels have shape {labels.shape}, expected one "
            "label per example (a 1-D array)."
        )
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise DataError(
                f"data source {source!r}: labels are non-integer floats; classification "
                "expects integer or string class labels (task: regression predicts a number)."
            )
        labels = labels.astype(np.int64)
    classes, indices = np.unique(labels, return_inverse=True)
    return indices.astype(np.int64), [str(name) for name in classes]
