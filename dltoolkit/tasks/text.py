"""Text classification: raw strings in a table column in, classes out.

``task: text_classification`` (softmax over the classes) and ``task: text_binary`` (one
sigmoid, with the binary task's threshold, calibration, costs and PR-AUC) are the
classification and binary tasks with text inputs: the text column is tokenised by the
vocabulary adapted on the training split, or by a keras-hub preset's own tokenizer
(``data.tokenizer``, which follows a pretrained backbone's ``model.backbone``; see
:mod:`dltoolkit.data.tokenizers`), the network reads token ids (builders ``text_cnn``,
``text_rnn``, ``text_transformer``, ``text_backbone``), and the SavedModel takes the raw
strings. Baselines are TF-IDF of word 1- and 2-grams with logistic regression and with a
linear SVM, on the same split; the report adds which tokens drove a few test predictions
(occlusion, :func:`dltoolkit.interpret.token_occlusion`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dltoolkit import training
from dltoolkit.config import DataConfig, RunConfig, fail
from dltoolkit.data import ArraySplits
from dltoolkit.data.sources import is_table, parse_source
from dltoolkit.data.tabular import read_table, split_table, table_from_frame
from dltoolkit.data.text import TextTokenizer, text_column
from dltoolkit.data.tokenizers import adapted_tokenizer, required_tokenizer
from dltoolkit.errors import DltkError
from dltoolkit.interpret import token_figure, token_occlusion
from dltoolkit.models import builder_hyperparameters, takes_argument
from dltoolkit.tasks.base import Evaluation
from dltoolkit.tasks.binary import BinaryTask
from dltoolkit.tasks.classification import ClassificationTask

INPUT_NAME = "tokens"


class TextInputs:
    """What a classification task changes to read raw text (a mixin listed before it)."""

    name: str
    config: RunConfig
    reads_text = True

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """A table and its text column named (Task checks that the builder reads token
        ids)."""
        super().check_config(config)  # type: ignore[misc]
        data = config.data
        if data.text_column is None:
            fail("data.text_column", None, f"the column of raw text for task {cls.name}")
        if not is_table(data.source):
            fail("data.source", data.source, "a table of texts: csv:PATH, parquet:PATH or builtin")
        for key in ("features", "categorical"):
            if getattr(data, key):
                fail(f"data.{key}", getattr(data, key), "unset: data.text_column is the input")
        preset = preset_tokenizer(config)
        builder = config.model.get("builder")
        if builder and "backbone" in builder_hyperparameters(builder) and preset is None:
            fail("model.backbone", config.model.get("backbone"), "hub:PRESET, a keras-hub "
                 "text preset (a folder saved with save_to_preset, or a name)")  # fmt: skip
        if preset and data.tokenizer not in ("words", preset):
            fail("data.tokenizer", data.tokenizer, f"{preset} (model.backbone's own tokenizer) "
                 "or words, which then follows model.backbone")  # fmt: skip

    # === Data ===

    def table_splits(
        self, saved: Path | None, fold: tuple[int, int] | None, keep: list[str]
    ) -> ArraySplits:
        """The table read, every text checked, split as configured; token ids of each
        split from the configured tokenizer (adapted on the training split) or the one
        saved in ``saved``."""
        config = self.config
        column = config.data.text_column
        kind, location = parse_source(config.data.source)
        frame, defaults = read_table(kind, location)
        frame.columns = [str(name) for name in frame.columns]
        text_column(frame, config.data.source, column)
        data = self.table_config()
        table = table_from_frame(frame, f"{kind}:{location}", data, True, defaults)
        splits = split_table(table, data, config.seed, True, fold, keep)
        if saved is None:
            vocabulary = adapted_tokenizer(data, text_of(splits.train, column))
        else:
            vocabulary = required_tokenizer(saved)
        return ArraySplits(
            x_train=vocabulary.ids(text_of(splits.train, column)),
            y_train=splits.y_train,
            x_val=vocabulary.ids(text_of(splits.validation, column)),
            y_val=splits.y_val,
            x_test=vocabulary.ids(text_of(splits.test, column)),
            y_test=splits.y_test,
            class_names=splits.class_names,
            source=splits.source,
            table=splits,
            text=vocabulary,
        )

    def table_config(self) -> DataConfig:
        """The data section with the text column as the one (categorical) feature, and
        the tokenizer of a pretrained backbone (``model.backbone: hub:PRESET``)."""
        data = self.config.data
        column, tokenizer = data.text_column, preset_tokenizer(self.config) or data.tokenizer
        return dataclasses.replace(
            data, features=[column], categorical=[column], tokenizer=tokenizer
        )

    def data_facts(self, data: ArraySplits) -> dict[str, Any]:
        """The classification facts, and the vocabulary and token counts of the texts
        (the share longer than ``data.max_tokens``, cut there)."""
        facts = super().data_facts(data)  # type: ignore[misc]
        facts.pop("numeric", None)
        facts.pop("categorical", None)
        table, column = data.table, data.text.column
        texts = np.concatenate([text_of(getattr(table, s), column) for s in SPLITS])
        facts["text"] = data.text.facts(texts)
        test_ids = data.text.ids(text_of(table.test, column)) if table.sampled else data.x_test
        facts["text"]["test_unknown_share"] = data.text.unknown_share(test_ids)
        if table.sampled:  # a streamed table: counted on its samples of rows
            facts["text"]["counted_on_rows"] = len(texts)
        return facts

    def describe(self, data: ArraySplits) -> str:
        """The classification line, with the vocabulary."""
        line = super().describe(data)  # type: ignore[misc]
        return f"{line}; vocabulary {data.text.size:,} tokens, texts read to {data.text.max_tokens}"

    def save_inputs(self, run_dir: Path, data: ArraySplits) -> None:
        """The tokenizer (``text.json``, and a preset's in ``tokenizer/``), which predict
        and serve tokenise with."""
        data.text.save(run_dir)

    # === The network ===

    def build(self, data: ArraySplits) -> keras.Model:
        """The configured text builder with the task's head and the vocabulary's size (and
        padding id, for a builder that takes one: the others pad with id 0)."""
        head = {**self.head(data), "vocabulary_size": data.text.size}  # type: ignore[attr-defined]
        builder = self.config.model["builder"]
        if takes_argument(builder, "pad_id"):
            head["pad_id"] = data.text.pad_id
        elif data.text.pad_id != 0:
            raise DltkError(
                f"tokenizer {self.table_config().tokenizer} pads with id {data.text.pad_id}, "
                f"builder {builder} masks id 0 as padding; read its word pieces with "
                "model.builder=text_backbone, or set data.tokenizer=words."
            )
        return training.build_network(self.config, data.input_shape, head, None, INPUT_NAME)

    # === Baselines ===

    def baseline_inputs(self, data: ArraySplits) -> tuple[Any, np.ndarray, Any, Any]:
        """The raw texts (one column) of the training, validation and test rows, and the
        training labels before any oversampling (a streamed table: the training rows of
        its sample, the validation and test rows on disk)."""
        table, column = data.table, data.text.column
        x_train, x_val, x_test = (text_of(getattr(table, s), column)[:, None] for s in SPLITS)
        if table.texts is not None:  # a streamed table: all its rows, read from disk
            x_val, x_test = table.texts["validation"], table.texts["test"]
        return x_train, table.y_train, x_val, x_test

    def baseline_estimators(self, data: ArraySplits) -> dict[str, Any]:
        """TF-IDF of word 1- and 2-grams seen in at least two training texts (sublinear
        counts), then logistic regression, or a linear SVM whose margins are mapped to
        probabilities by 3-fold Platt scaling (scikit-learn's CalibratedClassifierCV; left
        out where a class has fewer than 2 training texts)."""
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer
        from sklearn.svm import LinearSVC

        class_weight = self.config.train.class_weight
        # n-grams of a single training text are kept where there are few texts (fewer than
        # 100: no n-gram might recur, leaving TF-IDF nothing).
        recurring = 2 if len(data.table.y_train) >= 100 else 1

        def tfidf() -> list[Any]:
            return [
                FunctionTransformer(np.ravel),
                TfidfVectorizer(ngram_range=(1, 2), min_df=recurring, sublinear_tf=True),
            ]

        found = {
            "tfidf_logistic_regression": make_pipeline(
                *tfidf(), LogisticRegression(C=10.0, max_iter=3000, class_weight=class_weight)
            )
        }
        # Platt scaling's folds need every class in each: 3 folds, fewer for a rare class.
        folds = min(3, int(np.bincount(data.table.y_train).min()))
        if folds >= 2:
            svm = LinearSVC(class_weight=class_weight)
            found["tfidf_linear_svm"] = make_pipeline(
                *tfidf(), CalibratedClassifierCV(svm, cv=folds)
            )
        return found

    # === What drives it ===

    def explain(
        self,
        evaluation: Evaluation,
        data: ArraySplits,
        run_dir: Path,
        echo: Callable[[str], None],
    ) -> dict[str, Any]:
        """Token occlusion on ``report.explained_texts`` test texts (a seeded draw taking
        each predicted class in turn): ``tokens.png`` and each text's tokens by weight.
        Each text's ``row`` counts test rows (of a streamed table: rows of its test
        sample, whose texts are predicted here)."""
        table, column = data.table, data.text.column
        texts, ids, y, outputs = text_of(table.test, column), data.x_test, data.y_test, None
        if table.sampled:  # a streamed table: texts of its test sample, predicted here
            texts, y = texts[:EXPLAIN_POOL], table.y_test[:EXPLAIN_POOL]
            ids = data.text.ids(texts)
            outputs = training.predict_outputs(evaluation.model, ids, self.config.train.batch_size)
        count = min(self.config.report.explained_texts, len(ids))
        if not count:
            return {}
        predicted = self.predicted_classes(
            evaluation.outputs if outputs is None else outputs, evaluation.decision
        )
        rows = spread_over_classes(predicted, count, self.config.seed)
        predicted, ids, texts = predicted[rows], ids[rows], texts[rows]
        tokenizer = data.text
        weights = token_occlusion(
            evaluation.model, ids, predicted, self.config.train.batch_size,
            self.occlusion_id(tokenizer), tokenizer.special_ids,
        )  # fmt: skip
        names, tokens = data.class_names, tokenizer.tokens
        examples = []
        for index, row in enumerate(rows):
            order = np.argsort(-np.abs(weights[index]), kind="stable")
            order = [p for p in order if ids[index, p] not in tokenizer.special_ids][:12]
            examples.append(
                {
                    "row": int(row),
                    "true": names[int(y[row])],
                    "predicted": names[int(predicted[index])],
                    "text": str(texts[index])[:400],
                    "tokens": [
                        [tokens[ids[index, p]], round(float(weights[index, p]), 5)] for p in order
                    ],
                }
            )
        token_figure(examples, run_dir)
        return {"token_occlusion": examples}

    def occlusion_id(self, tokenizer: TextTokenizer) -> int:
        """The id an occluded token reads as: a pretrained backbone's mask token (which it
        learned to fill), else the unknown token (padding, for a tokenizer with neither)."""
        if preset_tokenizer(self.config) is not None and tokenizer.mask_id is not None:
            return tokenizer.mask_id
        return tokenizer.unknown_id if tokenizer.unknown_id is not None else tokenizer.pad_id

    def predicted_classes(self, outputs: np.ndarray, decision: dict[str, Any] | None) -> np.ndarray:
        """The class each output row is predicted as."""
        raise NotImplementedError


SPLITS = ("train", "validation", "test")
# Test texts of a streamed table's sample that the texts explained are drawn from.
EXPLAIN_POOL = 2048


def spread_over_classes(classes: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` row indices drawn from ``seed``, one of each class in turn (so a rare
    class is among them), in row order."""
    order = np.random.default_rng(seed).permutation(len(classes))
    queues = [list(order[classes[order] == c]) for c in np.unique(classes)]
    chosen: list[int] = []
    while len(chosen) < count:
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(int(queue.pop(0)))
    return np.sort(np.array(chosen, np.int64))


