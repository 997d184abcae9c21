"""Choosing the Keras backend, which must happen before Keras is first imported."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys

from dltoolkit.config import BACKENDS
from dltoolkit.errors import DltkError

# The package each backend needs and the extra that installs it.
_BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def requested_backend(flag: str | None, config_backend: str | None) -> str:
    """The backend to use: --backend flag, then the config, then KERAS_BACKEND, then TF."""
    return flag or config_backend or os.environ.get("KERAS_BACKEND") or "tensorflow"


def use_backend(name: str) -> str:
    """Make ``name`` the Keras backend of this process and return it.

    Raises DltkError if the backend is unknown, its package is not installed, or Keras
    was already imported with another backend (Keras fixes its backend at import).
    """
    if name not in BACKENDS:
        raise DltkError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}.")
    package = _BACKEND_PACKAGES[name]
    if importlib.util.find_spec(package) is None:
        raise DltkError(
            f"backend {name!r} needs the {package!r} package, which is not installed; "
            f'install it with: pip install "dltoolkit[{name}]"'
            if name != "tensorflow"
            else f"backend {name!r} needs tensorflow; install it with: pip install tensorflow"
        )
    if "keras" in sys.modules:
        import keras

        active = keras.backend.backend()
        if active != name:
            raise DltkError(
                f"Keras is already running on the {active!r} backend in this process, "
                f"so {name!r} cannot be used; start a new process with KERAS_BACKEND={name}."
            )
        return name
    os.environ["KERAS_BACKEND"] = name
    # TensorFlow's C++ start-up chatter (CUDA probing, CPU features) hides real output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return name


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a run depends on (installed ones only)."""
    versions = {"python": platform.python_version()}
    for package in ("dltoolkit", "keras", "tensorflow", "jax", "torch", "numpy", "scikit-learn"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions
