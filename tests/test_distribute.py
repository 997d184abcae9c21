"""Distribution strategies: errors per backend, and the same weights from one process and
from mirrored devices, local JAX devices and a cluster of local workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from dltoolkit import distribute
from dltoolkit.config import STRATEGIES, load_config
from dltoolkit.errors import ConfigError
from tests.conftest import BACKEND, TINY, invoke, one_line_error, run_recipe_in

# diabetes: 310 training rows = 31 global batches of 10, split evenly over 2 replicas, so
# every replica's mean loss weighs the same and the sum equals one process's mean.
SMALL = (
    "--set", "train.epochs=3",
    "--set", "train.batch_size=10",
    "--set", "train.early_stopping.patience=null",
    "--set", "train.verbose=2",
    "--set", "export.enabled=false",
)  # fmt: skip
only_tensorflow = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="tf.distribute strategies run on the TensorFlow backend"
)
only_jax = pytest.mark.skipif(
    BACKEND != "jax", reason="keras.distribution's data/model parallelism runs on JAX"
)


def dltk(folder: Path, *args: str, environment: dict | None = None) -> str:
    """Run ``python -m dltoolkit ARGS`` in a fresh process (strategies and logical devices
    are made once per process); assert it succeeded and return its output."""
    env = {**os.environ, "KERAS_BACKEND": BACKEND, **(environment or {})}
    env.pop("TF_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "dltoolkit", *args], cwd=folder, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def trained_weights(folder: Path) -> list[np.ndarray]:
    (run_dir,) = (folder / "runs" / "mlp-regression").iterdir()
    model = keras.models.load_model(run_dir / "model.keras")
    return [np.asarray(keras.ops.convert_to_numpy(w)) for w in model.weights]


def assert_same_weights(first: Path, second: Path, tolerance: float = 1e-5) -> None:
    a, b = trained_weights(first), trained_weights(second)
    assert len(a) == len(b)
    worst = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))
    assert worst <= tolerance, f"weights differ by up to {worst}"


def test_every_strategy_on_a_backend_without_it_names_the_backends(workdir: Path) -> None:
    for strategy in STRATEGIES:
        if BACKEND in distribute.SUPPORTED[strategy]:
            continue
        result = invoke("recipe", "mlp-regression", "--strategy", strategy)
        line = one_line_error(result)
        assert f"distribute.strategy '{strategy}' is not available on the {BACKEND}" in line
        assert "runs on " + " and ".join(distribute.SUPPORTED[strategy]) in line
        assert not (workdir / "runs").exists()


@pytest.mark.backend_neutral
def test_bad_distribute_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"distribute\.strategy must be one of"):
        load_config("mlp-regression", ["distribute.strategy=mirored"])
    with pytest.raises(ConfigError, match="set together"):
        load_config("mlp-regression", ["distribute.cluster=c.yaml"])
    with pytest.raises(ConfigError, match="TYPE:INDEX"):
        load_config("mlp-regression", ["distribute.cluster=c.yaml", "distribute.task=w1"])
    with pytest.raises(ConfigError, match=r"distribute\.precision must be one of"):
        load_config("mlp-regression", ["distribute.precision=float16"])


def test_learning_rate_scales_with_replicas_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dltoolkit.optimizers import learning_rate

    monkeypatch.setattr(
        distribute.placement, "_current", distribute.Placement("mirrored", "float32", 4)
    )
    config = load_config("mlp-regression", ["train.learning_rate=0.01"])
    assert learning_rate(config, 10) == pytest.approx(0.01)
    config.distribute.scale_learning_rate = True
    assert learning_rate(config, 10) == pytest.approx(0.04)


def test_predictions_cover_every_row_when_batches_are_sharded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dltoolkit.training import predict_outputs

    inputs = keras.Input((3,), name="inputs")
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    expected = predict_outputs(model, x, 4)
    placement = distribute.Placement("data_parallel", "float32", 2)
    monkeypatch.setattr(distribute.placement, "_current", placement)
    assert placement.shards_batches
    np.testing.assert_allclose(predict_outputs(model, x, 4), expected, rtol=1e-6)
    assert [len(a) for a in placement.even_rows(x, x[:, 0])] == [4, 4]


def test_mixed_precision_keeps_weights_and_the_output_in_float32(workdir: Path) -> None:
    try:
        run_dir = run_recipe_in(
            workdir, "mlp-regression", "--mixed-precision", "mixed_bfloat16",
            "--set", "train.epochs=1", "--set", "train.verbose=0",
            "--set", "export.enabled=false",
        )  # fmt: skip
    finally:
        keras.config.set_dtype_policy("float32")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["distribute"]["precision"] == "mixed_bfloat16"
    model = keras.models.load_model(run_dir / "model.keras")
    hidden = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert hidden[0].dtype_policy.name == "mixed_bfloat16"
    assert hidden[0].kernel.dtype == "float32"
    assert keras.ops.convert_to_numpy(model(np.zeros((2, 10), np.float32))).dtype == np.float32
    assert np.isfinite(metrics["test"]["rmse"])


def test_mirrored_over_two_cpu_devices_gives_one_device_weights(tmp_path: Path) -> None:
    if BACKEND != "tensorflow":
        pytest.skip("tf.distribute strategies run on the TensorFlow backend")
    one, mirrored = tmp_path / "one", tmp_path / "mirrored"
    one.mkdir(), mirrored.mkdir()
    dltk(one, "recipe", "mlp-regression", *SMALL)
    output = dltk(
        mirrored, "recipe", "mlp-regression", *SMALL, "--strategy", "mirrored",
        "--set", "distribute.cpu_devices=2",
    )  # fmt: skip
    assert "Epoch 3/3" in output
    (run_dir,) = (mirrored / "runs" / "mlp-regression").iterdir()
    placement = json.loads((run_dir / "metrics.json").read_text())["distribute"]
    assert placement["strategy"] == "mirrored" and placement["replicas"] == 2
    assert_same_weights(one, mirrored)


def test_a_batch_that_does_not_split_over_the_replicas_is_refused(tmp_path: Path) -> None:
    if BACKEND == "torch":
        pytest.skip("no multi-device strategy on the torch backend")
    strategy = "mirrored" if BACKEND == "tensorflow" else "data_parallel"
    env = {**os.environ, "KERAS_BACKEND": BACKEND}
    result = subprocess.run(
        [sys.executable, "-m", "dltoolkit", "recipe", "mlp-regression", "--strategy", strategy,
         "--set", "distribute.cpu_devices=2", "--set", "train.batch_size=15"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert "train.batch_size 15 (the global batch) does not split evenly over 2" in result.stderr
    assert not (tmp_path / "runs").exists()


@only_jax
def test_jax_data_parallel_over_two_devices_gives_one_device_weights(tmp_path: Path) -> None:
    one, parallel = tmp_path / "one", tmp_path / "parallel"
    one.mkdir(), parallel.mkdir()
    dltk(one, "recipe", "mlp-regression", *SMALL)
    dltk(
        parallel, "recipe", "mlp-regression", *SMALL, "--strategy", "data_parallel",
        "--set", "distribute.cpu_devices=2",
    )  # fmt: skip
    assert_same_weights(one, parallel)


@only_jax
def test_jax_data_parallel_with_row_counts_that_do_not_split_over_two_devices(
    tmp_path: Path,
) -> None:
    # cnn-image: 1,257 training rows (a last batch of 9).
    dltk(
        tmp_path, "recipe", "cnn-image", *TINY, "--set", "export.enabled=false",
        "--strategy", "data_parallel",
        "--set", "distribute.cpu_devices=2",
    )  # fmt: skip
    (run_dir,) = (tmp_path / "runs" / "cnn-image").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data"]["sizes"]["train"] % 2 == 1
    assert metrics["distribute"]["replicas"] == 2 and 0 <= metrics["test"]["accuracy"] <= 1


@only_jax
def test_jax_model_parallel_shards_kernels_and_trains_the_same(tmp_path: Path) -> None:
    script = tmp_path / "shards.py"
    script.write_text(
        "import sys\n"
        "from dltoolkit.backend import use_backend\n"
        "from dltoolkit.config import load_config\n"
        "from dltoolkit.distribute import prepare_environment\n"
        "config = load_config('mlp-regression', ['distribute.strategy=model_parallel',\n"
        "    'distribute.cpu_devices=2', 'export.enabled=false', 'train.epochs=1',\n"
        "    'train.verbose=0'])\n"
        "use_backend('jax'); prepare_environment(config.distribute, 'jax')\n"
        "from dltoolkit import distribute\n"
        "from dltoolkit.runner import configure\n"
        "distribute.activate(config)\n"
        "config, task = configure(config)\n"
        "model = task.build(task.prepare_data())\n"
        "for w in model.weights:\n"
        "    spec = w.value.sharding.spec\n"
        "    print('|'.join([w.path, str(w.shape[-1]), str(len(w.shape)), str(spec)]))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(Path.cwd())}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("|") for line in result.stdout.splitlines() if line.count("|") == 3]
    splittable = [row for row in rows if int(row[2]) >= 2 and int(row[1]) % 2 == 0]
    assert splittable, result.stdout
    for path, _, _, spec in rows:
        assert ("'model'" in spec) == any(path == row[0] for row in splittable), rows
    one, sharded = tmp_path / "one", tmp_path / "sharded"
    one.mkdir(), sharded.mkdir()
    dltk(one, "recipe", "mlp-regression", *SMALL)
    dltk(
        sharded, "recipe", "mlp-regression", *SMALL, "--strategy", "model_parallel",
        "--set", "distribute.cpu_devices=2",
    )  # fmt: skip
    assert_same_weights(one, sharded)


@only_tensorflow
def test_tpu_without_a_tpu_is_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run(
        [sys.executable, "-m", "dltoolkit", "recipe", "mlp-regression", "--strategy", "tpu"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert lines and "found no TPU" in lines[0] and "Traceback" not in result.stderr


@only_tensorflow
def test_two_local_workers_train_the_weights_of_one(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    # With cross-validation first: every worker must train the folds in the chief's order.
    folds = ("--set", "data.folds=2")
    dltk(one, "launch", "--workers", "1", "recipe", "mlp-regression", *SMALL, *folds)
    output = dltk(two, "launch", "--workers", "2", "recipe", "mlp-regression", *SMALL, *folds)
    assert "[worker 1] worker 1: trained 3 epochs" in output
    assert "[worker 0] 2-fold mean" in output
    (run_dir,) = (two / "runs" / "mlp-regression").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["distribute"]["workers"] == 2 and metrics["distribute"]["replicas"] == 2
    assert metrics["epochs_run"] == 3
    assert not list((two / "runs" / ".backup").glob("*/*")), "backups outlived the run"
    assert_same_weights(one, two)


@only_tensorflow
def test_two_local_workers_stream_an_image_folder_each_decoding_its_share(tmp_path: Path):
    from tests.conftest import write_image_folder

    images = write_image_folder(tmp_path / "images", classes=3, per_class=30, size=12)
    output = dltk(
        tmp_path, "launch", "--workers", "2", "recipe", "cnn-image", *TINY,
        "--data", f"images:{images}", "--set", "data.cache=none",
        "--set", "export.enabled=false", "--set", "report.enabled=false",
    )  # fmt: skip
    assert "[worker 1] worker 1: trained 2 epochs" in output
    (run_dir,) = (tmp_path / "runs" / "cnn-image").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["distribute"]["workers"] == 2 and metrics["data"]["sizes"]["train"] == 62


@only_tensorflow
def test_a_series_recipe_with_walk_forward_blocks_on_two_workers(tmp_path: Path) -> None:
    output = dltk(
        tmp_path, "launch", "--workers", "2", "recipe", "stock-forecast",
        "--set", "train.epochs=1", "--set", "data.folds=2", "--set", "export.enabled=false",
        "--set", "train.verbose=0", "--set", "data.series.lookback=10",
    )  # fmt: skip
    assert "[worker 0] walk-forward block 2/2" in output
    assert "[worker 1] worker 1: trained 1 epochs" in output
    (run_dir,) = (tmp_path / "runs" / "stock-forecast").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["distribute"]["replicas"] == 2 and "walk_forward" in metrics


@only_tensorflow
def test_parameter_server_training_on_a_local_cluster(tmp_path: Path) -> None:
    output = dltk(
        tmp_path, "launch", "--workers", "2", "--parameter-servers", "1", "recipe",
        "mlp-regression", *SMALL,
    )  # fmt: skip
    assert "[ps 0] ps 0: serving the cluster" in output
    assert "[chief] Epoch 3/3" in output
    (run_dir,) = (tmp_path / "runs" / "mlp-regression").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["distribute"]["strategy"] == "parameter_server"
    assert metrics["distribute"]["workers"] == 2
    assert metrics["epochs_run"] == 3 and np.isfinite(metrics["test"]["rmse"])
    history = (run_dir / "history.csv").read_text().splitlines()
    assert history[0].split(",")[:2] == ["epoch", "loss"] and len(history) == 4


@only_tensorflow
def test_a_killed_worker_is_restarted_and_the_cluster_resumes(tmp_path: Path) -> None:
    epochs = 12
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONUNBUFFERED": "1"}
    env.pop("TF_CONFIG", None)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "dltoolkit", "launch", "--workers", "2", "recipe",
         "mlp-regression", "--set", f"train.epochs={epochs}", "--set", "train.batch_size=10",
         "--set", "train.early_stopping.patience=null", "--set", "train.verbose=0",
         "--set", "export.enabled=false"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    assert launcher.stdout is not None
    worker_pid = None
    for line in launcher.stdout:
        lines.append(line)
        if line.startswith("launch: worker 1 pid"):
            worker_pid = int(line.split()[-1])
            break
    assert worker_pid is not None, "".join(lines)
    deadline = time.monotonic() + 300
    states = []
    while time.monotonic() < deadline:
        states = list((tmp_path / "runs" / ".backup").glob("*/fit-1/state.json"))
        if states and json.loads(states[0].read_text())["epochs_done"] >= 3:
            break
        time.sleep(0.05)
    assert states, "no backup appeared"
    os.kill(worker_pid, signal.SIGKILL)
    output = "".join(lines) + launcher.stdout.read()
    assert launcher.wait(timeout=600) == 0, output[-3000:]
    assert "restarting all 2 processes" in output
    resumed = [line for line in output.splitlines() if "resumed from the backup of epoch" in line]
    assert resumed and int(resumed[0].split("epoch ")[1].split()[0]) >= 3, output[-3000:]
    run_dirs = sorted((tmp_path / "runs" / "mlp-regression").iterdir())
    metrics = json.loads((run_dirs[-1] / "metrics.json").read_text())
    assert metrics["epochs_run"] == epochs
    assert len(metrics["cost"]["seconds_per_epoch"]) < epochs  # this start's epochs only


# === Clustering (DEC) under the strategies ===

SEGMENTS = (
    "--set", "train.epochs=2",
    "--set", "train.batch_size=32",
    "--set", "train.clustering.max_iterations=280",
    "--set", "train.clustering.som_epochs=1",
    "--set", "train.verbose=0",
    "--set", "export.enabled=false",
    "--set", "report.enabled=false",
    "--set", "data.log_transform=[]",
)  # fmt: skip


def customers(folder: Path) -> str:
    """--data for a small table of three groups of customers (made up, for plumbing)."""
    rng = np.random.default_rng(0)
    centres = np.array([[1.0, 5.0, 0.2], [6.0, 1.0, 3.0], [3.0, 3.0, 8.0]])
    rows = centres[rng.integers(0, 3, 640)] + rng.normal(scale=0.8, size=(640, 3))
    path = folder / "customers.csv"
    np.savetxt(path, rows, delimiter=",", header="spend,visits,tenure", comments="")
    return f"csv:{path}"


def segments_of(folder: Path) -> np.ndarray:
    (run_dir,) = (folder / "runs" / "customer-segmentation").iterdir()
    return np.loadtxt(run_dir / "segments.csv", delimiter=",", skiprows=1, usecols=-1)


def segmentation(folder: Path, *command: str) -> np.ndarray:
    """Run ``command`` (ending in the recipe name, then its options) on the small table in
    a fresh ``folder``; the segment of every row."""
    folder.mkdir()
    end = command.index("customer-segmentation") + 1
    dltk(folder, *command[:end], "--data", customers(folder), *SEGMENTS, *command[end:])
    return segments_of(folder)


RECIPE = ("recipe", "customer-segmentation")
TWO_CPUS = ("--set", "distribute.cpu_devices=2")


@only_tensorflow
def test_clustering_on_two_workers_and_mirrored_devices_gives_the_same_segments(
    tmp_path: Path,
) -> None:
    one = segmentation(tmp_path / "one", "launch", "--workers", "1", *RECIPE)
    two = segmentation(tmp_path / "two", "launch", "--workers", "2", *RECIPE)
    np.testing.assert_array_equal(one, two)
    (run_dir,) = (tmp_path / "two" / "runs" / "customer-segmentation").iterdir()
    placement = json.loads((run_dir / "metrics.json").read_text())["distribute"]
    assert placement["strategy"] == "multi_worker" and placement["workers"] == 2
    off = segmentation(tmp_path / "off", *RECIPE)
    mirrored = segmentation(tmp_path / "mirrored", *RECIPE, "--strategy", "mirrored", *TWO_CPUS)
    np.testing.assert_array_equal(off, mirrored)


@only_jax
def test_clustering_with_jax_data_parallel_gives_the_same_segments(tmp_path: Path) -> None:
    off = segmentation(tmp_path / "off", *RECIPE)
    parallel = segmentation(
        tmp_path / "parallel", *RECIPE, "--strategy", "data_parallel", *TWO_CPUS
    )
    np.testing.assert_array_equal(off, parallel)
