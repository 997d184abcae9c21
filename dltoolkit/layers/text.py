"""Token ids as the inputs a keras-hub text backbone takes."""

from __future__ import annotations

from typing import Any

import keras

# What a keras-hub text backbone's inputs can be made of from the token ids alone.
BACKBONE_INPUTS = ("token_ids", "padding_mask", "segment_ids")


@keras.saving.register_keras_serializable(package="dltoolkit")
class BackboneInputs(keras.layers.Layer):
    """Token ids ``(batch, tokens)`` as the dict of ``names`` a keras-hub text backbone
    reads: ``token_ids`` (the ids), ``padding_mask`` (1 where the id is not ``pad_id``) and
    ``segment_ids`` (0: every text is one segment)."""

    def __init__(self, names: list[str], pad_id: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        unknown = sorted(set(names) - set(BACKBONE_INPUTS))
        if unknown:
            raise ValueError(f"backbone inputs {unknown} cannot be made from token ids")
        self.names = list(names)
        self.pad_id = int(pad_id)

    def call(self, ids: Any) -> dict[str, Any]:
        ids = keras.ops.cast(ids, "int32")
        made = {
            "token_ids": ids,
            "padding_mask": keras.ops.cast(keras.ops.not_equal(ids, self.pad_id), "int32"),
            "segment_ids": keras.ops.zeros_like(ids),
        }
        return {name: made[name] for name in self.names}

    def compute_output_spec(self, ids: Any) -> dict[str, Any]:
        return {name: keras.KerasTensor(ids.shape, "int32") for name in self.names}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "names": self.names, "pad_id": self.pad_id}
