from pathlib import Path

import pytest
import yaml

from dltoolkit.config import (
    RunConfig,
    apply_overrides,
    from_dict,
    load_config,
    recipe_names,
)
from dltoolkit.errors import ConfigError

# Configuration, data loading and files: the same whatever the Keras backend.
pytestmark = pytest.mark.backend_neutral


def test_recipe_loads_with_defaults_filled():
    config = load_config("cnn-image")
    assert isinstance(config, RunConfig)
    assert config.name == "cnn-image"
    assert config.data.source == "builtin:digits"
    assert config.model["builder"] == "cnn"
    assert config.train.early_stopping.monitor == "val_loss"
    assert "cnn-image" in recipe_names()


def test_overrides_parse_yaml_values_and_nested_keys():
    config = load_config(
        "cnn-image",
        ["train.epochs=5", "model.filters=[32,64]", "train.early_stopping.patience=null"],
    )
    assert config.train.epochs == 5
    assert config.model["filters"] == [32, 64]
    assert config.train.early_stopping.patience is None


def test_int_is_accepted_where_float_is_expected():
    config = load_config("cnn-image", ["train.learning_rate=1"])
    assert config.train.learning_rate == 1.0
    assert isinstance(config.train.learning_rate, float)


def test_resolved_yaml_round_trips(tmp_path: Path):
    config = load_config("cnn-image", ["train.epochs=3", "seed=7"])
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    again = load_config(path)
    assert again == config
    assert yaml.safe_load(path.read_text())["train"]["epochs"] == 3


def test_apply_overrides_does_not_mutate_input():
    raw = {"name": "x", "train": {"epochs": 1}}
    apply_overrides(raw, ["train.epochs=2"])
    assert raw["train"]["epochs"] == 1


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["train.epoch=3"], "unknown config key 'train.epoch' (did you mean \"train.epochs\"?)"),
        (["trian.epochs=3"], "unknown config key 'trian' (did you mean \"train\"?)"),
        (["train.epochs=abc"], "train.epochs must be an integer, received 'abc'"),
        (["train.epochs=2.5"], "train.epochs must be an integer, received 2.5"),
        (["train.epochs=true"], "train.epochs must be an integer, received True"),
        (["train.epochs=0"], "train.epochs must be a positive integer, received 0"),
        (["train.learning_rate=-1"], "train.learning_rate must be a positive number"),
        (["data.test_split=1.5"], "data.test_split must be a fraction between 0 and 1"),
        (["data.image_size=[8]"], "data.image_size must be [height, width]"),
        (["backend=theano"], "backend must be one of tensorflow, jax, torch"),
        (["train.epochs"], "override 'train.epochs' is not of the form section.key=value"),
        (["train.epochs.x=1"], "train.epochs is a value, not a section"),
        (["train=[1]"], "train must be a mapping, received list"),
        (
            ["train.reduce_lr_on_plateau.factor=2"],
            "train.reduce_lr_on_plateau.factor must be a fraction between 0 and 1",
        ),
        (
            ["train.learning_rate_schedule.name=linear"],
            "train.learning_rate_schedule.name must be one of constant, cosine",
        ),
        (
            ["train.learning_rate_schedule.name=cosine"],
            "'constant' while train.reduce_lr_on_plateau is on",
        ),
        (
            ["train.learning_rate_schedule.warmup_steps=5"],
            "warmup_steps must be 0, or >= 0 with the cosine schedule",
        ),
        (["train.optimizer_options=[1]"], "train.optimizer_options must be"),
    ],
)
def test_bad_config_values_name_the_key_and_value(overrides, expected):
    with pytest.raises(ConfigError) as error:
        load_config("cnn-image", overrides)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_recipe_suggests_the_closest():
    with pytest.raises(ConfigError, match='did you mean "cnn-image"'):
        load_config("cnn-imag")


def test_config_file_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(scalar)


def test_config_needs_a_name():
    with pytest.raises(ConfigError, match="no 'name'"):
        from_dict({"task": "classification"})


def test_exponent_numbers_without_a_dot_are_numbers() -> None:
    # YAML 1.1 reads 1e-4 as a string; a float setting takes it as the number it means.
    config = load_config("mlp-regression", ["train.learning_rate=1e-4"])
    assert config.train.learning_rate == 0.0001
    with pytest.raises(ConfigError, match="must be a number, received '1e-4x'"):
        load_config("mlp-regression", ["train.learning_rate=1e-4x"])
