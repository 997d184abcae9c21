"""Task clustering: customer segments with DEC, a k-means baseline, SOM pictures, profiles,
log-scaled features and a SavedModel that assigns raw rows to segments."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import invoke, one_line_error, run_recipe_in

from dltoolkit.config import DataConfig
from dltoolkit.data.tabular import load_table
from dltoolkit.errors import DataError

QUICK = (
    "--set", "train.epochs=1", "--set", "train.verbose=0",
    "--set", "train.clustering.max_iterations=30", "--set", "train.clustering.som_epochs=1",
    "--set", "train.clustering.som_map=[4,5]",
)  # fmt: skip


def customers(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Made-up customers: two behaviours (frequent small spenders, rare big ones)."""
    rng = np.random.default_rng(seed)
    loyal = rng.random(rows) < 0.5
    return pd.DataFrame(
        {
            "recency_days": np.where(
                loyal, rng.integers(0, 60, rows), rng.integers(200, 500, rows)
            ),
            "frequency": np.where(loyal, rng.integers(5, 40, rows), rng.integers(1, 3, rows)),
            "monetary": np.where(loyal, rng.gamma(2, 10, rows), rng.gamma(2, 80, rows)).round(2),
            "region": rng.choice(["north", "south"], rows),
        }
    )


@pytest.fixture(scope="module")
def segmentation_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("segments")
    path = root / "customers.csv"
    customers().to_csv(path, index=False)
    arguments = ("--data", f"csv:{path}", *QUICK, "--set", "model.num_clusters=3")
    return run_recipe_in(root, "customer-segmentation", *arguments)


def test_run_writes_segments_profiles_baseline_and_som_pictures(segmentation_run: Path):
    names = {path.name for path in segmentation_run.iterdir()}
    written = {"model.keras", "som.keras", "features.keras", "profiles.csv", "segments.csv"}
    assert written | {"history.csv"} <= names  # the autoencoder's pretraining, per epoch
    pictures = {"u_matrix.png", "hit_map.png", "som_segments.png", "som_components.png"}
    assert pictures | {"latent_space.png"} <= names
    page = (segmentation_run / "report.html").read_text()
    assert all(name in page for name in ("u_matrix.png", "latent_space.png", "k means"))
    metrics = json.loads((segmentation_run / "metrics.json").read_text())
    assert metrics["task"] == "clustering"
    for scores in (metrics["fit"], metrics["test"], metrics["baselines"][0]["test"]):
        assert -1 <= scores["silhouette"] <= 1 and scores["davies_bouldin"] >= 0
    assert metrics["baselines"][0]["name"] == "k_means"
    assert sum(metrics["segment_sizes"]) == metrics["data"]["sizes"]["fit"] == 240
    assert metrics["som"]["map_shape"] == [4, 5]
    # Its cost is recorded as every run's: pretraining epochs, each timed.
    assert metrics["epochs_run"] == len(metrics["cost"]["seconds_per_epoch"]) >= 1
    assert metrics["headline"] == {"score": "silhouette", "higher_is_better": True}
    segments = pd.read_csv(segmentation_run / "segments.csv")
    assert len(segments) == 300 and set(segments["split"]) == {"fit", "test"}
    profiles = pd.read_csv(segmentation_run / "profiles.csv")
    assert profiles["rows"].sum() == 300
    # Profiles are in raw units: the mean of each segment's rows as written in segments.csv.
    for _, profile in profiles.iterrows():
        rows = segments[segments["segment"] == profile["segment"]]
        if len(rows):
            assert profile["monetary_mean"] == pytest.approx(rows["monetary"].mean())


SERVE = """
import json, sys
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
rows = json.loads(sys.argv[2])
outputs = serve(**{key: tf.constant(value) for key, value in rows.items()})
print(json.dumps({key: value.numpy().tolist() for key, value in outputs.items()}))
"""


