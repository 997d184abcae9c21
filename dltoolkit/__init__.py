"""dltoolkit: a Keras 3 multi-backend deep-learning training toolkit.

Importing this package does not import Keras, so the backend can still be
chosen (``dltoolkit.backend.use_backend``) after ``import dltoolkit``.
"""

__version__ = "0.1.0"
