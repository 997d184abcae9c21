"""Tables: reading and checking columns, splits, FeatureSpace encoding, the tabular tasks,
recipes on small slices, and SavedModels that serve raw named features."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import invoke, one_line_error, run_recipe_in

from dltoolkit.config import DataConfig, ThresholdConfig
from dltoolkit.data.tabular import load_table, read_frame, split_table
from dltoolkit.errors import DataError
from dltoolkit.tasks.binary import binary_scores
from dltoolkit.tasks.thresholds import choose_threshold

QUICK = ("--set", "train.epochs=2", "--set", "train.verbose=0")


def transactions(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """A small made-up transactions table: numbers, a category, a 0/1 label."""
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 50.0, rows)
    merchant = rng.choice(["grocery", "travel", "online", "fuel"], rows)
    hour = rng.integers(0, 24, rows)
    risk = 0.01 * amount + (merchant == "online") * 1.5 - 2.5
    fraud = (rng.random(rows) < 1 / (1 + np.exp(-risk))).astype(int)
    return pd.DataFrame({"amount": amount, "merchant": merchant, "hour": hour, "fraud": fraud})


@pytest.fixture
def table_csv(tmp_path: Path) -> Path:
    path = tmp_path / "transactions.csv"
    transactions().to_csv(path, index=False)
    return path


def write_csv(folder: Path, frame: pd.DataFrame, name: str = "t.csv") -> Path:
    path = folder / name
    frame.to_csv(path, index=False)
    return path


# === Reading and checking ===


@pytest.mark.backend_neutral
def test_columns_are_resolved_and_categories_inferred(table_csv: Path):
    table = load_table("csv", str(table_csv), DataConfig(label="fraud"))
    assert table.numeric == ["amount", "hour"]
    assert table.categorical == ["merchant"]
    assert table.features == ["amount", "hour", "merchant"]
    config = DataConfig(label="fraud", categorical=["hour", "merchant"])
    explicit = load_table("csv", str(table_csv), config)
    assert explicit.categorical == ["hour", "merchant"] and explicit.numeric == ["amount"]
    assert explicit.frame["hour"].map(type).eq(str).all()
    with pytest.raises(DataError, match="column 'merchant' is numeric but row 2 holds 'grocery'"):
        load_table("csv", str(table_csv), DataConfig(label="fraud", categorical=["hour"]))


@pytest.mark.backend_neutral
def test_parquet_reads_like_csv(tmp_path: Path):
    frame = transactions(50)
    frame.to_parquet(tmp_path / "t.parquet")
    table = load_table("parquet", str(tmp_path / "t.parquet"), DataConfig(label="fraud"))
    pd.testing.assert_frame_equal(table.frame[["amount"]], frame[["amount"]])


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("change", "config", "expected"),
    [
        (None, {"label": "frod"}, "has no column 'frod' (data.label) (did you mean \"fraud\"?)"),
        (None, {}, "data.label is not set"),
        (None, {"label": "fraud", "features": ["amount", "ammount"]}, "no column 'ammount'"),
        (None, {"label": "fraud", "features": ["fraud"]}, "also listed in data.features"),
        ("text", {"label": "fraud"}, "column 'amount' is numeric but row 5 holds 'twelve'"),
        ("nan", {"label": "fraud"}, "column 'amount' is missing a value at row 5"),
        ("inf", {"label": "fraud"}, "column 'amount' holds inf at row 5"),
        ("nolabel", {"label": "fraud"}, "label column 'fraud' is empty at row 5"),
    ],
)
def test_bad_tables_are_named_precisely(tmp_path: Path, change, config, expected):
    frame = transactions(30).astype({"amount": object})
    if change == "text":
        frame.loc[3, "amount"] = "twelve"
    elif change == "nan":
        frame.loc[3, "amount"] = np.nan
    elif change == "inf":
        frame.loc[3, "amount"] = np.inf
    elif change == "nolabel":
        frame["fraud"] = frame["fraud"].astype(object)
        frame.loc[3, "fraud"] = None
    path = write_csv(tmp_path, frame)
    with pytest.raises(DataError) as error:
        load_table("csv", str(path), DataConfig(**config))
    assert expected in str(error.value)


@pytest.mark.backend_neutral
def test_empty_and_header_only_files(tmp_path: Path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("a,b,label\n")
    with pytest.raises(DataError, match="is empty"):
        read_frame("csv", str(tmp_path / "empty.csv"))
    with pytest.raises(DataError, match="has a header but no rows"):
        read_frame("csv", str(tmp_path / "header.csv"))


@pytest.mark.backend_neutral
def test_label_with_one_class_is_refused(tmp_path: Path):
    frame = transactions(30).assign(fraud=0)
    table = load_table("csv", str(write_csv(tmp_path, frame)), DataConfig(label="fraud"))
    with pytest.raises(DataError, match="label 'fraud' has one class"):
        split_table(table, DataConfig(label="fraud"), seed=0, classes=True)


# === Splits ===


@pytest.mark.backend_neutral
def test_time_split_keeps_order_and_puts_the_latest_rows_in_test(tmp_path: Path):
    frame = transactions(100).assign(when=np.arange(100)[::-1])  # newest first in the file
    path = write_csv(tmp_path, frame)
    config = DataConfig(label="fraud", split="time", time_column="when")
    table = load_table("csv", str(path), config)
    assert "when" not in table.features
    splits = split_table(table, config, seed=0, classes=True)
    assert splits.sizes() == {"train": 70, "validation": 15, "test": 15}
    # The test split holds the 15 latest rows (when = 85..99), oldest first.
    expected = frame.sort_values("when").tail(15)["amount"].to_numpy()
    np.testing.assert_allclose(splits.test["amount"].to_numpy(), expected)


@pytest.mark.backend_neutral
def test_stratified_split_is_deterministic_and_keeps_class_shares(table_csv: Path):
    config = DataConfig(label="fraud")
    table = load_table("csv", str(table_csv), config)
    first, again = (split_table(table, config, seed=1, classes=True) for _ in range(2))
    pd.testing.assert_frame_equal(first.train, again.train)
    overall = table.frame["fraud"].mean()
    for y in (first.y_train, first.y_val, first.y_test):
        assert abs(y.mean() - overall) < 0.05


@pytest.mark.backend_neutral
def test_missing_numbers_are_filled_with_the_training_median(tmp_path: Path):
    frame = transactions(100)
    frame.loc[::5, "amount"] = np.nan
    config = DataConfig(label="fraud", split="random", missing="median")
    table = load_table("csv", str(write_csv(tmp_path, frame)), config)
    splits = split_table(table, config, seed=0, classes=True)
    assert set(splits.medians) == {"amount"}
    assert not splits.train["amount"].isna().any() and not splits.test["amount"].isna().any()
    # Filling with copies of the median leaves the training median where it was.
    assert splits.medians["amount"] == pytest.approx(np.median(splits.train["amount"]))
    held_out = np.concatenate([splits.validation["amount"], splits.test["amount"]])
    assert splits.medians["amount"] in held_out  # held-out rows are filled from train's median


@pytest.mark.backend_neutral
def test_positive_class_becomes_class_one(tmp_path: Path):
    frame = transactions(60).assign(status=lambda f: f["fraud"].map({0: "good", 1: "bad"}))
    path = write_csv(tmp_path, frame.drop(columns="fraud"))
    config = DataConfig(label="status", positive_class="bad", split="random")
    splits = split_table(load_table("csv", str(path), config), config, 0, classes=True)
    assert splits.class_names == ["good", "bad"]
    by_default = DataConfig(label="status", split="random")
    default = split_table(load_table("csv", str(path), by_default), by_default, 0, True)
    assert default.class_names == ["bad", "good"]
    np.testing.assert_array_equal(splits.y_train, 1 - default.y_train)
    wrong = DataConfig(label="status", positive_class="fraud")
    with pytest.raises(DataError, match=r"data\.positive_class 'fraud' must be one of"):
        split_table(load_table("csv", str(path), wrong), wrong, 0, classes=True)


@pytest.mark.backend_neutral
def test_cross_validation_folds_partition_the_rows(table_csv: Path):
    config = DataConfig(label="fraud")
    table = load_table("csv", str(table_csv), config)
    tests = [split_table(table, config, 0, True, fold=(i, 4)).test for i in range(4)]
    combined = pd.concat(tests)
    assert len(combined) == len(table.frame)
    assert not combined.duplicated().any()  # every row is tested exactly once


# === Binary decisions ===


@pytest.mark.backend_neutral
def test_threshold_objectives():
    y = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 1])
    p = np.linspace(0.05, 0.95, 10)
    best_f1 = choose_threshold(y, p, ThresholdConfig("f1"))
    assert best_f1["threshold"] == pytest.approx(p[4]) and best_f1["met"]
    precise = choose_threshold(y, p, ThresholdConfig("precision", 0.99))
    assert precise["threshold"] == pytest.approx(p[6])  # lowest threshold with precision 1
    recalled = choose_threshold(y, p, ThresholdConfig("recall", 0.99))
    assert recalled["threshold"] == pytest.approx(p[4])  # highest threshold with recall 1
    fixed = choose_threshold(y, p, ThresholdConfig("fixed", 0.3))
    assert fixed["threshold"] == 0.3
    scores = np.array([0.1, 0.9, 0.2, 0.8])
    impossible = choose_threshold(np.array([1, 0, 1, 0]), scores, ThresholdConfig("precision", 0.9))
    assert impossible["met"] is False


@pytest.mark.backend_neutral
def test_binary_scores_at_a_threshold():
    y = np.array([0, 0, 1, 1])
    scores = binary_scores(y, np.array([0.1, 0.6, 0.4, 0.9]), threshold=0.5)
    assert scores["confusion_matrix"] == [[1, 1], [1, 1]]
    assert scores["precision"] == 0.5 and scores["recall"] == 0.5
    assert scores["roc_auc"] == 0.75 and scores["gini"] == pytest.approx(0.5)
    assert scores["ks"] == pytest.approx(0.5)


@pytest.mark.backend_neutral
def test_calibration_table_and_error():
    from dltoolkit.tasks.calibration import reliability as calibration

    rng = np.random.default_rng(0)
    p = rng.random(20000)
    honest = calibration((rng.random(20000) < p).astype(int), p)
    assert honest["expected_calibration_error"] < 0.02
    assert sum(honest["calibration"]["count"]) == 20000
    np.testing.assert_allclose(
        honest["calibration"]["predicted"], honest["calibration"]["observed"], atol=0.03
    )
    overconfident = calibration((rng.random(20000) < 0.5).astype(int), p)
    assert overconfident["expected_calibration_error"] > 0.2


# === Runs, export and serving ===

# Runs in a fresh interpreter that imports TensorFlow only: what a serving client sees.
SERVE_TABLE = """
import json, sys
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
rows = json.loads(sys.argv[2])
inputs = {key: tf.constant(value) for key, value in rows.items()}
outputs = serve(**inputs)
print(json.dumps({
    "inputs": sorted(serve.structured_input_signature[1]),
    "score": outputs[sys.argv[3]].numpy().tolist(),
    "class_name": [name.decode() for name in outputs["class_name"].numpy()],
    "points": outputs["points"].numpy().tolist() if "points" in outputs else None,
    "dltoolkit_imported": "dltoolkit" in sys.modules,
}))
"""


def serve_in_fresh_process(version_dir: Path, rows: dict, score: str) -> dict:
    """What SERVE_TABLE prints for ``rows``; ``score`` names the output read as "score"."""
    result = subprocess.run(
        [sys.executable, "-c", SERVE_TABLE, str(version_dir), json.dumps(rows), score],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-epoch binary run on a CSV with a categorical column and missing amounts."""
    root = tmp_path_factory.mktemp("table")
    frame = transactions(300)
    frame.loc[::25, "amount"] = np.nan
    frame["fraud"] = frame["fraud"].map({0: "legit", 1: "fraud"})
    path = write_csv(root, frame)
    return run_recipe_in(
        root, "phishing-detection", "--data", f"csv:{path}", *QUICK,
        "--set", "data.label=fraud", "--set", "data.missing=median",
        "--set", "train.class_weight=balanced", "--set", "train.calibration=platt",
        "--set", "train.threshold.objective=cost", "--set", "train.costs.false_positive=1",
        "--set", "train.costs.false_negative=4", "--set", "export.scorecard.enabled=true",
        "--set", "report.fairness_groups=[merchant, hour<12]",
    )  # fmt: skip


