"""The Python API and the task seam: configurations built from mappings or strings, the
backend left open by ``import dltoolkit``, every task implementing the whole Task
interface, builders callable directly."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dltoolkit
from dltoolkit.config import recipe_names
from dltoolkit.errors import ConfigError


@pytest.mark.backend_neutral
def test_configure_takes_a_mapping_or_override_strings():
    from_mapping = dltoolkit.configure(
        "mlp-regression", {"train.epochs": 3, "model.hidden_units": [8, 4]}, seed=2
    )
    from_strings = dltoolkit.configure(
        "mlp-regression", ["train.epochs=3", "model.hidden_units=[8, 4]"], seed=2
    )
    assert from_mapping == from_strings
    assert from_mapping.train.epochs == 3 and from_mapping.seed == 2
    again = dltoolkit.configure(from_mapping, {"train.batch_size": 8}, data="builtin:diabetes")
    assert again.train.batch_size == 8 and again.train.epochs == 3
    with pytest.raises(ConfigError, match=r"train\.epochs must be a positive integer"):
        dltoolkit.configure("mlp-regression", {"train.epochs": 0})


@pytest.mark.backend_neutral
def test_importing_dltoolkit_leaves_the_backend_open():
    script = "import sys, dltoolkit; print('keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.backend_neutral
def test_every_task_implements_the_whole_task_interface():
    from dltoolkit.tasks import TASKS, Task

    required = ["load_data", "describe", "data_facts", "build", "score", "baselines"]
    served = ["serving_outputs", "prediction_rows"]
    for name, task in TASKS.items():
        assert task.name == name
        missing = [m for m in required + served if getattr(task, m) is getattr(Task, m)]
        assert not missing, f"task {name} lacks {missing}"
        assert isinstance(task.summary, tuple) and task.summary


@pytest.mark.backend_neutral
def test_every_recipe_names_a_registered_task_whose_rules_it_keeps():
    from dltoolkit.tasks import get_task

    for recipe in recipe_names():
        task = get_task(dltoolkit.load_config(recipe))
        assert task.headline in {*task.summary, "silhouette", "qlike", "rmse", "pr_auc"}


@pytest.mark.backend_neutral
def test_an_unknown_task_is_one_line_listing_the_registered_ones():
    from dltoolkit.tasks import get_task

    with pytest.raises(ConfigError, match=r"task must be one of classification, binary"):
        get_task(dltoolkit.load_config("cnn-image", ["task=ranking"]))


def test_builders_are_plain_functions():
    from dltoolkit import models

    net = models.mlp((5,), 1, "sigmoid", hidden_units=[4])
    assert net.count_params() == 5 * 4 + 4 + 4 + 1
    som = models.som((3,), map_shape=[2, 2])
    codebook = som.get_layer("som").codebook
    assert tuple(codebook.shape) == (4, 3)


@pytest.mark.backend_neutral
def test_runs_written_before_the_headline_entry_get_it_from_their_task(tmp_path):
    import json

    from dltoolkit.tasks import with_headline

    old = {"task": "anomaly", "test": {"roc_auc": 0.9, "pr_auc": 0.4}}
    assert with_headline(old)["headline"] == {"score": "pr_auc", "higher_is_better": True}
    volatility = {"task": "forecasting", "test": {"mse": 1.0, "qlike": 0.3}}
    assert with_headline(volatility)["headline"]["score"] == "qlike"
    signal = {"task": "signal", "test": {"accuracy": 0.5, "sharpe": 0.8}}
    assert with_headline(signal)["headline"]["score"] == "sharpe"
    run_dir = tmp_path / "runs" / "trading-signal" / "20260101T000000Z"
    run_dir.mkdir(parents=True)
    written = {**signal, "created_utc": "2026-01-01T00:00:00+00:00", "baselines": []}
    (run_dir / "metrics.json").write_text(json.dumps(written))
    (found,) = dltoolkit.api.list_runs(tmp_path / "runs")
    assert found["score"] == "sharpe" and found["network"] == 0.8