def test_saved_model_assigns_raw_rows_to_segments(segmentation_run: Path):
    from dltoolkit import features
    from dltoolkit.evaluation import load_model

    metrics = json.loads((segmentation_run / "metrics.json").read_text())
    version_dir = segmentation_run.parent.parent.parent / metrics["export"]["path"]
    frame = customers(5, seed=9)
    rows = {column: frame[column].tolist() for column in frame.columns}
    rows.update({column: [float(v) for v in rows[column]] for column in frame.columns[:3]})
    result = subprocess.run(
        [sys.executable, "-c", SERVE, str(version_dir), json.dumps(rows)],
        capture_output=True, text=True, check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    served = json.loads(result.stdout.strip().splitlines()[-1])
    space, info = features.load(segmentation_run)
    encoded = features.encode(space, frame, info["numeric"], info["categorical"])
    expected = load_model(segmentation_run / "model.keras").predict(encoded, verbose=0)
    np.testing.assert_allclose(served["segment_probabilities"], expected, atol=1e-5)
    assert served["segment"] == expected.argmax(axis=1).tolist()


def test_evaluate_and_predict_a_segmentation(segmentation_run: Path, tmp_path: Path):
    result = invoke("evaluate", str(segmentation_run))
    assert result.exit_code == 0, result.output
    written = json.loads((segmentation_run / "metrics.json").read_text())["test"]
    again = json.loads(result.output)["test"]
    assert again["davies_bouldin"] == pytest.approx(written["davies_bouldin"], rel=1e-5)
    path = tmp_path / "new.csv"
    customers(10, seed=3).to_csv(path, index=False)
    output = tmp_path / "segments.csv"
    result = invoke(
        "predict", str(segmentation_run), "--data", f"csv:{path}", "--output", str(output)
    )
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(output)
    assert list(predicted.columns[:2]) == ["id", "segment"] and len(predicted) == 10
    assert predicted.filter(like="probability_segment_").sum(axis=1).round(4).eq(1).all()


def test_log_transform_standardises_the_log_scale():
    from dltoolkit.features import LogNormalization

    values = np.array([[0.0], [9.0], [99.0], [999.0]], np.float32)
    layer = LogNormalization(axis=-1)
    layer.adapt(values)
    logged = np.log1p(values)
    expected = (logged - logged.mean()) / logged.std()
    np.testing.assert_allclose(np.asarray(layer(values)), expected, atol=1e-4)


@pytest.mark.backend_neutral
def test_log_transform_refuses_negative_values_and_non_numeric_columns(tmp_path: Path):
    frame = customers(20)
    frame.loc[4, "monetary"] = -3.0
    path = tmp_path / "c.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'monetary' is in data.log_transform but row 6"):
        load_table("csv", str(path), DataConfig(log_transform=["monetary"]), require_label=False)
    with pytest.raises(DataError, match=r"has no column 'region' \(data.log_transform"):
        load_table("csv", str(path), DataConfig(log_transform=["region"]), require_label=False)


@pytest.mark.backend_neutral
def test_cdnow_customers_are_one_row_each_with_rfm():
    table = load_table("builtin", "cdnow-customers", DataConfig(), require_label=False)
    assert table.features == ["recency_days", "frequency", "monetary"]
    frame = table.frame
    assert len(frame) == 23570 and frame["customer_id"].is_unique
    assert frame["frequency"].min() == 1 and frame["recency_days"].between(0, 545).all()


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--set", "data.label=frequency"], "data.label must be null for clustering"),
        (["--set", "data.split=stratified"], "'random' or 'time' for clustering"),
        (["--set", "train.clustering.method=kmeans"], "train.clustering.method must be"),
        (["--data", "builtin:digits"], "task 'clustering' needs a table"),
        (["--set", "data.folds=2"], "data.folds must be null for clustering"),
        (["--set", "distribute.precision=mixed_float16"], "trains DEC/IDEC in float32"),
    ],
)
def test_clustering_bad_config_is_one_line(workdir: Path, arguments, expected):
    message = one_line_error(invoke("recipe", "customer-segmentation", *arguments))
    assert expected in message
    assert not (workdir / "runs").exists()


@pytest.mark.backend_neutral
def test_clustering_needs_the_dec_builder(workdir: Path):
    arguments = ["--set", "task=clustering", "--set", "data.split=random"]
    message = one_line_error(invoke("recipe", "phishing-detection", *arguments))
    assert "task clustering needs model.builder 'dec', received 'mlp'" in message


def test_customer_segmentation_recipe_runs_on_its_default_data(workdir: Path):
    result = invoke("recipe", "customer-segmentation", *QUICK, "--set", "export.enabled=false")
    assert result.exit_code == 0, result.output
    (run_dir,) = (workdir / "runs" / "customer-segmentation").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data"]["sizes"] == {"fit": 18856, "test": 4714}
    assert np.isfinite(metrics["test"]["silhouette"])
    assert np.isfinite(metrics["baselines"][0]["test"]["silhouette"])