def test_binary_run_writes_features_threshold_and_baselines(binary_run: Path):
    names = sorted(path.name for path in binary_run.iterdir())
    assert {"features.keras", "features.json", "model.keras", "metrics.json"} <= set(names)
    metrics = json.loads((binary_run / "metrics.json").read_text())
    assert metrics["task"] == "binary"
    assert metrics["data"]["class_names"] == ["fraud", "legit"]
    assert metrics["data"]["categorical"] == ["merchant"]
    assert 0.0 <= metrics["decision"]["threshold"] <= 1.0
    assert {b["name"] for b in metrics["baselines"]} == {
        "logistic_regression",
        "hist_gradient_boosting",
        "lightgbm",
        "xgboost",
    }
    assert metrics["calibration"]["method"] == "platt"
    assert metrics["decision"]["objective"] == "cost"
    for scores in [metrics["test"], *(b["test"] for b in metrics["baselines"])]:
        assert {"roc_auc", "pr_auc", "f1", "confusion_matrix", "brier", "ks"} <= set(scores)
        before = scores["before_calibration"]
        assert {"brier", "log_loss", "expected_calibration_error"} <= set(before)
        money = scores["money"]
        assert money["cost_without_model"] == 4 * int(np.sum(scores["confusion_matrix"][1]))
        (_, false_positives), (false_negatives, _) = scores["confusion_matrix"]
        assert scores["total_cost"] == money["total_cost"] == false_positives + 4 * false_negatives
    audited = metrics["fairness"]["hour<12"]
    assert set(audited) == {"network", *(b["name"] for b in metrics["baselines"])}
    assert set(audited["network"]["groups"]) == {"hour < 12", "hour >= 12"}
    assert set(metrics["fairness"]["merchant"]["network"]["groups"]) <= {
        "grocery", "travel", "online", "fuel"
    }  # fmt: skip
    boosted = {b["name"]: b for b in metrics["baselines"]}["lightgbm"]
    assert boosted["trees"] >= 1 and boosted["parameters"] >= boosted["trees"]
    info = json.loads((binary_run / "features.json").read_text())
    assert set(info["medians"]) == {"amount"}
    page = (binary_run / "report.html").read_text()
    assert "scorecard_points.png" in page and "Fairness by merchant" in page
    for picture in ("roc.png", "precision_recall.png", "confusion_matrix.png", "reliability.png"):
        assert picture in names and picture in page, picture
    assert "permutation_importance.png" in page
    ranked = metrics["interpretability"]["permutation_importance"]["features"]
    assert {item["feature"] for item in ranked} == {"amount", "hour", "merchant"}


