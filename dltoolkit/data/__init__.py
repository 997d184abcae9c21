"""Data sources: ``builtin:NAME``, ``images:PATH``, ``npz:PATH``, ``tfds:NAME``.

Each source loads labelled examples as arrays; :func:`load_dataset` then makes the
deterministic stratified train/validation/test split that every recipe uses.
"""

from dltoolkit.data.sources import (
    ArraySplits,
    LabelledArrays,
    load_dataset,
    load_labelled,
    load_unlabelled,
    parse_source,
)

__all__ = [
    "ArraySplits",
    "LabelledArrays",
    "load_dataset",
    "load_labelled",
    "load_unlabelled",
    "parse_source",
]
