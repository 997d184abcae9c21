"""Search spaces and `dltk tune`: parsing, bad spaces, each tuner, resume, chief and
workers, and the best values' round trip into `dltk recipe --config`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras_tuner
import pandas as pd
import pytest
import yaml
from conftest import invoke, one_line_error

from dltoolkit.config import load_config
from dltoolkit.errors import ConfigError
from dltoolkit.tuning.hypermodel import check_space
from dltoolkit.tuning.space import SearchSpace, load_space, parse_parameter, tuning_dir

# A fast search: a few epochs of the diabetes regression.
QUICK = ("--set", "train.epochs=3", "--set", "train.early_stopping.patience=null")


def write_space(folder: Path, space: dict, **settings) -> Path:
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump({**settings, "space": space}))
    return path


SPACE = {
    "model.hidden_units": {"layers": {"int": [1, 3]}, "units": {"int": [4, 64], "sampling": "log"}},
    "model.activation": {"choice": ["relu", "tanh"]},
    "model.dropout": {"float": [0.0, 0.3], "step": 0.1},
    "model.batch_norm": {"boolean": False},
    "train.learning_rate": {"float": [0.001, 0.01], "sampling": "log"},
    "train.batch_size": {"choice": [16, 32]},
}


# === Spaces ===


@pytest.mark.backend_neutral
def test_every_recipe_has_a_space_that_fits_it():
    from dltoolkit.config import recipe_names
    from dltoolkit.training import resolve

    for name in recipe_names():
        space = load_space(tuning_dir() / f"{name}.yaml")
        check_space(resolve(load_config(name)), space)


@pytest.mark.backend_neutral
def test_lists_follow_their_length_and_ranges_reach_kerastuner(tmp_path: Path):
    space = load_space(write_space(tmp_path, SPACE))
    hp = keras_tuner.HyperParameters()
    defaults = space.sample(hp)  # declares every parameter at its default
    assert defaults["model.hidden_units"] == [4]
    assert defaults["model.batch_norm"] is False
    declared = {parameter.name: parameter for parameter in hp.space}
    units = declared["model.hidden_units.3"]
    assert (units.min_value, units.max_value, units.sampling) == (4, 64, "log")
    assert units.conditions[0].values == [3]  # the third width exists with 3 layers only
    rate = declared["train.learning_rate"]
    assert (rate.min_value, rate.max_value, rate.sampling) == (0.001, 0.01, "log")
    hp.values.update({"model.hidden_units.layers": 2, "model.hidden_units.1": 40,
                      "model.hidden_units.2": 5, "model.hidden_units.3": 9})  # fmt: skip
    assert space.sample(hp)["model.hidden_units"] == [40, 5]


@pytest.mark.backend_neutral
def test_choices_of_lists_and_conditions(tmp_path: Path):
    space = load_space(
        write_space(
            tmp_path,
            {
                "model.cell": {"choice": ["lstm", "gru"]},
                "model.units": {"choice": [[16], [32, 16]]},
                "model.recurrent_dropout": {"float": [0.0, 0.3], "when": {"model.cell": ["lstm"]}},
            },
        )
    )
    hp = keras_tuner.HyperParameters()
    hp.Choice("model.cell", ["gru", "lstm"])  # gru first: the default
    values = space.sample(hp)
    assert values["model.units"] == [16]
    assert "model.recurrent_dropout" not in values
    hp = keras_tuner.HyperParameters()
    hp.Choice("model.cell", ["lstm", "gru"])
    assert space.sample(hp)["model.recurrent_dropout"] == 0.0


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    ("path", "spec", "expected"),
    [
        ("model.dropout", {"float": [0.5, 0.1]}, "is inverted; write it as [low, high]"),
        ("model.dropout", {"float": [0.2, 0.2]}, "is empty"),
        ("train.learning_rate", {"float": [0.0, 0.1], "sampling": "log"},
         "log sampling needs a range above zero"),
        ("model.dropout", {"float": [0.0]}, "needs [low, high] numbers"),
        ("model.units", {"int": [1.5, 4]}, "whole numbers"),
        ("model.dropout", {"uniform": [0, 1]}, "needs exactly one of int, float, choice, boolean"),
        ("model.units", {"choice": []}, "non-empty list"),
        ("train.learning_rate", {"float": [0.001, 0.1], "sampling": "log", "step": 0.01},
         "step applies to linear sampling only"),
        ("model.units", {"int": [2, 10], "step": 2.5}, "needs a whole step"),
        ("data.lookback", {"int": [5, 10]}, "only model.* (builder hyperparameters) and train.*"),
        ("model.dropout", {"float": [0, 0.5], "when": {"model.cell": ["gru"]}},
         "not an earlier choice"),
    ],
)  # fmt: skip
def test_bad_parameters_are_one_line_errors(path: str, spec: dict, expected: str):
    with pytest.raises(ConfigError) as error:
        parse_parameter(path, spec, [])
    assert expected in str(error.value) and "\n" not in str(error.value)


@pytest.mark.backend_neutral
def test_names_the_builder_does_not_have_are_refused_with_a_suggestion(tmp_path: Path):
    from dltoolkit.training import resolve

    space = load_space(write_space(tmp_path, {"model.hiden_units": {"choice": [[8]]}}))
    with pytest.raises(
        ConfigError, match=r"did you mean 'hidden_units'|did you mean \"hidden_units\""
    ):
        check_space(resolve(load_config("mlp-regression")), space)
    space = load_space(write_space(tmp_path, {"train.learning_rat": {"float": [0.001, 0.01]}}))
    with pytest.raises(ConfigError, match=r"train\.learning_rat"):
        check_space(resolve(load_config("mlp-regression")), space)


@pytest.mark.backend_neutral
def test_bad_searches_fail_in_one_line_before_any_trial(workdir: Path):
    space = write_space(workdir, {"model.dropout": {"float": [0.4, 0.1]}})
    message = one_line_error(invoke("tune", "mlp-regression", "--space", str(space)))
    assert "inverted" in message
    message = one_line_error(invoke("tune", "mlp-regression", "--tuner", "grid"))
    assert "unknown tuner 'grid'" in message and "random, bayesian, hyperband" in message
    message = one_line_error(invoke("tune", "mlp-regression", "--chief", "localhost"))
    assert "is not HOST:PORT" in message
    space = write_space(workdir, {"model.dropout": {"float": [0.0, 1.5]}})
    message = one_line_error(invoke("tune", "mlp-regression", "--space", str(space)))
    assert "model.dropout = 1.5" in message  # the builder's own check, before any trial
    assert not (workdir / "searches").exists()
    message = one_line_error(
        invoke("recipe", "mlp-regression", "--set", "train.refit_on_validation=true")
    )
    assert "train.early_stopping.patience is null" in message


# === Searches ===


def results_of(folder: Path, recipe: str = "mlp-regression") -> pd.DataFrame:
    return pd.read_csv(folder / "searches" / recipe / "results.csv")


# Random search builds and fits trials on every backend; the other tuners differ only in
# KerasTuner's own oracle, which is the same whatever the backend.
@pytest.mark.parametrize(
    "tuner",
    [
        "random",
        pytest.param("bayesian", marks=pytest.mark.backend_neutral),
        pytest.param("hyperband", marks=pytest.mark.backend_neutral),
    ],
)
def test_each_tuner_runs_a_small_search_and_ranks_it(workdir: Path, tuner: str):
    space = write_space(workdir, SPACE)
    result = invoke(
        "tune", "mlp-regression", "--space", str(space), "--tuner", tuner, "--max-trials", "3",
        *QUICK,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = results_of(workdir)
    if tuner != "hyperband":  # Hyperband's budget is set by the epochs, not max_trials
        assert len(table) == 3
    assert list(table["rank"]) == list(range(1, len(table) + 1))
    assert table["val_loss"].is_monotonic_increasing  # minimised: best first
    assert table["seconds"].notna().all()
    best = yaml.safe_load((workdir / "searches" / "mlp-regression" / "best.yaml").read_text())
    assert best["train"]["batch_size"] == table.loc[0, "train.batch_size"]
    assert str(best["model"]["hidden_units"]) == table.loc[0, "model.hidden_units"]
    assert "trial" in result.output and "best" in result.output
    folder = workdir / "searches" / "mlp-regression"
    page = (folder / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == 2
    assert (folder / "search_trials.png").is_file() and (folder / "search_parameters.png").is_file()
    (folder / "report.html").unlink()
    assert invoke("report", str(folder)).exit_code == 0 and (folder / "report.html").is_file()


@pytest.mark.backend_neutral  # search orchestration; a trial's fit is tested per backend
def test_best_values_round_trip_into_a_recipe_run(workdir: Path):
    space = write_space(workdir, SPACE)
    result = invoke(
        "tune", "mlp-regression", "--space", str(space), "--tuner", "random",
        "--max-trials", "2", "--retrain-best", "--set", "export.enabled=false", *QUICK,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    best_file = workdir / "searches" / "mlp-regression" / "best.yaml"
    best = yaml.safe_load(best_file.read_text())
    config = load_config("mlp-regression", override_files=[best_file])
    assert config.model["hidden_units"] == best["model"]["hidden_units"]
    assert config.train.learning_rate == pytest.approx(best["train"]["learning_rate"])
    assert config.data.source == "builtin:diabetes"  # the rest is the recipe's
    (run_dir,) = (workdir / "runs" / "mlp-regression").iterdir()  # --retrain-best's run
    ran = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert ran["model"]["hidden_units"] == best["model"]["hidden_units"]
    # The final fit: training and validation rows, the best trial's epochs, no early stop.
    table = results_of(workdir)
    assert ran["train"]["refit_on_validation"] is True
    assert ran["train"]["epochs"] == table.loc[0, "best_epoch"] + 1
    history = pd.read_csv(run_dir / "history.csv")
    assert len(history) == ran["train"]["epochs"]
    assert json.loads((run_dir / "metrics.json").read_text())["test"]["rmse"] > 0


@pytest.mark.backend_neutral  # search orchestration; a trial's fit is tested per backend
def test_a_cross_validated_objective_ranks_trials_by_their_fold_mean(workdir: Path):
    from dltoolkit.runner import configure, evaluate_folds

    settings = ("--set", "data.folds=2", "--set", "train.epochs=2",
                "--set", "train.early_stopping.patience=null")  # fmt: skip
    space = {"model.dropout": {"float": [0.0, 0.4], "step": 0.1}}
    path = write_space(workdir, space, objective="cv_roc_auc")
    result = invoke(
        "tune", "phishing-detection", "--space", str(path), "--tuner", "random",
        "--max-trials", "2", "--retrain-best", "--set", "export.enabled=false", *settings,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = results_of(workdir, "phishing-detection")
    assert len(table) == 2 and table["cv_roc_auc"].is_monotonic_decreasing  # maximised
    assert table["best_epoch"].isna().all()  # one per fold, so none
    best_file = workdir / "searches" / "phishing-detection" / "best.yaml"
    overrides = [item for item in settings if item != "--set"]
    _, task = configure(load_config("phishing-detection", overrides, [best_file]))
    again = evaluate_folds(task, 2, echo=lambda line: None)["mean"]["deep model"]["roc_auc"]
    assert again == pytest.approx(table.loc[0, "cv_roc_auc"], abs=1e-6)
    # --retrain-best trains as the recipe does (no refit: a fold mean has no best epoch).
    (run_dir,) = (workdir / "runs" / "phishing-detection").iterdir()
    ran = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert ran["train"]["refit_on_validation"] is False and ran["train"]["epochs"] == 2
    assert ran["model"]["dropout"] == yaml.safe_load(best_file.read_text())["model"]["dropout"]

    message = one_line_error(invoke("tune", "phishing-detection", "--space", str(path)))
    assert "objective 'cv_roc_auc'" in message and "data.folds" in message
    path = write_space(workdir, space, objective="cv_auc")
    arguments = ("--space", str(path), "--output", "other", *settings)
    message = one_line_error(invoke("tune", "phishing-detection", *arguments))
    assert "names no test score" in message and "cv_roc_auc" in message
    path = write_space(workdir, space, objective="cv_roc_auc")
    arguments = ("--space", str(path), "--tuner", "hyperband", "--output", "other", *settings)
    message = one_line_error(invoke("tune", "phishing-detection", *arguments))
    assert "hyperband cannot continue" in message
    assert not (workdir / "other").exists()


@pytest.mark.backend_neutral  # search orchestration; a trial's fit is tested per backend
def test_a_killed_search_resumes_without_repeating_trials(tmp_path: Path):
    space = write_space(tmp_path, SPACE)
    command = [
        sys.executable, "-m", "dltoolkit", "tune", "mlp-regression", "--space", str(space),
        "--tuner", "random", "--max-trials", "3", "--set", "train.epochs=30",
        "--set", "train.early_stopping.patience=null",
    ]  # fmt: skip
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    first = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    times = tmp_path / "searches" / "mlp-regression" / "kerastuner" / "trial_stats-tuner0.json"
    deadline = time.monotonic() + 300
    while not times.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)  # in the middle of the second trial
    first.wait()
    done_before = json.loads(times.read_text())
    assert len(done_before) == 1
    second = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    table = results_of(tmp_path)
    assert len(table) == 3 and table["trial"].is_unique
    (trial,) = done_before
    assert f"trial {trial} " not in second.stdout  # the finished trial did not run again
    assert "Reloading Tuner" in second.stdout


@pytest.mark.backend_neutral  # search orchestration; a trial's fit is tested per backend
def test_a_search_can_run_a_few_trials_per_process(workdir: Path):
    space = write_space(workdir, SPACE)
    result = invoke(
        "tune", "mlp-regression", "--space", str(space), "--tuner", "random",
        "--max-trials", "3", "--trials-per-process", "2", *QUICK,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = results_of(workdir)
    assert len(table) == 3 and table["trial"].is_unique
    assert (table["peak_memory_mib"] > 0).all() and table["seconds"].notna().all()
    assert "rank" in result.output  # the parent prints the ranked table
    folder = workdir / "searches" / "mlp-regression" / "kerastuner"
    stats = json.loads((folder / "trial_stats-tuner0.json").read_text())
    processes = [stats[str(trial)]["process"] for trial in sorted(table["trial"])]
    assert processes[0] == processes[1] != processes[2]  # 2 trials, then a fresh process


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.backend_neutral  # search orchestration; a trial's fit is tested per backend
def test_a_chief_and_two_workers_share_one_search(tmp_path: Path):
    space = write_space(tmp_path, SPACE)
    address = f"127.0.0.1:{free_port()}"
    base = [
        sys.executable, "-m", "dltoolkit", "tune", "mlp-regression", "--space", str(space),
        "--tuner", "random", "--max-trials", "4", *QUICK,
    ]  # fmt: skip
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    def start(*role: str) -> subprocess.Popen:
        return subprocess.Popen([*base, *role], cwd=tmp_path, env=environment, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip

    chief = start("--chief", address)
    time.sleep(3)
    workers = [start("--worker", address, "--worker-id", f"tuner{i}") for i in range(2)]
    try:
        outputs = [process.communicate(timeout=400)[0] for process in [*workers, chief]]
    finally:
        for process in [chief, *workers]:
            process.kill()
    assert [p.returncode for p in [*workers, chief]] == [0, 0, 0], outputs[-1][-3000:]
    folder = tmp_path / "searches" / "mlp-regression" / "kerastuner"
    ran = [json.loads((folder / f"trial_stats-tuner{i}.json").read_text()) for i in range(2)]
    trials = [trial for worker in ran for trial in worker]
    assert len(trials) == len(set(trials)) == 4  # every trial ran once, on one worker
    assert all(ran)  # both workers took trials
    table = results_of(tmp_path)  # the chief holds all results
    assert sorted(table["trial"].astype(str)) == sorted(trials)


def test_series_and_segmentation_recipes_can_be_searched(workdir: Path):
    result = invoke(
        "tune", "stock-forecast", "--tuner", "random", "--max-trials", "1",
        "--set", "train.epochs=1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(results_of(workdir, "stock-forecast")) == 1
    result = invoke(
        "tune", "customer-segmentation", "--max-trials", "1", "--set", "train.epochs=1",
        "--set", "train.clustering.max_iterations=50",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = results_of(workdir, "customer-segmentation")
    assert -1 <= table.loc[0, "val_silhouette"] <= 1


@pytest.mark.backend_neutral  # search orchestration; a trial's fit is tested per backend
def test_a_changed_space_is_not_resumed_silently(workdir: Path):
    space = write_space(workdir, SPACE)
    assert invoke("tune", "mlp-regression", "--space", str(space), "--tuner", "random",
                  "--max-trials", "1", *QUICK).exit_code == 0  # fmt: skip
    changed = write_space(workdir, {**SPACE, "model.dropout": {"float": [0.0, 0.5]}})
    message = one_line_error(
        invoke("tune", "mlp-regression", "--space", str(changed), "--tuner", "random", *QUICK)
    )
    assert "different search space" in message and "--overwrite" in message
    result = invoke("tune", "mlp-regression", "--space", str(changed), "--tuner", "random",
                    "--max-trials", "1", "--overwrite", *QUICK)  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.mark.backend_neutral
def test_search_space_object_has_a_stable_fingerprint(tmp_path: Path):
    first = load_space(write_space(tmp_path, SPACE))
    assert isinstance(first, SearchSpace)
    assert first.fingerprint() == load_space(write_space(tmp_path, SPACE)).fingerprint()