def test_evaluate_reproduces_the_binary_scores(binary_run: Path):
    result = invoke("evaluate", str(binary_run))
    assert result.exit_code == 0, result.output
    again = json.loads(result.output)["test"]
    written = json.loads((binary_run / "metrics.json").read_text())["test"]
    assert again["roc_auc"] == pytest.approx(written["roc_auc"], abs=1e-6)
    assert again["confusion_matrix"] == written["confusion_matrix"]


def test_evaluate_refuses_a_table_run_without_its_feature_space(binary_run: Path, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(binary_run, copy)
    (copy / "features.keras").unlink()
    message = one_line_error(invoke("evaluate", str(copy)))
    assert "holds no features.keras for its table data" in message


def test_saved_model_serves_raw_features_in_a_fresh_process(binary_run: Path, tmp_path: Path):
    from dltoolkit import features
    from dltoolkit.evaluation import load_model

    metrics = json.loads((binary_run / "metrics.json").read_text())
    version_dir = binary_run.parent.parent.parent / metrics["export"]["path"]
    # A missing amount and a merchant never seen in training: both are handled.
    rows = {
        "amount": [12.5, float("nan"), 300.0],
        "hour": [3.0, 14.0, 23.0],
        "merchant": ["grocery", "online", "casino"],
    }
    served = serve_in_fresh_process(version_dir, rows, "probability")
    assert served["dltoolkit_imported"] is False
    assert served["inputs"] == ["amount", "hour", "merchant"]
    space, info = features.load(binary_run)
    frame = pd.DataFrame(rows).fillna(info["medians"])
    encoded = features.encode(space, frame, info["numeric"], info["categorical"])
    model = load_model(binary_run / "model.keras")
    expected = np.asarray(model.predict(encoded, verbose=0))
    np.testing.assert_allclose(served["score"], expected[:, 0], atol=1e-5, rtol=0)
    # What is served is the network's probability after the Platt map the run fitted.
    import keras

    from dltoolkit.tasks.calibration import apply_calibration

    layer = model.get_layer("calibration")
    raw = np.asarray(keras.Model(model.inputs, layer.input).predict(encoded, verbose=0))
    calibrated = apply_calibration(metrics["calibration"]["map"], raw[:, 0])
    np.testing.assert_allclose(served["score"], calibrated, atol=1e-5, rtol=0)
    assert np.max(np.abs(calibrated - raw[:, 0])) > 1e-3  # the map did change them
    from dltoolkit.tasks.scorecard import points

    np.testing.assert_allclose(served["points"], points(expected[:, 0], metrics["scorecard"]))
    threshold = metrics["decision"]["threshold"]
    names = metrics["data"]["class_names"]
    assert served["class_name"] == [names[int(p >= threshold)] for p in expected[:, 0]]


def test_predict_reads_raw_columns_from_a_csv(binary_run: Path, tmp_path: Path):
    frame = transactions(20, seed=5).drop(columns="fraud")
    frame.loc[2, "merchant"] = "unseen merchant"
    path = write_csv(tmp_path, frame, "new.csv")
    output = tmp_path / "predictions.csv"
    result = invoke("predict", str(binary_run), "--data", f"csv:{path}", "--output", str(output))
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(output)
    assert list(predictions.columns) == ["id", "probability", "class_id", "class_name", "points"]
    assert len(predictions) == 20 and predictions["probability"].between(0, 1).all()
    missing = write_csv(tmp_path, frame.drop(columns="hour"), "missing.csv")
    message = one_line_error(
        invoke("predict", str(binary_run), "--data", f"csv:{missing}", "--output", "x.csv")
    )
    assert "has no column 'hour'" in message


def test_predict_streams_a_table_in_chunks(binary_run: Path, tmp_path: Path):
    frame = transactions(45, seed=6).drop(columns="fraud")
    path = write_csv(tmp_path, frame, "new.csv")
    frame.to_parquet(tmp_path / "new.parquet")
    outputs = {}
    for name, source, chunk in [
        ("whole", f"csv:{path}", "1000"),
        ("csv", f"csv:{path}", "10"),
        ("parquet", f"parquet:{tmp_path / 'new.parquet'}", "10"),
    ]:
        output = tmp_path / f"{name}.csv"
        args = ("--data", source, "--output", str(output), "--chunk-rows", chunk)
        result = invoke("predict", str(binary_run), *args)
        assert result.exit_code == 0, result.output
        outputs[name] = pd.read_csv(output)
    assert list(outputs["whole"]["id"]) == list(range(45))
    pd.testing.assert_frame_equal(outputs["whole"], outputs["csv"], rtol=1e-6, atol=1e-6)
    pd.testing.assert_frame_equal(outputs["whole"], outputs["parquet"], rtol=1e-6, atol=1e-6)
    # A bad value in the third chunk is named by its row in the file; nothing is written.
    frame["hour"] = frame["hour"].astype(object)
    frame.loc[24, "hour"] = "noon"
    bad = write_csv(tmp_path, frame, "bad.csv")
    args = ("--data", f"csv:{bad}", "--output", str(tmp_path / "bad-out.csv"), "--chunk-rows", "10")
    message = one_line_error(invoke("predict", str(binary_run), *args))
    assert "column 'hour' is numeric but row 26 holds 'noon'" in message
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(("bad-out.csv", ".partial"))]
    header_only = tmp_path / "header.csv"
    header_only.write_text("amount,merchant,hour\n")
    args = ("--data", f"csv:{header_only}", "--output", str(tmp_path / "h.csv"))
    assert "has a header but no rows" in one_line_error(invoke("predict", str(binary_run), *args))


