"""Tables streamed from disk: encoded rows read a block at a time, chunked two-pass
reading and splitting, checks that name the file and row, a run on a streamed table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dltoolkit.config import DataConfig
from dltoolkit.data import table_chunks
from dltoolkit.data.rows import EncodedRows
from dltoolkit.errors import ConfigError, DataError

pytestmark = pytest.mark.backend_neutral


def rows_file(tmp_path, name, values):
    path = tmp_path / name
    np.asarray(values, np.float32).tofile(path)
    return EncodedRows.of_file(path, values.shape[1])


def test_encoded_rows_behave_like_the_array(tmp_path):
    first = np.arange(30_000, dtype=np.float32).reshape(-1, 3)
    second = -np.arange(900, dtype=np.float32).reshape(-1, 3)
    rows = rows_file(tmp_path, "a.f32", first).concatenate(rows_file(tmp_path, "b.f32", second))
    whole = np.concatenate([first, second])
    assert rows.shape == whole.shape and len(rows) == len(whole)
    np.testing.assert_array_equal(rows.read(), whole)
    np.testing.assert_array_equal(rows[9_990:10_020].read(), whole[9_990:10_020])
    picked = np.array([10_100, 3, 3, 10_000, 5_000, 10_299])  # across parts, out of order
    np.testing.assert_array_equal(rows[picked].read(), whole[picked])
    np.testing.assert_array_equal(rows[picked][[5, 0]].read(), whole[picked][[5, 0]])
    mask = whole[:, 0] % 7 == 0
    np.testing.assert_array_equal(rows[mask].read(), whole[mask])
    assert np.concatenate(list(rows.chunks(5000))).shape == whole.shape
    with pytest.raises(TypeError):
        rows[3]


def test_encoded_rows_shuffle_every_row_once_a_epoch_with_its_label(tmp_path, monkeypatch):
    import dltoolkit.data.rows as module

    monkeypatch.setattr(module, "BLOCK_ROWS", 64)
    monkeypatch.setattr(module, "SHUFFLE_BUFFER_BYTES", 64 * 4 * 8)
    values = np.arange(5_000, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    rows = rows_file(tmp_path, "a.f32", values)
    labels = np.arange(5_000)
    data = rows.batches(128, labels, shuffle_seed=3)
    epochs = []
    for _ in range(2):
        batches = [(np.asarray(x), np.asarray(y)) for x, y in data]
        assert [len(b[1]) for b in batches[:-1]] == [128] * (len(batches) - 1)
        assert len(batches) == int(data.cardinality()) == 40
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        np.testing.assert_array_equal(x[:, 0], y)  # each row with its own label
        assert sorted(y.tolist()) == list(range(5_000))
        assert y[:128].max() - y[:128].min() > 2_000  # a batch mixes far-apart rows
        epochs.append(y)
    assert not np.array_equal(*epochs)  # a new order every epoch
    ordered = np.concatenate([np.asarray(x)[:, 0] for x in rows.batches(1000)])
    np.testing.assert_array_equal(ordered, labels)


def fraud_like(rows, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "Time": np.arange(rows, dtype=float),
            "amount": rng.gamma(2.0, 30.0, rows),
            "v1": rng.normal(size=rows),
            "kind": rng.choice(["a", "b", "c"], rows),
        }
    )
    frame["Class"] = ((frame["v1"] > 1.2) | (rng.random(rows) < 0.02)).astype(int)
    return frame


def config_for(path, cache_dir, **settings):
    values = {"source": path, "label": "Class", "cache": "disk", "cache_dir": str(cache_dir)}
    return DataConfig(**{**values, **settings})


def test_streamed_table_splits_checks_and_reuses_its_encoding(tmp_path, capsys, monkeypatch):
    from dltoolkit import features, streamed_tables

    frame = fraud_like(3_000)
    frame.to_csv(tmp_path / "t.csv", index=False)
    config = config_for(f"csv:{tmp_path / 't.csv'}", tmp_path / "cache", split="random")
    monkeypatch.setattr(table_chunks, "CHUNK_ROWS", 700)  # several chunks
    data = streamed_tables.load_streamed_table(config, 0, classes=True)
    sizes = data.sizes()
    assert sum(sizes.values()) == 3_000
    assert abs(sizes["test"] - 450) < 90 and abs(sizes["validation"] - 450) < 90
    assert data.class_names == ["0", "1"] and data.table.sampled
    assert "read 3,000 rows" in capsys.readouterr().err
    # The test split's rows are the file's rows its hash chose, encoded by the FeatureSpace.
    u = table_chunks.unit_hash(np.arange(3_000, dtype=np.uint64), 0)
    test = frame[u < config.test_split].reset_index(drop=True)
    np.testing.assert_array_equal(data.y_test, test["Class"].to_numpy())
    expected = features.encode(data.feature_space, test, ["Time", "amount", "v1"], ["kind"])
    np.testing.assert_allclose(data.x_test.read(), expected, rtol=1e-6)
    again = streamed_tables.load_streamed_table(config, 0, classes=True)
    assert "read" not in capsys.readouterr().err  # the cached encoding, no pass over the file
    np.testing.assert_array_equal(again.x_train.read(), data.x_train.read())
    # A bad value far into the file: named with its file and row, nothing cached.
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[2_500, "amount"] = "oops"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    bad = config_for(f"csv:{tmp_path / 'bad.csv'}", tmp_path / "cache2", split="random")
    with pytest.raises(DataError, match=r"bad\.csv.*'amount'.*row 2502"):
        streamed_tables.load_streamed_table(bad, 0, classes=True)
    assert not list((tmp_path / "cache2").glob("table-*"))


def test_streamed_time_split_of_a_parquet_folder_orders_by_time(tmp_path):
    pytest.importorskip("pyarrow")
    from dltoolkit import streamed_tables

    frame = fraud_like(4_000, seed=1)
    (tmp_path / "parts").mkdir()
    frame.iloc[:2_500].to_parquet(tmp_path / "parts" / "a.parquet", index=False)
    frame.iloc[2_500:].to_parquet(tmp_path / "parts" / "b.parquet", index=False)
    config = config_for(
        f"parquet:{tmp_path / 'parts'}", tmp_path / "c", split="time", time_column="Time",
        validation_split=0.1, test_split=0.2, cache="none",
    )  # fmt: skip
    data = streamed_tables.load_streamed_table(config, 0, classes=True)
    sizes = data.sizes()
    assert abs(sizes["train"] - 2_800) < 40 and abs(sizes["test"] - 800) < 40
    # Oldest rows train, newest test (Time is the row number here).
    np.testing.assert_array_equal(data.y_test, frame["Class"].to_numpy()[-sizes["test"] :])
    assert streamed_tables.streams(config) and not streamed_tables.streams(
        config_for(config.source, tmp_path, cache="auto")
    )


def test_a_streamed_table_trains_and_refuses_what_needs_it_in_memory(tmp_path):
    from conftest import invoke

    frame = fraud_like(2_000, seed=2)
    frame.to_csv(tmp_path / "t.csv", index=False)
    common = [
        "--data", f"csv:{tmp_path / 't.csv'}", "--set", "data.label=Class",
        "--set", "data.cache=disk", "--set", f"data.cache_dir={tmp_path / 'cache'}",
        "--set", "data.split=random", "--set", "train.epochs=2",
        "--set", "data.amount_column=amount",
    ]  # fmt: skip
    result = invoke("recipe", "fraud-detection", *common, "--output", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    metrics = json.loads(next((tmp_path / "runs").rglob("metrics.json")).read_text())
    assert sum(metrics["data"]["sizes"].values()) == 2_000
    # Amounts streamed beside the labels: the money view sums the test frauds' amounts.
    test_rows = table_chunks.unit_hash(np.arange(2_000, dtype=np.uint64), 0) < 0.2
    frauds = frame[test_rows & (frame["Class"] == 1).to_numpy()]["amount"].sum()
    assert metrics["test"]["money"]["value_of_positives"] == pytest.approx(frauds)
    assert "permutation_importance" in metrics["interpretability"]
    folds = invoke("recipe", "fraud-detection", *common, "--set", "data.folds=3")
    assert folds.exit_code == 2 and "data.folds" in folds.output and "memory" in folds.output
    with pytest.raises(ConfigError):
        from dltoolkit import streamed_tables

        streamed_tables.refuse(config_for(f"csv:{tmp_path / 't.csv'}", tmp_path), "task x")


def test_streamed_chunks_read_integer_codes_alike_and_bad_settings_are_one_line(
    tmp_path, monkeypatch
):
    from conftest import invoke

    from dltoolkit import features, streamed_tables

    frame = fraud_like(2_000)
    frame["code"] = np.arange(2_000) % 3 + 1
    frame["code"] = frame["code"].astype(object)
    frame.loc[1_500, "code"] = None  # a later chunk alone has a gap: read as floats, alone
    frame.to_csv(tmp_path / "codes.csv", index=False)
    monkeypatch.setattr(table_chunks, "CHUNK_ROWS", 700)
    source = f"csv:{tmp_path / 'codes.csv'}"
    config = config_for(source, tmp_path / "cache", split="random", categorical=["kind", "code"])
    data = streamed_tables.load_streamed_table(config, 0, classes=True)
    # Every chunk read "code" as text: 1, 2, 3 and the gap, never "1.0" (out of vocabulary).
    whole = pd.read_csv(tmp_path / "codes.csv", dtype={"code": str, "kind": str})
    whole["code"] = whole["code"].fillna("")
    test = whole[table_chunks.unit_hash(np.arange(2_000, dtype=np.uint64), 0) < 0.15]
    names = (["Time", "amount", "v1"], ["kind", "code"])
    expected = features.encode(data.feature_space, test.reset_index(drop=True), *names)
    np.testing.assert_allclose(data.x_test.read(), expected, rtol=1e-6)
    assert sorted(data.feature_space.preprocessors["code"].get_vocabulary()) == [
        "", "1", "2", "3", "[UNK]"
    ]  # fmt: skip

    (tmp_path / "header.csv").write_text("Time,amount,Class\n")
    with pytest.raises(DataError, match="has a header but no rows"):
        streamed_tables.load_streamed_table(
            config_for(f"csv:{tmp_path / 'header.csv'}", tmp_path / "c2"), 0, classes=True
        )
    keyed = config_for(source, tmp_path / "c3", split_key="customer")
    with pytest.raises(DataError, match=r"no column 'customer' \(data.split_key\)"):
        streamed_tables.load_streamed_table(keyed, 0, classes=True)
    streamed = ["--data", source, "--set", "data.label=Class", "--set", "data.cache=disk",
                "--set", f"data.cache_dir={tmp_path / 'c4'}"]  # fmt: skip
    for recipe, extra, words in (
        ("fraud-detection", ["--set", "data.split_key=Time", "--set", "data.split=time"],
         "data.split_key"),
        ("customer-segmentation", ["--set", "data.label=null"],
         "task clustering needs the table in memory"),
    ):  # fmt: skip
        result = invoke("recipe", recipe, *streamed, *extra, "--output", str(tmp_path / "r"))
        assert result.exit_code == 2 and words in result.output, (recipe, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    # The autoencoder streams too: its targets are its inputs' rows, read from the same file.
    runs = tmp_path / "anomaly"
    fraud_like(2_000, seed=3).to_csv(tmp_path / "normal.csv", index=False)
    epoch = ("--set", "train.epochs=1", "--set", "export.enabled=false",
             "--set", "data.amount_column=amount")  # fmt: skip
    streamed[1] = f"csv:{tmp_path / 'normal.csv'}"
    result = invoke("recipe", "fraud-anomaly", *streamed, *epoch, "--output", str(runs))
    assert result.exit_code == 0, result.output
    metrics = json.loads(next(runs.rglob("metrics.json")).read_text())
    assert np.isfinite(metrics["test"]["pr_auc"]) and len(metrics["baselines"]) == 2
    assert (next(runs.rglob("latent_space.png"))).is_file()
