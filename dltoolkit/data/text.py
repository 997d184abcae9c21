"""Raw text in a table column, and the vocabulary that turns it into token ids.

A text is lower-cased, stripped of punctuation and split on whitespace
(``keras.layers.TextVectorization``'s standard steps); each token becomes its index in a
vocabulary of the commonest tokens of the training split (0 pads, 1 is any token outside
the vocabulary), and a text becomes its first ``data.max_tokens`` ids, zero-padded.

The ids are computed outside the network, which then trains on integers on every backend
(a string tensor exists only in TensorFlow). The vocabulary is saved beside the model
(``text.json``), and the exported SavedModel runs the same layer on the raw strings a
client sends, so training, ``dltk predict`` and ``dltk serve`` tokenise identically.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from dltoolkit.data.rows import seeded_rows
from dltoolkit.data.tabular import first_row
from dltoolkit.errors import DataError, did_you_mean

TEXT_INFO = "text.json"
# The standardisation and splitting every vocabulary uses (built-in Keras options only, so a
# saved vocabulary never names a function to run).
STANDARDIZE = "lower_and_strip_punctuation"
SPLIT = "whitespace"
# Texts vectorised at a time.
BATCH = 1024
# Characters (a bound on the tokens) of a batch padded to its longest text.
PADDED_CELLS = 1 << 21


def text_column(frame: pd.DataFrame, source: str, column: str) -> np.ndarray:
    """The texts of ``frame``'s column ``column`` (:func:`checked_texts`), or a one-line
    error where there is no such column."""
    if column not in frame.columns:
        names = [str(name) for name in frame.columns]
        raise DataError(
            f"data.text_column {column!r} is not a column of {source!r}"
            f"{did_you_mean(column, names)}; its columns: {', '.join(names[:20])}."
        )
    return checked_texts(frame[column], source, column)


def checked_texts(values: pd.Series, source: str, column: str) -> np.ndarray:
    """The column as an object array of strings, or a one-line error naming the first row
    that is missing, not a string, or blank."""
    missing = values.isna()
    if missing.any():
        _, row = first_row(missing)
        raise DataError(
            f"data source {source!r}: text column {column!r} is empty at row {row} (counting "
            "the header as row 1); every row needs a text: fill it in or drop the row."
        )
    not_text = values.map(lambda value: not isinstance(value, str))
    if not_text.any():
        index, row = first_row(not_text)
        value = values.iloc[index]
        value = value.item() if isinstance(value, np.generic) else value
        raise DataError(
            f"data source {source!r}: text column {column!r} holds {value!r} "
            f"({type(value).__name__}) at row {row} (counting the header as row 1); it must "
            "hold strings: name the column of text in data.text_column."
        )
    blank = values.str.strip() == ""
    if blank.any():
        index, row = first_row(blank)
        state = "empty" if values.iloc[index] == "" else "blank"
        raise DataError(
            f"data source {source!r}: text column {column!r} is {state} at row {row} (counting "
            "the header as row 1); every row needs a text: fill it in or drop the row."
        )
    return values.to_numpy(dtype=object)


class TextTokenizer(Protocol):
    """What turns texts into the token ids a network reads (:class:`Vocabulary`, or a
    keras-hub preset's tokenizer: :class:`dltoolkit.data.tokenizers.PresetTokens`)."""

    column: str  # the table column of the texts
    max_tokens: int  # ids per text: cut or padded to this many
    pad_id: int  # padding
    unknown_id: int | None  # a token outside the vocabulary (None: there is none)
    mask_id: int | None  # the mask token a pretrained backbone learned to fill, if any
    special_ids: Collection[int]  # ids that are no word of the text (padding, start, end)
    op_modules: tuple[str, ...]  # modules whose TensorFlow ops the serving function uses

    @property
    def size(self) -> int:
        """Token ids there are (the rows of an embedding that reads them)."""

    @property
    def tokens(self) -> list[str]:
        """Each id's token."""

    def ids(self, texts: np.ndarray) -> np.ndarray:
        """Token ids of ``texts``: int32, ``(len(texts), max_tokens)``."""

    def lengths(self, texts: np.ndarray) -> np.ndarray:
        """Tokens in each of ``texts`` before truncation."""

    def facts(self, texts: np.ndarray) -> dict[str, Any]:
        """The vocabulary and token counts of ``texts`` (metrics.json's ``data.text``)."""

    def unknown_share(self, ids: np.ndarray) -> float | None:
        """Share of the tokens read in ``ids`` that the tokenizer did not know."""

    def serving(self) -> tuple[Any, Any]:
        """``(layer, function)``: the TensorFlow function from raw strings to ids, and
        the layer a SavedModel tracks."""

    def save(self, folder: Path) -> None:
        """Write the tokenizer into run directory ``folder`` (``text.json``)."""


@dataclass
class Vocabulary:
    """The tokens of a training split and how many of them a text is read up to."""

    tokens: list[str]  # index 0 padding "", 1 unknown "[UNK]", then commonest first
    max_tokens: int
    column: str
    # Padding, the unknown token (which an occluded token reads as), ids that are no word;
    # no mask token.
    pad_id = 0
    unknown_id = 1
    mask_id = None
    special_ids = frozenset({0})
    op_modules = ()  # TextVectorization's ops are TensorFlow's own

    @classmethod
    def adapt(cls, texts: np.ndarray, size: int, max_tokens: int, column: str) -> Vocabulary:
        """The ``size`` - 2 commonest tokens of ``texts``, or a one-line error where the
        texts hold no token at all after standardisation."""
        import keras

        layer = keras.layers.TextVectorization(
            max_tokens=size, standardize=STANDARDIZE, split=SPLIT
        )
        layer.adapt(string_batches(texts, BATCH))
        tokens = [str(token) for token in layer.get_vocabulary()]
        if len(tokens) <= 2:
            raise DataError(
                f"text column {column!r}: the {len(texts)} training texts hold no token once "
                "lower-cased and stripped of punctuation (an empty vocabulary); the column "
                "needs words, so check data.text_column."
            )
        return cls(tokens, max_tokens, column)

    @property
    def size(self) -> int:
        """Token ids the network's embedding takes (padding and unknown included)."""
        return len(self.tokens)

    def layer(self, sequence_length: int | None = None) -> Any:
        """A TextVectorization layer with this vocabulary: texts to ``sequence_length`` ids
        (``max_tokens`` by default; 0 for as many as the longest text in a batch)."""
        import keras

        length = self.max_tokens if sequence_length is None else sequence_length or None
        return keras.layers.TextVectorization(
            standardize=STANDARDIZE,
            split=SPLIT,
            vocabulary=self.tokens[2:],
            output_sequence_length=length,
        )

    def ids(self, texts: np.ndarray) -> np.ndarray:
        """Token ids of ``texts``: int32, ``(len(texts), max_tokens)``."""
        parts = list(vectorised(self.layer(), texts, BATCH))
        if not parts:
            return np.zeros((0, self.max_tokens), np.int32)
        return with_a_token(np.concatenate(parts).astype(np.int32))

    def lengths(self, texts: np.ndarray) -> np.ndarray:
        """Tokens in each of ``texts`` before truncation (in batches padded to their
        longest text, so of at most :data:`PADDED_CELLS` characters' worth of ids)."""
        import keras

        layer = self.layer(0)
        counts = []
        for batch in padded_batches(texts, 256):
            ids = keras.ops.convert_to_numpy(layer(string_tensor(batch)))
            counts.append(np.count_nonzero(ids, axis=1))
        return np.concatenate(counts) if counts else np.zeros(0, np.int64)

    def facts(self, texts: np.ndarray) -> dict[str, Any]:
        """Vocabulary size, token counts of ``texts`` and the share of them cut at
        ``max_tokens``."""
        return token_facts(self, texts)

    def unknown_share(self, ids: np.ndarray) -> float | None:
        """Share of the tokens read (``ids``, 0 padding) outside the vocabulary."""
        return token_share(ids, self.unknown_id, self.special_ids)

    def serving(self) -> tuple[Any, Any]:
        """``(layer, function)``: the TensorFlow function from a batch of raw strings to
        these token ids (a text of no token reads as one unknown token, as in
        :meth:`ids`), and the layer the SavedModel tracks."""
        import tensorflow as tf

        layer = self.layer()
        layer(tf.constant([""]))  # built (and its lookup table made) before it is tracked

        def tokenise(texts: Any) -> Any:
            ids = tf.cast(layer(texts), tf.int32)
            first = tf.where(ids[:, :1] == 0, tf.ones_like(ids[:, :1]), ids[:, :1])
            return tf.concat([first, ids[:, 1:]], axis=1)

        return layer, tokenise

    def save(self, folder: Path) -> None:
        """Write ``text.json`` (kind ``words``, column, max_tokens, tokens) into ``folder``."""
        info = {
            "kind": "words", "column": self.column, "max_tokens": self.max_tokens,
            "tokens": self.tokens,
        }  # fmt: skip
        (Path(folder) / TEXT_INFO).write_text(json.dumps(info, ensure_ascii=False) + "\n")


class TextLines:
    """Raw texts in a file, one JSON string a line, standing where a split's column of
    texts would (an object array of ``(rows, 1)``) for a model that reads them a chunk at
    a time: the TF-IDF baselines' predictions on a table streamed from disk."""

    cache = "disk"  # read from its file every time, never held whole
    ndim = 2

    def __init__(self, path: Path, count: int):
        self.path = Path(path)
        self.count = int(count)

    @staticmethod
    @contextlib.contextmanager
    def writer(path: Path) -> Iterator[Callable[[np.ndarray], None]]:
        """A function that appends an array of texts to the file ``path`` (created)."""
        with open(path, "w", encoding="utf-8") as file:
            yield lambda texts: file.writelines(
                json.dumps(str(text), ensure_ascii=False) + "\n" for text in texts
            )

    def __len__(self) -> int:
        return self.count

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, 1)``: one text a row."""
        return (self.count, 1)

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        """The texts as ``(rows, 1)`` object arrays, in order."""
        with open(self.path, encoding="utf-8") as file:
            while batch := [json.loads(line) for line in itertools.islice(file, rows)]:
                yield np.array(batch, dtype=object)[:, None]

    def sample(self, rows: int, seed: int) -> np.ndarray:
        """At most ``rows`` texts drawn from ``seed`` (all of them where there are fewer),
        as a ``(rows, 1)`` object array in file order."""
        chosen = seeded_rows(self.count, rows, seed)
        parts, start = [np.zeros((0, 1), object)], 0
        for chunk in self.chunks(65536):
            inside = chosen[(chosen >= start) & (chosen < start + len(chunk))]
            parts.append(chunk[inside - start])
            start += len(chunk)
        return np.concatenate(parts)


def vectorised(layer: Any, texts: np.ndarray, rows: int) -> Iterator[np.ndarray]:
    """``layer``'s token ids of ``texts``, ``rows`` texts at a time, as NumPy arrays."""
    import keras

    for start in range(0, len(texts), rows):
        ids = layer(string_tensor(texts[start : start + rows]))
        yield np.asarray(keras.ops.convert_to_numpy(ids))