@pytest.mark.parametrize(
    ("recipe", "headline"),
    [
        ("mlp-regression", "rmse"),
        ("phishing-detection", "roc_auc"),
        ("credit-risk", "roc_auc"),
        ("fraud-detection", "pr_auc"),
        ("fraud-anomaly", "pr_auc"),
    ],
)
def test_tabular_recipes_run_one_epoch(workdir: Path, recipe: str, headline: str):
    # credit-risk cross-validates over 5 folds first (its recipe); 2 here check the same code.
    folds = ["--set", "data.folds=2"] if recipe == "credit-risk" else []
    result = invoke(
        "recipe", recipe, "--set", "train.epochs=1", "--set", "train.verbose=0",
        "--set", "export.enabled=false", *folds,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run_dir,) = (workdir / "runs" / recipe).iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert np.isfinite(metrics["test"][headline])
    assert all(np.isfinite(b["test"][headline]) for b in metrics["baselines"])
    if recipe == "credit-risk":
        from dltoolkit.config.loading import load_config

        assert load_config(recipe).data.folds == 5
        folds = metrics["cross_validation"]
        assert len(folds["per_fold"]) == 2
        models = {
            "deep model",
            "logistic_regression",
            "hist_gradient_boosting",
            "lightgbm",
            "xgboost",
        }
        assert set(folds["mean"]) == set(folds["pooled"]) == models
        pooled = folds["pooled"]["deep model"]
        assert pooled["rows"] == 1000 and "before_calibration" in pooled
        mean = np.mean([fold["scores"]["deep model"]["roc_auc"] for fold in folds["per_fold"]])
        assert folds["mean"]["deep model"]["roc_auc"] == pytest.approx(mean)