def preset_tokenizer(config: RunConfig) -> str | None:
    """``hub:PRESET`` where the model is a pretrained keras-hub backbone (whose tokenizer
    the texts must be read with), else None."""
    backbone = str(config.model.get("backbone") or "")
    return backbone if backbone.startswith("hub:") else None


def text_of(frame: Any, column: str) -> np.ndarray:
    """A split's texts as an object array of strings."""
    return frame[column].to_numpy(dtype=object)


class TextClassificationTask(TextInputs, ClassificationTask):
    """Texts into one of several classes (softmax)."""

    name = "text_classification"
    headline_score = "macro_f1"
    summary = ("accuracy", "macro_f1")

    def predicted_classes(self, outputs: np.ndarray, decision: dict[str, Any] | None) -> np.ndarray:
        """The most probable class."""
        return outputs.argmax(axis=-1)


class TextBinaryTask(TextInputs, BinaryTask):
    """Texts flagged yes or no (one sigmoid unit, thresholded on validation)."""

    name = "text_binary"

    def predicted_classes(self, outputs: np.ndarray, decision: dict[str, Any] | None) -> np.ndarray:
        """1 where the probability reaches the chosen threshold."""
        threshold = (decision or {}).get("threshold", 0.5)
        return (outputs[:, -1] >= threshold).astype(np.int64)
