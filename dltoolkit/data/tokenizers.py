"""What turns a table's texts into token ids, chosen by ``data.tokenizer``:

- ``words`` (the default): the vocabulary of the training split's commonest words
  (:class:`dltoolkit.data.text.Vocabulary`);
- ``wordpiece``: a WordPiece vocabulary of ``data.vocabulary_size`` word pieces learned
  on the training split (keras-hub's ``compute_word_piece_vocabulary``): a rare or
  misspelt word is read as pieces (``over ##draft ##ed``) instead of one unknown token
  (:class:`WordPieces`);
- ``hub:PRESET``: a keras-hub preset's own tokenizer (WordPiece for BERT, byte-pair or
  SentencePiece for others) with its start, end and padding tokens, as the preset's text
  classifier preprocessor packs them (:class:`PresetTokens`). A pretrained text backbone
  reads these ids: its embedding rows are the preset vocabulary's. ``PRESET`` is the path
  of a folder written by ``save_to_preset`` (offline) or a preset name keras-hub downloads.

Both are saved beside the model (``text.json``; a preset's tokenizer is copied into the
run's ``tokenizer/`` folder, so a run never depends on where the preset was), and both
give the SavedModel a TensorFlow function from raw strings to the same ids
(:meth:`serving`), so training, ``dltk predict`` and ``dltk serve`` tokenise alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dltoolkit import hub
from dltoolkit.config import DataConfig
from dltoolkit.data.text import (
    TEXT_INFO,
    TextTokenizer,
    Vocabulary,
    string_batches,
    string_tensor,
    token_facts,
    token_share,
    vectorised,
)
from dltoolkit.errors import DataError, DltkError

TOKENIZER_FOLDER = "tokenizer"


def adapted_tokenizer(config: DataConfig, train_texts: np.ndarray) -> TextTokenizer:
    """The tokenizer ``config.tokenizer`` names, for texts read up to ``config.max_tokens``
    tokens: a vocabulary adapted on ``train_texts``, or a preset's."""
    if config.tokenizer == "words":
        return Vocabulary.adapt(
            train_texts, config.vocabulary_size, config.max_tokens, config.text_column
        )
    if config.tokenizer == "wordpiece":
        return WordPieces.adapt(
            train_texts, config.vocabulary_size, config.max_tokens, config.text_column
        )
    return PresetTokens.from_preset(
        config.tokenizer.removeprefix("hub:"), config.max_tokens, config.text_column
    )


def saved_tokenizer(folder: Path) -> TextTokenizer | None:
    """The tokenizer saved in run directory ``folder``, or None for a model without text."""
    path = Path(folder) / TEXT_INFO
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    kind = info.get("kind", "words")
    if kind in ("words", "wordpiece"):
        found = Vocabulary if kind == "words" else WordPieces
        return found(list(info["tokens"]), int(info["max_tokens"]), str(info["column"]))
    return PresetTokens.load(Path(folder) / TOKENIZER_FOLDER, info)


def required_tokenizer(folder: Path) -> TextTokenizer:
    """:func:`saved_tokenizer`, or a one-line error where ``folder`` holds none."""
    tokenizer = saved_tokenizer(folder)
    if tokenizer is None:
        raise DltkError(
            f"{str(folder)!r} holds no {TEXT_INFO} (the tokenizer a text model reads with); "
            "train the run again."
        )
    return tokenizer


def piece_counts(tokenizer: Any, texts: np.ndarray) -> np.ndarray:
    """Pieces a keras-hub tokenizer (without a sequence length) cuts each of ``texts`` into."""
    counts = [
        [len(pieces) for pieces in tokenizer(string_tensor(texts[start : start + 1024]))]
        for start in range(0, len(texts), 1024)
    ]  # keras-hub gives the pieces of an eager call as lists, on every backend
    return np.concatenate(counts).astype(np.int64) if counts else np.zeros(0, np.int64)


