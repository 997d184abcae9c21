import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import BACKEND, TINY, invoke, one_line_error, write_image_folder

COMMANDS = [
    [],
    ["recipe"],
    ["recipe", "list"],
    ["recipe", "show"],
    ["recipe", "cnn-image"],
    ["train"],
    ["evaluate"],
    ["export"],
    ["predict"],
    ["report"],
    ["runs"],
    ["runs", "list"],
    ["runs", "compare"],
]


@pytest.mark.backend_neutral
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "dltk")
def test_help(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: dltk" in result.output


@pytest.mark.backend_neutral
def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and "dltk, version" in result.output


@pytest.mark.backend_neutral
def test_recipe_list_describes_every_recipe():
    result = invoke("recipe", "list")
    assert result.exit_code == 0
    line = next(line for line in result.output.splitlines() if line.startswith("cnn-image"))
    assert "Image classification" in line


@pytest.mark.backend_neutral
def test_recipe_show_prints_resolved_yaml():
    result = invoke("recipe", "show", "cnn-image", "--set", "model.filters=[8]")
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown["name"] == "cnn-image"
    assert shown["model"]["filters"] == [8]
    assert shown["model"]["kernel_size"] == 3  # builder default filled in
    assert shown["train"]["early_stopping"]["patience"] == 8
    assert shown["train"]["reduce_lr_on_plateau"]["patience"] == 3


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["recipe", "cnn-imag"], "unknown recipe 'cnn-imag' (did you mean \"cnn-image\"?)"),
        (["recipe", "show", "cnn-imag"], 'did you mean "cnn-image"'),
        (["recipe", "cnn-image", "--set", "train.epoch=3"], 'did you mean "train.epochs"'),
        (["recipe", "cnn-image", "--set", "model.filtrs=[8]"], 'did you mean "model.filters"'),
        (["recipe", "cnn-image", "--set", "train.epochs=abc"], "must be an integer"),
        (["recipe", "cnn-image", "--data", "images:/no/such/dir"], "does not exist"),
        (["recipe", "cnn-image", "--data", "npz:/no/such.npz"], "does not exist"),
        (["recipe", "cnn-image", "--set", "train.optimizer=adamm"], 'did you mean "adam"'),
        (["recipe", "cnn-image", "--set", "export.model_name=a/b"], "model name 'a/b'"),
        (
            ["recipe", "cnn-image", "--set", "train.optimizer_options={momentum: 0.9}"],
            "train.optimizer_options {'momentum': 0.9} are not valid for 'adam'",
        ),
        (
            ["recipe", "cnn-image", "--set", "train.metrics=[aucc]"],
            "train.metrics[0] 'aucc' is not a Keras metric name (did you mean \"auc\"?)",
        ),
        (["train", "missing.yaml"], "config file 'missing.yaml' does not exist"),
        (["evaluate", "nowhere"], "'nowhere' is not a run directory"),
        (["export", "nowhere.keras"], "neither a run directory nor an existing .keras file"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(workdir, arguments, expected):
    message = one_line_error(invoke(*arguments))
    assert expected in message
    assert not (workdir / "runs").exists()  # nothing half-started is left behind


@pytest.mark.backend_neutral
def test_backend_that_is_not_installed(monkeypatch):
    import dltoolkit.backend

    other = "jax" if BACKEND != "jax" else "torch"
    real = dltoolkit.backend.importlib.util.find_spec
    monkeypatch.setattr(
        dltoolkit.backend.importlib.util,
        "find_spec",
        lambda name, *args: None if name == other else real(name, *args),
    )
    message = one_line_error(invoke("recipe", "cnn-image", "--backend", other))
    assert f'pip install "dltoolkit[{other}]"' in message


@pytest.mark.backend_neutral
def test_backend_other_than_the_running_one_is_refused():
    other = "jax" if BACKEND != "jax" else "torch"
    message = one_line_error(invoke("recipe", "cnn-image", "--backend", other))
    assert f"KERAS_BACKEND={other}" in message


def test_run_directory_contents(trained_run: Path):
    assert sorted(path.name for path in trained_run.iterdir()) == [
        "checkpoints",
        "config.yaml",
        "confusion_matrix.png",
        "history.csv",
        "learning_curves.png",
        "metrics.json",
        "model.keras",
        "report.html",
        "saliency.png",
        "test_outputs.npz",
    ]
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["backend"] == BACKEND
    assert metrics["seed"] == 0
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert metrics["parameters"]["total"] > 0
    assert metrics["train_seconds"] > 0 and metrics["samples_per_second"] > 0
    assert metrics["versions"]["keras"]
    assert [b["name"] for b in metrics["baselines"]] == ["logistic_regression"]
    assert metrics["data"]["sizes"] == {"train": 1257, "validation": 270, "test": 270}
    assert metrics["export"]["version"] >= 1
    history = (trained_run / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch") and "val_loss" in history[0]
    assert "val_sparse_top_k_categorical_accuracy" in history[0]  # train.metrics
    assert len(history) == 1 + metrics["epochs_run"]
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert config["backend"] == BACKEND
    assert config["model"]["filters"] == [8]


def test_checkpoint_holds_the_best_epoch(trained_run: Path):
    import keras

    from dltoolkit.config import load_config
    from dltoolkit.data import load_dataset

    (checkpoint,) = (trained_run / "checkpoints").iterdir()
    assert checkpoint.name == "best.keras"
    lines = (trained_run / "history.csv").read_text().splitlines()
    column = lines[0].split(",").index("val_loss")
    best = min(float(line.split(",")[column]) for line in lines[1:])
    config = load_config(trained_run / "config.yaml")
    data = load_dataset(config.data, config.seed)
    model = keras.saving.load_model(checkpoint)
    loss = model.evaluate(data.x_val, data.y_val, batch_size=config.train.batch_size, verbose=0)
    assert np.isclose(loss[0], best, rtol=1e-4)


def test_train_reruns_a_saved_config_in_a_new_run_directory(trained_run: Path, workdir: Path):
    result = invoke("train", str(trained_run / "config.yaml"), "--output", "again")
    assert result.exit_code == 0, result.output
    (new_run,) = (workdir / "again" / "cnn-image").iterdir()
    assert new_run != trained_run
    assert (
        yaml.safe_load((new_run / "config.yaml").read_text())["model"]
        == yaml.safe_load((trained_run / "config.yaml").read_text())["model"]
    )
    # Same seed and data: the same split, so the same test-set size.
    first = json.loads((trained_run / "metrics.json").read_text())
    second = json.loads((new_run / "metrics.json").read_text())
    assert first["data"] == second["data"]


def test_evaluate_reproduces_the_test_accuracy(trained_run: Path):
    result = invoke("evaluate", str(trained_run))
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.output)
    recorded = json.loads((trained_run / "metrics.json").read_text())["test"]
    assert evaluated["test"]["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-9)


def test_predict_writes_csv_and_never_overwrites(trained_run: Path, workdir: Path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(workdir / "inputs.npz", x=digits.images[:20])
    result = invoke("predict", str(trained_run), "--data", "npz:inputs.npz", "--output", "p.csv")
    assert result.exit_code == 0, result.output
    lines = (workdir / "p.csv").read_text().splitlines()
    assert lines[0].startswith("id,class_id,class_name,probability_0")
    assert len(lines) == 21
    before = (workdir / "p.csv").read_text()
    message = one_line_error(
        invoke("predict", str(trained_run), "--data", "npz:inputs.npz", "--output", "p.csv")
    )
    assert "already exists" in message
    assert (workdir / "p.csv").read_text() == before
    np.savez(workdir / "wrong.npz", x=np.zeros((3, 5, 5)))
    message = one_line_error(
        invoke("predict", str(trained_run), "--data", "npz:wrong.npz", "--output", "q.csv")
    )
    assert "the model expects (8, 8, 1)" in message


def test_run_on_an_image_folder(workdir: Path):
    folder = write_image_folder(workdir / "images", classes=3, per_class=10, size=12)
    result = invoke(
        "recipe", "cnn-image", *TINY,
        "--data", f"images:{folder}",
        "--set", "export.model_name=shapes",
        "--set", "train.baseline_rows=7",
        "--seed", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run_dir,) = (workdir / "runs" / "cnn-image").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data"]["class_names"] == ["class_0", "class_1", "class_2"]
    assert metrics["data"]["input_shape"] == [12, 12, 3]  # the images' own size
    assert [b["train_rows"] for b in metrics["baselines"]] == [7]  # a bounded sample
    assert metrics["seed"] == 1
    assert (workdir / "saved_models" / "shapes" / "1" / "saved_model.pb").is_file()
    result = invoke("predict", str(run_dir), "--data", f"images:{folder}", "--output", "p.csv")
    assert result.exit_code == 0, result.output
    assert len((workdir / "p.csv").read_text().splitlines()) == 31


@pytest.mark.backend_neutral
def test_unreadable_image_is_named_by_the_cli(workdir: Path):
    folder = write_image_folder(workdir / "images", classes=2, per_class=4)
    (folder / "class_0" / "bad.jpg").write_bytes(b"\x00\x01")
    message = one_line_error(invoke("recipe", "cnn-image", "--data", f"images:{folder}"))
    assert "bad.jpg" in message


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["recipe", "cnn-image", "--backend", "nope"], "Invalid value for '--backend'"),
        (["serve", "--port", "abc"], "Invalid value for '--port'"),
        (["recipe", "cnn-image", "--no-such-option"], "No such option '--no-such-option'"),
        (["nosuch"], "No such command 'nosuch'"),
        (["export"], "Missing argument 'MODEL_PATH'"),
    ],
)
def test_usage_errors_are_one_line_too(arguments, expected):
    message = one_line_error(invoke(*arguments))
    assert expected in message and "--help" in message


@pytest.mark.backend_neutral
def test_export_and_predict_refuse_a_damaged_or_unsafe_model_file(workdir):
    import zipfile

    import keras
    import numpy as np

    damaged = workdir / "damaged.keras"
    damaged.write_bytes(b"not a zip archive")
    truncated = workdir / "truncated.keras"
    with zipfile.ZipFile(truncated, "w") as archive:
        archive.writestr("config.json", "{not json")
    unsafe = workdir / "unsafe.keras"
    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(unsafe)
    np.savez(workdir / "rows.npz", x=np.zeros((2, 3), np.float32))
    cases = [
        (damaged, "is not a .keras model"),
        (truncated, "could not be loaded as a Keras model"),
        (unsafe, "safe mode refuses to run"),
    ]
    for model, words in cases:
        for command in (
            ["export", str(model)],
            ["predict", str(model), "--data", f"npz:{workdir / 'rows.npz'}"],
        ):
            message = one_line_error(invoke(*command))
            assert words in message and str(model.name) in message, (command, message)
    assert not (workdir / "saved_models").exists() or not any(
        (workdir / "saved_models").rglob("saved_model.pb")
    )
