"""The ``dltk`` command line: a thin layer over the Python API (:mod:`dltoolkit.api`), one
module per command group. Keras (and with it TensorFlow, JAX or torch) is imported only
inside commands, after the backend is chosen, so ``dltk --help`` and ``dltk recipe list``
stay fast."""

from dltoolkit.cli import results, run, serve, tune  # noqa: F401  (registers the commands)
from dltoolkit.cli.app import main

__all__ = ["main"]