class WordPieces(Vocabulary):
    """Word pieces learned on the training split: lower-cased, accents stripped, split on
    whitespace and punctuation, each word read as its longest known pieces (``[PAD]`` is
    id 0, ``[UNK]`` id 1)."""

    op_modules = ("tensorflow_text",)

    @classmethod
    def adapt(cls, texts: np.ndarray, size: int, max_tokens: int, column: str) -> WordPieces:
        """The ``size`` word pieces (``[PAD]`` and ``[UNK]`` among them) that best cover
        ``texts``, or a one-line error where the texts hold no word at all."""

        keras_hub = hub.keras_hub("data.tokenizer wordpiece")
        tokens = keras_hub.tokenizers.compute_word_piece_vocabulary(
            string_batches(texts, 1024),
            vocabulary_size=size, lowercase=True, strip_accents=True,
            reserved_tokens=["[PAD]", "[UNK]"],
        )  # fmt: skip
        if len(tokens) <= 2:
            raise DataError(
                f"text column {column!r}: the {len(texts)} training texts hold no word to "
                "learn word pieces from (an empty vocabulary); check data.text_column."
            )
        return cls(list(tokens), max_tokens, column)

    def layer(self, sequence_length: int | None = None) -> Any:
        """keras-hub's WordPiece tokenizer with these pieces: texts to ``sequence_length``
        ids (``max_tokens`` by default; 0 for each text's own length, as lists)."""
        keras_hub = hub.keras_hub("data.tokenizer wordpiece")
        length = self.max_tokens if sequence_length is None else sequence_length or None
        return keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=self.tokens, sequence_length=length, lowercase=True,
            strip_accents=True, oov_token="[UNK]",
        )  # fmt: skip

    def lengths(self, texts: np.ndarray) -> np.ndarray:
        """Word pieces in each of ``texts`` before truncation."""
        return piece_counts(self.layer(0), texts)

    def save(self, folder: Path) -> None:
        """Write ``text.json`` (kind ``wordpiece``, column, max_tokens, pieces)."""
        info = {
            "kind": "wordpiece", "column": self.column, "max_tokens": self.max_tokens,
            "tokens": self.tokens,
        }  # fmt: skip
        (Path(folder) / TEXT_INFO).write_text(json.dumps(info, ensure_ascii=False) + "\n")

    def facts(self, texts: np.ndarray) -> dict[str, Any]:
        """Vocabulary size, piece counts of ``texts`` and the share cut at ``max_tokens``."""
        return {**token_facts(self, texts), "tokenizer": "wordpiece"}


