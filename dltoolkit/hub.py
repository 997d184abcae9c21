"""keras-hub presets loaded by name or from a folder, with one-line errors offline.

A preset is named (keras-hub downloads it, so it needs the internet) or is the path of a
folder written by ``save_to_preset`` (works offline). The image and text backbones and
the text tokenizers all load theirs through :func:`from_preset`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dltoolkit.errors import DltkError

T = TypeVar("T")


def keras_hub(what: str) -> Any:
    """The keras_hub module, or a one-line error saying how to install it for ``what``."""
    try:
        import keras_hub as module
    except ImportError:
        raise DltkError(
            f"{what} needs keras-hub; install it with pip install 'dltoolkit[hub]'."
        ) from None
    return module


def from_preset(
    load: Callable[[str], T],
    preset: str,
    what: str,
    example: str,
    task: str = "ImageClassifier",
    task_arguments: str = "",
) -> T:
    """``load(preset)`` (a keras-hub ``from_preset``), or a one-line error: a folder that
    does not exist or cannot be loaded, a name keras-hub does not know, or a name that
    could not be downloaded (with how to save it as a folder on a machine that has it:
    through keras-hub's ``task`` model, which saves the preprocessing with the weights).
    ``what`` names the object (``text backbone``), ``example`` a preset name to suggest."""
    local = Path(preset)
    if local.is_file() or (not local.exists() and ("/" in preset or preset.startswith("."))):
        state = "is a file" if local.is_file() else "does not exist"
        raise DltkError(
            f"keras-hub preset folder {preset!r} {state}; pass a folder written by "
            "save_to_preset, or a preset name."
        )
    try:
        return load(preset)
    except Exception as error:  # keras-hub raises many kinds on a failed download
        text = " ".join(str(error).split())[:200]
        if local.is_dir():
            raise DltkError(
                f"keras-hub preset folder {preset!r} cannot be loaded as a {what}: {text}"
            ) from None
        if "Unknown preset" in text:
            raise DltkError(
                f"keras-hub preset {preset!r} is neither a preset name keras-hub knows nor a "
                f"preset folder; name one (e.g. hub:{example}) or pass the path of a folder "
                "saved with save_to_preset."
            ) from None
        raise DltkError(
            f"keras-hub preset {preset!r} is not a local folder and could not be downloaded "
            f"({type(error).__name__}: {text}); without internet, save it on a machine that "
            f"has it (keras_hub.models.{task}.from_preset({preset!r}{task_arguments})"
            ".save_to_preset(DIR)) and "
            "name the folder: hub:DIR."
        ) from None