def test_regression_model_answers_in_the_target_units(workdir: Path):
    result = invoke("recipe", "mlp-regression", *QUICK, "--set", "export.enabled=false")
    assert result.exit_code == 0, result.output
    (run_dir,) = (workdir / "runs" / "mlp-regression").iterdir()
    from dltoolkit.evaluation import load_model

    model = load_model(run_dir / "model.keras")
    prediction = model.predict(np.zeros((1, model.inputs[0].shape[-1])), verbose=0)
    # An all-average input predicts near the mean disease progression (about 152), not 0.
    assert 100 < float(prediction[0, 0]) < 200


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--set", "task=regression", "--set", "data.split=stratified"], "data.split must be"),
        (["--data", "csv:/no/such.csv"], "csv file '/no/such.csv' does not exist"),
        (["--set", "data.label=nope"], "has no column 'nope' (data.label)"),
        (["--set", "train.threshold.objective=precision"], "train.threshold.target must be"),
        (["--data", "builtin:digits"], "task binary needs a label with exactly 2 classes"),
        (["--set", "data.folds=1"], "data.folds must be null, or 2 or more"),
        (["--set", "task=anomaly"], "Set model.builder=autoencoder"),
    ],
)
def test_tabular_bad_input_is_one_line(workdir: Path, arguments, expected):
    message = one_line_error(invoke("recipe", "phishing-detection", *arguments))
    assert expected in message
    assert not (workdir / "runs").exists()


