"""Builder ``text_backbone``: a pretrained keras-hub text backbone (BERT, DistilBERT,
RoBERTa, ...) with a new head, fine-tuned on the task's texts.

The network reads the token ids of the preset's own tokenizer (``data.tokenizer`` follows
``model.backbone``: :class:`dltoolkit.data.tokenizers.PresetTokens`), so its embedding
rows are the ones the backbone was pretrained with; the padding mask and segment ids the
backbone also takes are made from the ids inside the model
(:class:`dltoolkit.layers.BackboneInputs`). The backbone is one nested layer, which
``train.fine_tune`` freezes and unfreezes as it does an image backbone's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import keras

from dltoolkit import hub
from dltoolkit.errors import ConfigError, DltkError
from dltoolkit.layers import BackboneInputs
from dltoolkit.layers.text import BACKBONE_INPUTS
from dltoolkit.models.arguments import check_rate, check_units, output_layer, require
from dltoolkit.models.registry import MODELS
from dltoolkit.models.text import token_inputs


@MODELS.register("text_backbone")
def text_backbone(
    input_shape: Sequence[int],
    output_units: int,
    output_activation: str | None = None,
    *,
    vocabulary_size: int,
    pad_id: int = 0,
    preprocessing: keras.layers.Layer | None = None,
    input_name: str = "tokens",
    name: str = "text_backbone",
    backbone: str = "",
    pooling: Literal["mean", "first"] = "mean",
    dense_units: list[int] = (),
    dropout: float = 0.1,
) -> keras.Model:
    """A pretrained keras-hub text backbone, its token outputs pooled, then the head.

    Args:
        input_shape: ``(max_tokens,)``: token ids of the preset's tokenizer.
        output_units: units of the output layer.
        output_activation: ``softmax`` or ``sigmoid``.
        vocabulary_size: the tokenizer's vocabulary (the task supplies it); it must be the
            backbone's.
        pad_id: the tokenizer's padding id (the task supplies it): the padding mask.
        preprocessing: unused (token ids are computed outside the network).
        input_name: name of the input.
        name: model name.
        backbone: ``hub:PRESET``: a keras-hub preset folder written by ``save_to_preset``
            (offline) or a preset name keras-hub downloads.
        pooling: ``mean`` (average of the token outputs, padding masked) or ``first`` (the
            first token's output: BERT's ``[CLS]``, through its pooler where it has one).
        dense_units: dense layers between the pooled output and the head.
        dropout: dropout rate before each dense layer and the head.

    Returns:
        An uncompiled keras.Model whose one nested model is the backbone.
    """
    require(
        pooling in ("mean", "first"), f"model.pooling must be mean or first, received {pooling!r}."
    )
    check_units(dense_units, "model.dense_units")
    check_rate(dropout, "model.dropout")
    kind, _, location = backbone.partition(":")
    if kind != "hub" or not location:
        raise ConfigError(
            f"model.backbone {backbone!r} is not hub:PRESET; name a keras-hub text preset "
            "(a folder saved with save_to_preset, e.g. hub:presets/bert_tiny_en_uncased)."
        )
    inputs = token_inputs(input_shape, input_name, "text_backbone")
    keras_hub = hub.keras_hub("model.builder text_backbone")
    pretrained = hub.from_preset(
        keras_hub.models.Backbone.from_preset, location, "text backbone",
        "bert_tiny_en_uncased", "TextClassifier", ", num_classes=2",
    )  # fmt: skip
    takes = pretrained.input if isinstance(pretrained.input, dict) else {}
    if "token_ids" not in takes or set(takes) - set(BACKBONE_INPUTS):
        raise DltkError(
            f"backbone {backbone} takes inputs {sorted(takes) or 'that are not named'}; "
            "text_backbone feeds token_ids, padding_mask and segment_ids only (a text "
            "backbone: BERT, DistilBERT, RoBERTa, ...)."
        )
    if getattr(pretrained, "vocabulary_size", vocabulary_size) != vocabulary_size:
        raise DltkError(
            f"backbone {backbone} embeds {pretrained.vocabulary_size} token ids, the texts' "
            f"tokenizer gives {vocabulary_size}; the tokenizer must be the preset's: set "
            f"data.tokenizer={backbone} (or leave it at words, which then follows the backbone)."
        )
    positions = getattr(pretrained, "max_sequence_length", None)
    if positions is not None and int(input_shape[0]) > positions:
        raise DltkError(
            f"backbone {backbone} reads at most {positions} tokens, data.max_tokens is "
            f"{input_shape[0]}; set data.max_tokens={positions} or fewer."
        )
    made = BackboneInputs(list(BACKBONE_INPUTS), pad_id, name="backbone_inputs")(inputs)
    # The backbone as one nested model with the output read (BERT's pooled [CLS] output
    # for "first", where it has one), so that no weight goes without a gradient.
    ends = pretrained.output if isinstance(pretrained.output, dict) else {}
    end = "pooled_output" if pooling == "first" and "pooled_output" in ends else "sequence_output"
    if ends:
        pretrained = keras.Model(pretrained.input, ends[end], name="backbone")
    outputs = pretrained({key: made[key] for key in takes})
    if end == "pooled_output":
        x = outputs
    elif pooling == "first":
        x = keras.layers.Cropping1D((0, int(input_shape[0]) - 1), name="first_token")(outputs)
        x = keras.layers.Flatten(name="first_token_output")(x)
    else:
        x = keras.layers.GlobalAveragePooling1D(name="mean_pool")(
            outputs, mask=made["padding_mask"]
        )
    for index, units in enumerate(dense_units):
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dense{index + 1}_dropout")(x)
        x = keras.layers.Dense(units, activation="gelu", name=f"dense{index + 1}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.Model(inputs, output_layer(output_units, output_activation)(x), name=name)