class PresetTokens:
    """A keras-hub preset's tokenizer and packing: ``[start] tokens [end]``, cut or padded
    to ``max_tokens`` ids (the preset's text classifier preprocessor)."""

    def __init__(self, preprocessor: Any, max_tokens: int, column: str, preset: str):
        self.preprocessor = preprocessor
        self.max_tokens = int(max_tokens)
        self.column = column
        self.preset = preset  # where it came from (a run keeps its own copy)
        tokenizer = preprocessor.tokenizer
        self.size = int(tokenizer.vocabulary_size())
        self.pad_id = int(getattr(tokenizer, "pad_token_id", None) or 0)
        oov = getattr(tokenizer, "oov_token", None) or getattr(tokenizer, "unk_token", None)
        self.unknown_id = int(tokenizer.token_to_id(oov)) if oov else None
        mask = getattr(tokenizer, "mask_token_id", None)
        self.mask_id = int(mask) if mask is not None else None
        self.special_ids = frozenset({self.pad_id, *map(int, tokenizer.special_token_ids)})
        self._tokens: list[str] | None = None

    # The SavedModel's tokenizer runs TensorFlow Text's ops: import it before loading.
    op_modules = ("tensorflow_text",)

    @classmethod
    def from_preset(cls, preset: str, max_tokens: int, column: str) -> PresetTokens:
        """The text preprocessor of ``preset`` (a folder or a name), or a one-line error."""
        keras_hub = hub.keras_hub("data.tokenizer hub:...")
        preprocessor = hub.from_preset(
            lambda name: keras_hub.models.TextClassifierPreprocessor.from_preset(
                name, sequence_length=max_tokens
            ),
            preset,
            "text preprocessor (a text model's preset, with its tokenizer)",
            "bert_tiny_en_uncased",
            "TextClassifier",
            ", num_classes=2",
        )
        return cls(preprocessor, max_tokens, column, preset)

    @property
    def tokens(self) -> list[str]:
        """Each id's token (``[CLS]``, ``##ing``, ...)."""
        if self._tokens is None:
            self._tokens = [str(token) for token in self.preprocessor.tokenizer.get_vocabulary()]
        return self._tokens

    def ids(self, texts: np.ndarray) -> np.ndarray:
        """Token ids of ``texts``: int32, ``(len(texts), max_tokens)``."""
        parts = list(vectorised(lambda batch: self.preprocessor(batch)["token_ids"], texts, 1024))
        if not parts:
            return np.zeros((0, self.max_tokens), np.int32)
        return np.concatenate(parts).astype(np.int32)

    def lengths(self, texts: np.ndarray) -> np.ndarray:
        """Tokens each of ``texts`` packs into before truncation (its start and end tokens
        included)."""
        packed = self.ids(np.array([""], object))
        added = int(np.count_nonzero(packed != self.pad_id))
        return piece_counts(self.preprocessor.tokenizer, texts) + added

    def facts(self, texts: np.ndarray) -> dict[str, Any]:
        """Vocabulary size, token counts of ``texts`` and the share cut at ``max_tokens``."""
        return {**token_facts(self, texts), "tokenizer": f"hub:{self.preset}"}

    def unknown_share(self, ids: np.ndarray) -> float | None:
        """Share of the tokens read (``ids``) that the tokenizer did not know (None for
        byte-level tokenizers, which know every text)."""
        return token_share(ids, self.unknown_id, self.special_ids)

    def serving(self) -> tuple[Any, Any]:
        """``(layer, function)``: the TensorFlow function from a batch of raw strings to
        these token ids, and the layer (the preprocessor) the SavedModel tracks."""
        import tensorflow as tf

        self.preprocessor(tf.constant([""]))  # built before it is tracked

        def tokenise(texts: Any) -> Any:
            return tf.cast(self.preprocessor(texts)["token_ids"], tf.int32)

        return self.preprocessor, tokenise

    def save(self, folder: Path) -> None:
        """Write ``text.json`` and a copy of the preprocessor (its Keras config, and its
        tokenizer's vocabulary files) into ``folder``'s ``tokenizer/``."""
        import keras

        saved = Path(folder) / TOKENIZER_FOLDER
        (saved / "assets").mkdir(parents=True, exist_ok=True)
        config = keras.saving.serialize_keras_object(self.preprocessor)
        (saved / "preprocessor.json").write_text(json.dumps(config, indent=1) + "\n")
        self.preprocessor.tokenizer.save_assets(str(saved / "assets"))
        info = {
            "kind": "hub", "column": self.column, "max_tokens": self.max_tokens,
            "preset": self.preset,
        }  # fmt: skip
        (Path(folder) / TEXT_INFO).write_text(json.dumps(info, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, saved: Path, info: dict[str, Any]) -> PresetTokens:
        """The preprocessor :meth:`save` wrote into ``saved``."""
        import keras

        hub.keras_hub("a model trained on a keras-hub preset's tokenizer")  # registers it
        config = json.loads((saved / "preprocessor.json").read_text())
        preprocessor = keras.saving.deserialize_keras_object(config)
        preprocessor.tokenizer.load_assets(str(saved / "assets"))
        return cls(preprocessor, int(info["max_tokens"]), str(info["column"]), str(info["preset"]))
