"""Datasets that ship inside installed packages, so they load without a network."""

from __future__ import annotations

import numpy as np

from dltoolkit.config import DataConfig
from dltoolkit.data.arrays import LabelledArrays
from dltoolkit.errors import DataError, did_you_mean


def _digits() -> LabelledArrays:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 8x8 grey levels 0..16, one channel; normalisation happens inside the model.
    x = digits.images.astype(np.float32)[..., np.newaxis]
    return LabelledArrays(
        x=x, y=digits.target.astype(np.int64), class_names=[str(i) for i in range(10)]
    )


BUILTIN = {"digits": _digits}


def load(name: str, config: DataConfig) -> LabelledArrays:
    """Load builtin dataset ``name``."""
    if name not in BUILTIN:
        from dltoolkit.data.builtin_tables import BUILTIN_TABLES

        known = [*BUILTIN, *BUILTIN_TABLES]
        raise DataError(
            f"unknown builtin dataset {name!r}{did_you_mean(name, known)}; "
            f"available: {', '.join(sorted(known))}."
        )
    return BUILTIN[name]()
