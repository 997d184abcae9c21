"""Features of a price window computed inside the model, from the window alone."""

from __future__ import annotations

import re

import keras
from keras import ops

# Raw columns a window may hold, in this order; ``price`` is always first.
ROLES = ("price", "high", "low", "volume")
_FEATURE = re.compile(r"^(log_return|log_range|volume_change|(volatility|momentum)_(\d+))$")


def parse_feature(name: str) -> tuple[str, int]:
    """``(kind, days)`` of a feature name: ``volatility_20`` -> ``("volatility", 20)``.

    Raises ValueError naming the feature and the valid forms.
    """
    match = _FEATURE.match(name)
    if match is None:
        raise ValueError(
            f"unknown series feature {name!r}; expected log_return, log_range, volume_change, "
            "volatility_N or momentum_N (N >= 2 days, e.g. volatility_20)."
        )
    if match.group(2):
        days = int(match.group(3))
        if days < 2:
            raise ValueError(f"series feature {name!r} needs N >= 2 days, received {days}.")
        return match.group(2), days
    return name, 0


def required_roles(features: list[str]) -> list[str]:
    """The raw columns (roles, in window order) that ``features`` need."""
    kinds = {parse_feature(name)[0] for name in features}
    needed = {"price"}
    if "log_range" in kinds:
        needed |= {"high", "low"}
    if "volume_change" in kinds:
        needed.add("volume")
    return [role for role in ROLES if role in needed]


def warmup_days(features: list[str]) -> int:
    """Rows a window needs before its first feature day: the longest look-back of any
    feature (a daily log return already needs the day before)."""
    longest = 0
    for name in features:
        kind, days = parse_feature(name)
        longest = max(longest, days if days else (0 if kind == "log_range" else 1))
    return longest


@keras.saving.register_keras_serializable(package="dltoolkit")
class SeriesFeatures(keras.layers.Layer):
    """Per-day features of the last ``lookback`` days of a window of raw daily rows.

    The input is a window of ``lookback + warmup_days(features)`` rows of raw columns
    (``columns``: ``price`` first, then any of ``high``, ``low``, ``volume``). Every
    feature of day t uses rows up to t only, so a model that starts with this layer takes
    raw prices and cannot see past the window's end.

    Args:
        columns: the roles of the input's columns, in order (see :func:`required_roles`).
        features: feature names: ``log_return``, ``log_range``, ``volume_change``,
            ``volatility_N``, ``momentum_N``.
        lookback: days of features returned.

    Input shape:
        ``(batch, lookback + warmup_days(features), len(columns))``, prices > 0.

    Output shape:
        ``(batch, lookback, len(features))``.

    Example:
        >>> layer = SeriesFeatures(["price"], ["log_return", "volatility_5"], lookback=10)
        >>> layer(ops.ones((2, 15, 1))).shape
        (2, 10, 2)
    """

    def __init__(self, columns: list[str], features: list[str], lookback: int, **kwargs):
        super().__init__(**kwargs)
        if lookback < 1:
            raise ValueError(f"SeriesFeatures needs lookback >= 1, received lookback={lookback}.")
        if not features:
            raise ValueError("SeriesFeatures needs at least one feature, received features=[].")
        missing = [role for role in required_roles(features) if role not in columns]
        if missing or columns[:1] != ["price"]:
            raise ValueError(
                f"SeriesFeatures features {features} need columns {required_roles(features)} "
                f"with price first, received columns={columns}."
            )
        self.columns = list(columns)
        self.features = list(features)
        self.lookback = int(lookback)
        self.window = self.lookback + warmup_days(self.features)

    def build(self, input_shape):
        if input_shape[-2] is not None and input_shape[-2] != self.window:
            raise ValueError(
                f"SeriesFeatures(lookback={self.lookback}, features={self.features}) takes "
                f"windows of {self.window} rows, received input_shape={tuple(input_shape)}."
            )

    def _column(self, x, role: str):
        return x[:, :, self.columns.index(role)]

    def _last(self, values, end_offset: int = 0):
        # The last ``lookback`` steps of a (batch, steps) tensor, shifted ``end_offset`` back.
        steps = ops.shape(values)[1]
        return values[:, steps - self.lookback - end_offset : steps - end_offset]

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        log_price = ops.log(self._column(x, "price"))
        returns = log_price[:, 1:] - log_price[:, :-1]
        outputs = []
        for name in self.features:
            kind, days = parse_feature(name)
            if kind == "log_return":
                outputs.append(self._last(returns))
            elif kind == "momentum":
                outputs.append(self._last(log_price) - self._last(log_price, days))
            elif kind == "volatility":
                # The last ``days`` returns up to each feature day, stacked: (batch, L, days).
                lagged = ops.stack([self._last(returns, lag) for lag in range(days)], axis=-1)
                outputs.append(ops.std(lagged, axis=-1))
            elif kind == "log_range":
                high, low = self._column(x, "high"), self._column(x, "low")
                outputs.append(self._last(ops.log(high) - ops.log(low)))
            else:  # volume_change; +1 keeps days without volume finite
                log_volume = ops.log(self._column(x, "volume") + 1.0)
                outputs.append(self._last(log_volume[:, 1:] - log_volume[:, :-1]))
        return ops.stack(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.lookback, len(self.features))

    def get_config(self):
        return {
            **super().get_config(),
            "columns": self.columns,
            "features": self.features,
            "lookback": self.lookback,
        }