def padded_batches(texts: np.ndarray, rows: int) -> Iterator[np.ndarray]:
    """``texts`` in order, in batches of at most ``rows`` whose longest text times their
    rows stays under :data:`PADDED_CELLS` characters (one very long text comes alone): a
    batch padded to its longest text then holds a bounded number of ids."""
    chars = np.fromiter((len(text) for text in texts), np.int64, len(texts))
    start = 0
    while start < len(texts):
        window = np.maximum.accumulate(chars[start : start + rows])
        fits = window * np.arange(1, len(window) + 1) <= PADDED_CELLS
        end = start + max(1, int(np.argmin(fits)) if not fits.all() else len(window))
        yield texts[start:end]
        start = end


def string_batches(texts: np.ndarray, rows: int) -> Any:
    """A tf.data dataset of ``texts`` as string tensors, in :func:`padded_batches` of at
    most ``rows`` (what a layer adapts on: Keras pads each batch's tokens to its longest
    text)."""
    import tensorflow as tf

    return tf.data.Dataset.from_generator(
        lambda: (string_tensor(batch) for batch in padded_batches(texts, rows)),
        output_signature=tf.TensorSpec([None], tf.string),
    )


def string_tensor(texts: np.ndarray) -> Any:
    """``texts`` as a TensorFlow string tensor, each text as long as it is (a NumPy unicode
    array gives every text the longest one's width at 4 bytes a character: 12 GB for the
    training texts of a 200,000-complaint sample, whose longest is 21,000 characters)."""
    import tensorflow as tf

    return tf.constant([str(text) for text in texts], dtype=tf.string)


