"""Probability calibration as a layer, so a saved or exported model gives calibrated
probabilities to every consumer."""

import itertools

import keras
from keras import ops

TRANSFORMS = ("logit", "log")
METHODS = ("logistic", "isotonic")


@keras.saving.register_keras_serializable(package="dltoolkit")
class Calibration(keras.layers.Layer):
    """Maps a score to a calibrated probability with a fitted monotone map.

    The score is first put on an unbounded scale: ``logit`` for a probability (clipped to
    ``[1e-7, 1 - 1e-7]``, where float32 sigmoids saturate), ``log`` for a positive score such
    as a reconstruction error (``log(score + 1e-12)``). Then ``logistic`` gives
    ``sigmoid(slope * z + intercept)`` (Platt scaling; temperature scaling is the case
    ``intercept = 0``, ``slope = 1 / T``), and ``isotonic`` interpolates linearly between
    the knots of an isotonic regression fitted on ``z`` (flat beyond the end knots).

    Args:
        method: ``"logistic"`` or ``"isotonic"``.
        transform: ``"logit"`` or ``"log"``.
        slope: the logistic map's slope (must be positive, so the map is increasing).
        intercept: the logistic map's intercept.
        knots_x: isotonic knots on the transformed scale, strictly increasing.
        knots_y: the probabilities at ``knots_x``, non-decreasing, in [0, 1].

    Input shape:
        ``(batch,)`` or ``(batch, 1)``.

    Output shape:
        the input's.

    Example:
        >>> layer = Calibration("logistic", "logit", slope=1.0, intercept=0.0)
        >>> [round(float(v), 3) for v in layer(ops.array([0.2, 0.7]))]
        [0.2, 0.7]
    """

    def __init__(
        self,
        method: str = "logistic",
        transform: str = "logit",
        slope: float = 1.0,
        intercept: float = 0.0,
        knots_x: list[float] | None = None,
        knots_y: list[float] | None = None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}. Received: method={method!r}")
        if transform not in TRANSFORMS:
            raise ValueError(
                f"transform must be one of {TRANSFORMS}. Received: transform={transform!r}"
            )
        if method == "logistic" and not slope > 0:
            raise ValueError(f"slope must be positive (an increasing map). Received: slope={slope}")
        knots_x, knots_y = list(knots_x or []), list(knots_y or [])
        if method == "isotonic":
            if not knots_x or len(knots_x) != len(knots_y):
                raise ValueError(
                    "isotonic calibration needs knots_x and knots_y of the same non-zero "
                    f"length. Received: {len(knots_x)} and {len(knots_y)} knots"
                )
            if any(b <= a for a, b in itertools.pairwise(knots_x)) or any(
                b < a for a, b in itertools.pairwise(knots_y)
            ):
                raise ValueError(
                    "isotonic knots must increase (knots_x strictly, knots_y weakly). "
                    f"Received: knots_x={knots_x}, knots_y={knots_y}"
                )
        self.method = method
        self.transform = transform
        self.slope = float(slope)
        self.intercept = float(intercept)
        self.knots_x = [float(v) for v in knots_x]
        self.knots_y = [float(v) for v in knots_y]

    def call(self, inputs):
        score = ops.cast(inputs, "float32")
        if self.transform == "logit":
            score = ops.clip(score, 1e-7, 1.0 - 1e-7)
            z = ops.log(score) - ops.log1p(-score)
        else:
            z = ops.log(ops.maximum(score, 0.0) + 1e-12)
        if self.method == "logistic":
            return ops.sigmoid(self.slope * z + self.intercept)
        return self._interpolate(z)

    def _interpolate(self, z):
        knots_y = ops.convert_to_tensor(self.knots_y, dtype="float32")
        if len(self.knots_x) == 1:
            return ops.zeros_like(z) + knots_y[0]
        knots_x = ops.convert_to_tensor(self.knots_x, dtype="float32")
        z = ops.clip(z, self.knots_x[0], self.knots_x[-1])
        flat = ops.reshape(z, (-1,))
        # The segment [knots_x[i], knots_x[i + 1]] holding each z.
        index = ops.searchsorted(knots_x, flat, side="right") - 1
        index = ops.clip(index, 0, len(self.knots_x) - 2)
        x0, x1 = ops.take(knots_x, index), ops.take(knots_x, index + 1)
        y0, y1 = ops.take(knots_y, index), ops.take(knots_y, index + 1)
        gap = x1 - x0
        weight = ops.where(gap > 0, (flat - x0) / ops.maximum(gap, 1e-30), 0.0)
        return ops.reshape(y0 + weight * (y1 - y0), ops.shape(z))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "method": self.method,
            "transform": self.transform,
            "slope": self.slope,
            "intercept": self.intercept,
            "knots_x": self.knots_x,
            "knots_y": self.knots_y,
        }