@pytest.mark.backend_neutral
def test_shipped_card_fraud_sample_keeps_time_order_and_every_fraud():
    table = load_table("builtin", "creditcard-fraud-sample", DataConfig())
    assert (table.label, table.time_column) == ("Class", "Time")
    assert table.numeric == [*(f"V{index}" for index in range(1, 29)), "Amount"]
    frame = table.frame
    assert len(frame) == 6183 and int(frame["Class"].sum()) == 492
    assert frame["Time"].is_monotonic_increasing


# === Anomaly detection ===


@pytest.fixture(scope="module")
def anomaly_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-epoch autoencoder anomaly run on a CSV with a categorical column."""
    root = tmp_path_factory.mktemp("anomaly")
    path = write_csv(root, transactions(400))
    return run_recipe_in(
        root, "fraud-anomaly", "--data", f"csv:{path}", *QUICK,
        "--set", "data.label=fraud", "--set", "data.split=stratified",
        "--set", "data.amount_column=amount",
    )  # fmt: skip


def test_anomaly_run_scores_reconstruction_error_against_unsupervised_baselines(
    anomaly_run: Path,
):
    from dltoolkit.evaluation import load_model
    from dltoolkit.features import load
    from dltoolkit.tasks.calibration import apply_calibration

    page = (anomaly_run / "report.html").read_text()
    for picture in ("latent_space.png", "roc.png", "precision_recall.png"):
        assert (anomaly_run / picture).is_file() and picture in page, picture
    metrics = json.loads((anomaly_run / "metrics.json").read_text())
    assert metrics["task"] == "anomaly"
    assert [b["name"] for b in metrics["baselines"]] == ["isolation_forest", "pca_reconstruction"]
    for scores in [metrics["test"], *(b["test"] for b in metrics["baselines"])]:
        assert {"pr_auc", "roc_auc", "precision", "recall", "confusion_matrix"} <= set(scores)
        # The recipe calibrates the score into a probability; reconstruction errors
        # themselves are no probabilities, so there is nothing to judge before calibration.
        assert "brier" in scores and "before_calibration" not in scores
        assert scores["money"]["value_of_positives"] > 0
    calibration = metrics["calibration"]["map"]
    assert calibration["transform"] == "log"
    scorer = load_model(anomaly_run / "model.keras")
    autoencoder = scorer.get_layer("encoder"), scorer.get_layer("decoder")
    space, info = load(anomaly_run)
    x = features_of(space, info, transactions(8, seed=3))
    reconstruction = autoencoder[1].predict(autoencoder[0].predict(x, verbose=0), verbose=0)
    expected = apply_calibration(calibration, np.mean((reconstruction - x) ** 2, axis=1))
    np.testing.assert_allclose(scorer.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-6)
    # The network learnt normal rows only: fewer examples per epoch than the training split.
    history = pd.read_csv(anomaly_run / "history.csv")
    assert len(history) == 2


def features_of(space, info, frame: pd.DataFrame) -> np.ndarray:
    from dltoolkit.features import encode

    return encode(space, frame, info["numeric"], info["categorical"])


def test_anomaly_model_serves_scores_and_flags_in_a_fresh_process(anomaly_run: Path):
    from dltoolkit.evaluation import load_model
    from dltoolkit.features import load

    metrics = json.loads((anomaly_run / "metrics.json").read_text())
    version_dir = anomaly_run.parent.parent.parent / metrics["export"]["path"]
    rows = {"amount": [12.5, 4000.0], "hour": [3.0, 14.0], "merchant": ["grocery", "casino"]}
    served = serve_in_fresh_process(version_dir, rows, "anomaly_score")
    space, info = load(anomaly_run)
    expected = load_model(anomaly_run / "model.keras").predict(
        features_of(space, info, pd.DataFrame(rows)), verbose=0
    )
    np.testing.assert_allclose(served["score"], expected, rtol=1e-4, atol=1e-6)
    threshold = metrics["decision"]["threshold"]
    assert served["class_name"] == [str(int(score >= threshold)) for score in expected]
    assert served["score"][1] > served["score"][0]  # an amount far off the data


def test_anomaly_predict_and_evaluate(anomaly_run: Path, tmp_path: Path):
    path = write_csv(tmp_path, transactions(12, seed=4).drop(columns="fraud"), "new.csv")
    output = tmp_path / "scores.csv"
    result = invoke("predict", str(anomaly_run), "--data", f"csv:{path}", "--output", str(output))
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(output)
    assert list(predictions.columns) == ["id", "anomaly_score", "class_id", "class_name"]
    assert (predictions["anomaly_score"] >= 0).all()
    result = invoke("evaluate", str(anomaly_run))
    assert result.exit_code == 0, result.output
    written = json.loads((anomaly_run / "metrics.json").read_text())["test"]
    assert json.loads(result.output)["test"]["pr_auc"] == pytest.approx(written["pr_auc"], abs=1e-6)


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--set", "train.class_weight=balanced"], "train.class_weight must be null for anomaly"),
        (["--data", "builtin:digits"], "task 'anomaly' needs a table"),
    ],
)
def test_anomaly_bad_config_is_one_line(workdir: Path, arguments, expected):
    message = one_line_error(invoke("recipe", "fraud-anomaly", *arguments))
    assert expected in message
    assert not (workdir / "runs").exists()


# === Oversampling ===


@pytest.mark.backend_neutral
def test_oversampling_grows_the_training_split_only():
    from dltoolkit.config import RunConfig, TrainConfig
    from dltoolkit.data.sources import ArraySplits
    from dltoolkit.training import oversampled

    y = np.array([0] * 90 + [1] * 10)
    x = np.arange(100, dtype=np.float32)[:, None]
    data = ArraySplits(x, y, x[:5], y[:5], x[:7], y[:7], ["legit", "fraud"], "test")
    config = RunConfig(name="t", task="binary", train=TrainConfig(oversample=0.5))
    result = oversampled(config, data)
    assert np.bincount(result.y_train).tolist() == [90, 45]
    # Every added row is a copy of a positive row; every original row is kept.
    assert set(result.x_train[result.y_train == 1, 0]) <= set(range(90, 100))
    np.testing.assert_array_equal(result.x_train[:100], x)
    assert result.x_val is data.x_val and result.x_test is data.x_test
    again = oversampled(config, data)
    np.testing.assert_array_equal(again.x_train, result.x_train)  # seeded


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--set", "train.oversample=1.5"], "train.oversample must be a ratio in (0, 1]"),
        (
            ["--set", "train.oversample=1.0", "--set", "train.class_weight=balanced"],
            "choose one",
        ),
        (
            [
                "--set",
                "task=regression",
                "--set",
                "data.split=random",
                "--set",
                "train.oversample=1",
            ],
            "null for regression",
        ),
    ],
)
def test_oversampling_settings_are_checked(workdir: Path, arguments, expected):
    message = one_line_error(invoke("recipe", "phishing-detection", *arguments))
    assert expected in message


def test_an_oversampled_run_records_its_training_counts(workdir: Path):
    result = invoke(
        "recipe", "fraud-detection", "--set", "train.epochs=1", "--set", "train.verbose=0",
        "--set", "export.enabled=false", "--set", "train.oversample=0.5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run_dir,) = (workdir / "runs" / "fraud-detection").iterdir()
    counts = json.loads((run_dir / "metrics.json").read_text())["data"]["oversampled_train_counts"]
    assert counts[1] == -(-counts[0] // 2)  # ceil(0.5 * legitimate rows)