def with_a_token(ids: np.ndarray) -> np.ndarray:
    """Token ids where a text of no token at all (only punctuation, ":-)") reads as one
    unknown token: a text of padding alone would leave nothing for a masked layer to
    average or read (a NaN, or a failing cuDNN kernel)."""
    ids[:, 0] = np.where(ids[:, 0] == 0, 1, ids[:, 0])
    return ids


def token_share(ids: np.ndarray, token: int | None, special: Collection[int]) -> float | None:
    """Share of the tokens in ``ids`` (``special`` ids, such as padding, not counted) that
    are ``token`` (the unknown token's share of the words read); None for a tokenizer
    without an unknown token (byte-level pieces read every text)."""
    if token is None:
        return None
    read = ~np.isin(ids, list(special))
    count = int(np.count_nonzero(read))
    return float(np.count_nonzero(ids[read] == token) / count) if count else 0.0


def token_facts(tokenizer: TextTokenizer, texts: np.ndarray) -> dict[str, Any]:
    """A tokenizer's vocabulary size and ``max_tokens``, the token counts of ``texts``
    (median, 99th percentile) and the share of them cut at ``max_tokens``."""
    lengths = tokenizer.lengths(texts)
    return {
        "column": tokenizer.column,
        "vocabulary_size": tokenizer.size,
        "max_tokens": tokenizer.max_tokens,
        "median_tokens": float(np.median(lengths)) if len(lengths) else 0.0,
        "p99_tokens": float(np.percentile(lengths, 99)) if len(lengths) else 0.0,
        "truncated_share": float(np.mean(lengths > tokenizer.max_tokens)) if len(lengths) else 0.0,
    }
