"""Run configuration: defaults -> recipe or config file -> overrides, validated, dumped as YAML.

A run is described by a :class:`RunConfig`. ``load_config`` reads a recipe name or a YAML
file, ``apply_overrides`` applies ``--set section.key=value`` strings, and ``to_yaml`` writes
the resolved configuration that ``dltk train`` accepts again. Nothing here imports Keras,
so a configuration can be read before the backend is chosen.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dltoolkit.errors import ConfigError, did_you_mean

BACKENDS = ("tensorflow", "jax", "torch")


SERIES_TARGETS = ("return", "volatility", "direction")


@dataclass
class SeriesConfig:
    """Windows of a dated price series (tasks ``forecasting`` and ``signal``).

    Rows are days ordered by ``data.time_column``. ``price_column`` is the price forecast
    (e.g. ``Adj Close``); ``high_column``, ``low_column`` and ``volume_column`` are needed
    only by the features that use them. Each example is the window of raw rows ending at
    day t: ``lookback`` days of ``features`` (computed inside the model from the window
    itself, so nothing after day t is used), plus the rows those features look back over.
    ``target``: ``return`` (the log return from t to t + ``horizon``), ``volatility`` (the
    mean squared daily log return over t+1 .. t+``horizon``: realised variance) or
    ``direction`` (whether the price at t+1 is above the price at t). Features:
    ``log_return``, ``volatility_N`` (standard deviation of the last N daily log returns),
    ``momentum_N`` (log return over the last N days), ``log_range`` (log of high over low)
    and ``volume_change`` (log change of volume). ``max_gap_days``: calendar days allowed
    between consecutive rows (weekends and holidays fit in the default). ``cost_bps``: the
    signal backtest's cost per unit of position change, in basis points.
    """

    price_column: str | None = None
    high_column: str | None = None
    low_column: str | None = None
    volume_column: str | None = None
    target: str = "return"
    lookback: int = 30
    horizon: int = 1
    stride: int = 1
    features: list[str] = field(default_factory=lambda: ["log_return", "volatility_20"])
    max_gap_days: int = 10
    cost_bps: float = 5.0


@dataclass
class DataConfig:
    """Where the data comes from and how it is split.

    ``source`` is ``builtin:NAME``, ``images:PATH``, ``npz:PATH``, ``tfds:NAME``, or a
    table: ``csv:PATH`` or ``parquet:PATH``. Tables name their ``label`` column; the
    ``features`` default to every other column (less ``time_column``), and ``categorical``
    to the non-numeric ones (a column whose values are at least 95% numbers is numeric, and
    its stray non-numbers are reported). ``split``: ``stratified`` (by label; classification),
    ``random``, or ``time`` (ordered by ``time_column``, or file order, never shuffled: the
    last rows are the test split). ``missing``: what a missing numeric value does,
    ``error`` or ``median`` (filled with the training split's median, in serving too).
    """

    source: str = "builtin:digits"
    image_size: list[int] | None = None
    color_mode: str = "rgb"
    validation_split: float = 0.15
    test_split: float = 0.15
    data_dir: str | None = None
    label: str | None = None
    features: list[str] | None = None
    categorical: list[str] | None = None
    time_column: str | None = None
    split: str = "stratified"
    missing: str = "error"
    # Tables: K-fold cross-validation of the model and baselines before the main run.
    folds: int | None = None
    # Binary tables: the label value that is the positive class (class 1); by default the
    # second in sorted order (1 of 0/1).
    positive_class: str | None = None
    # Tables: numeric columns standardised on the log(1 + x) scale (skewed amounts, counts).
    log_transform: list[str] = field(default_factory=list)
    # Tasks forecasting and signal: how a price series becomes windows and targets.
    series: SeriesConfig = field(default_factory=SeriesConfig)


@dataclass
class EarlyStoppingConfig:
    """keras.callbacks.EarlyStopping settings; ``patience: null`` turns it off."""

    monitor: str = "val_loss"
    patience: int | None = 10
    restore_best_weights: bool = True


@dataclass
class ReduceLROnPlateauConfig:
    """keras.callbacks.ReduceLROnPlateau settings; ``patience: null`` turns it off."""

    monitor: str = "val_loss"
    factor: float = 0.5
    patience: int | None = None
    min_learning_rate: float = 1e-5


@dataclass
class CheckpointConfig:
    """keras.callbacks.ModelCheckpoint into the run's ``checkpoints/`` folder.

    ``best_only: true`` keeps one file, ``best.keras``, rewritten whenever ``monitor``
    improves; ``false`` writes ``epoch-NNN.keras`` after every epoch.
    """

    enabled: bool = False
    monitor: str = "val_loss"
    best_only: bool = True


@dataclass
class ThresholdConfig:
    """How a binary classifier's decision threshold is chosen on the validation split.

    ``objective``: ``f1`` (the threshold of best F1), ``precision`` (the lowest threshold
    whose precision reaches ``target``: most recall at that precision) or ``recall`` (the
    highest threshold whose recall reaches ``target``), or ``fixed`` (``target`` itself).
    """

    objective: str = "f1"
    target: float | None = None


THRESHOLD_OBJECTIVES = ("f1", "precision", "recall", "fixed")


SCHEDULES = ("constant", "cosine", "exponential", "polynomial")


@dataclass
class LearningRateScheduleConfig:
    """A keras.optimizers.schedules schedule of the learning rate, stepped every batch.

    ``cosine``: cosine decay to ``end_fraction`` of the learning rate, after optional
    linear warm-up over ``warmup_steps``; ``exponential``: multiplied by ``decay_rate``
    every ``decay_steps``; ``polynomial``: linear decay to ``end_fraction``.
    ``decay_steps: null`` means the whole run (epochs x steps per epoch).
    """

    name: str = "constant"
    decay_steps: int | None = None
    decay_rate: float = 0.1
    end_fraction: float = 0.0
    warmup_steps: int = 0


@dataclass
class ClusteringConfig:
    """How task ``clustering`` trains its ``dec`` model (see dltoolkit.models.dec.fit_dec)
    and the self-organizing map drawn beside it. ``train.epochs`` and ``train.batch_size``
    are the autoencoder pretraining's; ``train.optimizer`` and ``learning_rate`` its
    optimizer."""

    method: str = "idec"
    max_iterations: int = 20000
    update_interval: int = 140
    tolerance: float = 0.001
    gamma: float = 0.1
    som_map: list[int] = field(default_factory=lambda: [10, 10])
    som_epochs: int = 30


@dataclass
class TrainConfig:
    """Optimisation settings."""

    epochs: int = 20
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    # Extra keyword arguments of the optimizer, e.g. {momentum: 0.9, nesterov: true} for
    # sgd or {weight_decay: 0.0001} for adamw.
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    learning_rate_schedule: LearningRateScheduleConfig = field(
        default_factory=LearningRateScheduleConfig
    )
    loss: str | None = None
    # Keras metrics by name, reported beside the task's own (e.g. [auc, precision]).
    metrics: list[str] = field(default_factory=list)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    reduce_lr_on_plateau: ReduceLROnPlateauConfig = field(default_factory=ReduceLROnPlateauConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    # Classification: "balanced" weighs each class inversely to its training frequency.
    class_weight: str | None = None
    # Classification: random oversampling of the training split (never validation or test)
    # until every smaller class has this ratio of the largest class's rows, e.g. 1.0.
    oversample: float | None = None
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    # Fit on the training and validation splits together for exactly train.epochs (early
    # stopping off): the final fit after a search has fixed the hyperparameters. Scores on
    # validation, and a threshold chosen there, are then optimistic; test stays held out.
    refit_on_validation: bool = False
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    verbose: int = 2
    # Back up weights and optimizer state every epoch (keras.callbacks.BackupAndRestore), so
    # a run killed mid-training and started again with the same command resumes.
    backup: bool = True


@dataclass
class ExportConfig:
    """SavedModel export into a TF Serving model repository."""

    enabled: bool = True
    model_name: str | None = None
    directory: str = "saved_models"


@dataclass
class ReportConfig:
    """``report.html`` and its pictures, written into the run directory at the end."""

    enabled: bool = True
    permutation_repeats: int = 3  # shuffles per feature column (tables); 0: no importance
    saliency_images: int = 4  # test images with gradient saliency maps (images); 0: none
    tensorboard: bool = False  # TensorBoard logs in <run dir>/tensorboard (--tensorboard)


STRATEGIES = (
    "off",
    "one_device",
    "mirrored",
    "multi_worker",
    "tpu",
    "parameter_server",
    "data_parallel",
    "model_parallel",
)
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclass
class DistributeConfig:
    """Where a run trains: one device, several local devices, or several machines.

    ``strategy`` names an engine's own mechanism: tf.distribute's ``one_device``,
    ``mirrored``, ``multi_worker``, ``tpu`` and ``parameter_server`` (TensorFlow backend),
    keras.distribution's ``data_parallel`` and ``model_parallel`` (JAX backend). The
    global batch is ``train.batch_size``; each of R replicas gets batch_size / R.
    """

    strategy: str = "off"
    # mixed_float16 / mixed_bfloat16 compute in half precision with float32 weights; the
    # output layer stays float32.
    precision: str = "float32"
    # Linear scaling rule: multiply train.learning_rate by the number of replicas.
    scale_learning_rate: bool = False
    # Split the host CPU into this many logical devices (TF) or XLA host devices (JAX), to
    # try mirrored / data_parallel on a machine without accelerators.
    cpu_devices: int | None = None
    # multi_worker / parameter_server: a YAML or JSON file {job: [host:port, ...]} and this
    # process's place in it as TYPE:INDEX (e.g. worker:1); without them TF_CONFIG, then
    # SLURM's environment, describe the cluster.
    cluster: str | None = None
    task: str | None = None
    # tpu: the TPU's name or grpc:// address ("" = the local TPU VM).
    tpu: str = ""
    # model_parallel: devices along the model axis of the (data, model) mesh.
    model_shards: int = 2


@dataclass
class RunConfig:
    """Everything one run needs. ``model`` holds ``builder`` plus that builder's arguments."""

    name: str
    description: str = ""
    task: str = "classification"
    seed: int = 0
    backend: str | None = None
    output_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=lambda: {"builder": "cnn"})
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    distribute: DistributeConfig = field(default_factory=DistributeConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict in declaration order."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The resolved configuration as YAML, loadable with :func:`load_config`."""
        return yaml.dump(self.to_dict(), Dumper=_ConfigDumper, sort_keys=False, width=100)


TASKS = ("classification", "binary", "regression", "anomaly", "clustering", "forecasting", "signal")
SERIES_TASKS = ("forecasting", "signal")
SPLITS = ("stratified", "random", "time")


class _ConfigDumper(yaml.SafeDumper):
    """Block-style mappings, one-line lists: ``filters: [32, 64]``."""


_ConfigDumper.add_representer(
    list,
    lambda dumper, value: dumper.represent_sequence(
        "tag:yaml.org,2002:seq", value, flow_style=True
    ),
)


# === Recipes ===


def recipes_dir() -> Path:
    """Folder holding the recipe YAML files (inside the wheel, or the source checkout)."""
    bundled = Path(__file__).parent / "recipes"
    return bundled if bundled.is_dir() else Path(__file__).parent.parent / "recipes"


def recipe_names() -> list[str]:
    """Names of the recipes that ship with the toolkit."""
    return sorted(path.stem for path in recipes_dir().glob("*.yaml"))


def recipe_path(name: str) -> Path:
    """Path of recipe ``name``; unknown names raise with a suggestion."""
    path = recipes_dir() / f"{name}.yaml"
    if not path.is_file():
        names = recipe_names()
        raise ConfigError(
            f"unknown recipe {name!r}{did_you_mean(name, names)}; "
            f"known recipes: {', '.join(names)}. List them with `dltk recipe list`."
        )
    return path


# === Loading ===


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with one-line errors for missing or malformed files."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; pass a YAML file path.")
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}: fix the syntax.") from None
    if not isinstance(content, dict):
        raise ConfigError(
            f"{path} holds a {type(content).__name__}, expected a mapping of sections "
            "(name, data, model, train, ...)."
        )
    return content


def load_config(
    recipe_or_file: str | Path,
    overrides: typing.Sequence[str] = (),
    override_files: typing.Sequence[str | Path] = (),
) -> RunConfig:
    """Load a recipe by name or a YAML file, merge override files, apply ``key=value``
    overrides, validate.

    Args:
        recipe_or_file: a recipe name (``cnn-image``) or a path to a YAML file.
        overrides: strings like ``train.epochs=5`` or ``model.filters=[32,64]``.
        override_files: YAML mappings merged in order, section by section (e.g. the
            ``best.yaml`` of a search); ``overrides`` still win.

    Returns:
        The validated RunConfig.
    """
    text = str(recipe_or_file)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        raw = read_yaml(text)
    else:
        raw = read_yaml(recipe_path(text))
        raw.setdefault("name", text)
    for path in override_files:
        raw = merge(raw, read_yaml(path))
    raw = apply_overrides(raw, overrides)
    return from_dict(raw)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``update`` merged in: mappings key by key, anything else
    replaced."""
    result = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into (["a", "b"], parsed YAML value)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"override {text!r} is not of the form section.key=value (e.g. --set train.epochs=5)."
        )
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"override {text!r}: value {value!r} is not valid YAML.") from None
    return key.strip().split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b=value`` override set."""
    raw = copy.deepcopy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                dotted = ".".join(keys[: depth + 1])
                raise ConfigError(
                    f"override {text!r}: {dotted} is a value, not a section; "
                    f"set {dotted}=... instead."
                )
            node = child
        node[keys[-1]] = value
    return raw


# === Validation ===


def from_dict(raw: dict[str, Any]) -> RunConfig:
    """Build a RunConfig from nested dicts, with dotted-path errors for bad keys and types."""
    if "name" not in raw:
        raise ConfigError("config has no 'name'; add e.g. `name: my-run` at the top level.")
    config = _build_dataclass(RunConfig, raw, "")
    _check_values(config)
    return config


def _build_dataclass(cls: type, raw: Any, path: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path or 'config'} must be a mapping, received {type(raw).__name__} {raw!r}."
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            dotted = f"{path}.{key}" if path else str(key)
            suggestions = [f"{path}.{name}" if path else name for name in fields]
            raise ConfigError(
                f"unknown config key {dotted!r}{did_you_mean(dotted, suggestions)}; "
                f"valid keys{' in ' + path if path else ''}: {', '.join(fields)}."
            )
    values = {}
    for name, value in raw.items():
        dotted = f"{path}.{name}" if path else name
        values[name] = coerce(value, hints[name], dotted)
    return cls(**values)


_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def coerce(value: Any, annotation: Any, path: str) -> Any:
    """Check ``value`` against a type annotation, converting int -> float and tuple -> list.

    Raises ConfigError naming ``path``, the value received and the type expected.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option, path)
            except ConfigError:
                continue
        raise _type_error(path, value, annotation)
    if dataclasses.is_dataclass(annotation):
        return _build_dataclass(annotation, value, path)
    if annotation is Any:
        return value
    if origin is typing.Literal:
        if value in typing.get_args(annotation):
            return value
        raise _type_error(path, value, annotation)
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            raise _type_error(path, value, annotation)
        args = typing.get_args(annotation)
        item_type = args[0] if args else Any
        return [coerce(item, item_type, f"{path}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(path, value, annotation)
        return value
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        raise _type_error(path, value, annotation)
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(path, value, annotation)
    if annotation in (str, bool):
        if isinstance(value, annotation):
            return value
        raise _type_error(path, value, annotation)
    raise TypeError(f"unsupported annotation {annotation!r} at {path}")


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(annotation))
    if origin is not None:
        args = typing.get_args(annotation)
        inner = f" of {_type_name(args[0])}" if args else ""
        return f"a list{inner}"
    plain = {
        type(None): "null",
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
    }
    return plain.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _type_error(path: str, value: Any, annotation: Any) -> ConfigError:
    return ConfigError(
        f"{path} must be {_type_name(annotation)}, received {value!r} "
        f"({type(value).__name__}); fix it in the config or with --set {path}=..."
    )


def _check_values(config: RunConfig) -> None:
    def fail(path: str, value: Any, expected: str) -> None:
        raise ConfigError(f"{path} must be {expected}, received {value!r}.")

    if config.backend is not None and config.backend not in BACKENDS:
        fail("backend", config.backend, "one of " + ", ".join(BACKENDS) + " (or null)")
    if config.task not in TASKS:
        fail("task", config.task, "one of " + ", ".join(TASKS))
    _check_distribute(config.distribute, fail)
    data = config.data
    for key in ("validation_split", "test_split"):
        value = getattr(data, key)
        if not 0.0 < value < 1.0:
            fail(f"data.{key}", value, "a fraction between 0 and 1 (exclusive)")
    if data.validation_split + data.test_split >= 0.9:
        fail(
            "data.validation_split + data.test_split",
            round(data.validation_split + data.test_split, 4),
            "below 0.9 so that training keeps at least 10% of the data",
        )
    if data.image_size is not None and (len(data.image_size) != 2 or min(data.image_size) < 1):
        fail("data.image_size", data.image_size, "[height, width] of positive integers")
    if data.color_mode not in ("rgb", "grayscale", "rgba"):
        fail("data.color_mode", data.color_mode, "one of 'rgb', 'grayscale', 'rgba'")
    if data.split not in SPLITS:
        fail("data.split", data.split, "one of " + ", ".join(SPLITS))
    if config.task in SERIES_TASKS:
        _check_series(config, fail)
    elif data.folds is not None and (data.folds < 2 or data.split == "time"):
        fail("data.folds", data.folds, "null, or 2 or more with a stratified or random split")
    if data.missing not in ("error", "median"):
        fail("data.missing", data.missing, "'error' or 'median'")
    if data.split == "stratified" and config.task in ("regression", "clustering"):
        fail("data.split", data.split, f"'random' or 'time' for {config.task} (no classes)")
    train = config.train
    if train.epochs < 1:
        fail("train.epochs", train.epochs, "a positive integer")
    if train.batch_size < 1:
        fail("train.batch_size", train.batch_size, "a positive integer")
    if not train.learning_rate > 0:
        fail("train.learning_rate", train.learning_rate, "a positive number")
    if train.early_stopping.patience is not None and train.early_stopping.patience < 0:
        fail("train.early_stopping.patience", train.early_stopping.patience, ">= 0 or null")
    plateau = train.reduce_lr_on_plateau
    if plateau.patience is not None and plateau.patience < 0:
        fail("train.reduce_lr_on_plateau.patience", plateau.patience, ">= 0 or null")
    if not 0.0 < plateau.factor < 1.0:
        fail("train.reduce_lr_on_plateau.factor", plateau.factor, "a fraction between 0 and 1")
    schedule = train.learning_rate_schedule
    if train.class_weight not in (None, "balanced"):
        fail("train.class_weight", train.class_weight, "'balanced' or null")
    if train.class_weight is not None and config.task in ("regression", "anomaly", "clustering"):
        fail(
            "train.class_weight",
            train.class_weight,
            f"null for {config.task} (the network does not fit classes)",
        )
    if train.oversample is not None:
        if config.task not in ("classification", "binary"):
            fail("train.oversample", train.oversample, f"null for {config.task} (no classes)")
        if not 0.0 < train.oversample <= 1.0:
            fail("train.oversample", train.oversample, "a ratio in (0, 1] or null")
        if train.class_weight is not None:
            fail(
                "train.oversample",
                train.oversample,
                "null when train.class_weight is set (both correct the same imbalance; choose one)",
            )
    if train.refit_on_validation and (
        train.early_stopping.patience is not None or config.task == "clustering"
    ):
        fail(
            "train.refit_on_validation",
            True,
            "false unless train.early_stopping.patience is null (a fixed number of epochs: "
            "validation is then training data) and the task fits by model.fit (not clustering)",
        )
    clustering = train.clustering
    if clustering.method not in ("dec", "idec"):
        fail("train.clustering.method", clustering.method, "'dec' or 'idec'")
    for key in ("max_iterations", "update_interval", "som_epochs"):
        if getattr(clustering, key) < 1:
            fail(f"train.clustering.{key}", getattr(clustering, key), "a positive integer")
    if not 0.0 <= clustering.tolerance < 1.0:
        fail("train.clustering.tolerance", clustering.tolerance, "a fraction in [0, 1)")
    if len(clustering.som_map) != 2 or min(clustering.som_map) < 1:
        fail("train.clustering.som_map", clustering.som_map, "[rows, columns] of positive sizes")
    if config.task == "clustering" and config.data.label is not None:
        fail("data.label", config.data.label, "null for clustering (it uses no labels)")
    threshold = train.threshold
    if threshold.objective not in THRESHOLD_OBJECTIVES:
        fail(
            "train.threshold.objective",
            threshold.objective,
            "one of " + ", ".join(THRESHOLD_OBJECTIVES),
        )
    if threshold.objective != "f1" and not (
        threshold.target is not None and 0.0 < threshold.target < 1.0
    ):
        fail(
            "train.threshold.target",
            threshold.target,
            f"a fraction between 0 and 1 with objective {threshold.objective!r}",
        )
    if schedule.name not in SCHEDULES:
        fail("train.learning_rate_schedule.name", schedule.name, "one of " + ", ".join(SCHEDULES))
    if schedule.decay_steps is not None and schedule.decay_steps < 1:
        fail("train.learning_rate_schedule.decay_steps", schedule.decay_steps, "positive or null")
    if not 0.0 < schedule.decay_rate <= 1.0:
        fail("train.learning_rate_schedule.decay_rate", schedule.decay_rate, "in (0, 1]")
    if not 0.0 <= schedule.end_fraction <= 1.0:
        fail("train.learning_rate_schedule.end_fraction", schedule.end_fraction, "in [0, 1]")
    if schedule.warmup_steps < 0 or (schedule.warmup_steps and schedule.name != "cosine"):
        fail(
            "train.learning_rate_schedule.warmup_steps",
            schedule.warmup_steps,
            "0, or >= 0 with the cosine schedule",
        )
    if schedule.name != "constant" and plateau.patience is not None:
        fail(
            "train.learning_rate_schedule.name",
            schedule.name,
            "'constant' while train.reduce_lr_on_plateau is on (a schedule and plateau "
            "reduction both set the learning rate; set reduce_lr_on_plateau.patience: null)",
        )
    if not isinstance(config.model.get("builder"), str):
        fail("model.builder", config.model.get("builder"), "the name of a model builder")
    for key in ("permutation_repeats", "saliency_images"):
        if getattr(config.report, key) < 0:
            fail(f"report.{key}", getattr(config.report, key), "an integer >= 0 (0 turns it off)")


def _check_series(config: RunConfig, fail: typing.Callable[[str, Any, str], None]) -> None:
    series = config.data.series
    if config.data.split != "time":
        fail(
            "data.split",
            config.data.split,
            f"'time' for {config.task} (a series is never shuffled)",
        )
    if config.data.folds is not None and config.data.folds < 2:
        fail("data.folds", config.data.folds, "null, or 2 or more walk-forward folds")
    if series.target not in SERIES_TARGETS:
        fail("data.series.target", series.target, "one of " + ", ".join(SERIES_TARGETS))
    wanted = "direction" if config.task == "signal" else "return or volatility"
    if (series.target == "direction") != (config.task == "signal"):
        fail("data.series.target", series.target, f"{wanted} for task {config.task}")
    for key in ("lookback", "horizon", "stride", "max_gap_days"):
        if getattr(series, key) < 1:
            fail(f"data.series.{key}", getattr(series, key), "a positive integer")
    if config.task == "signal" and (series.horizon != 1 or series.stride != 1):
        fail(
            "data.series.horizon and stride",
            [series.horizon, series.stride],
            "[1, 1] for task signal (the backtest trades every next day)",
        )
    if series.target == "volatility" and config.train.loss is not None:
        fail(
            "train.loss",
            config.train.loss,
            "null for target volatility (the network outputs a log variance trained on QLIKE)",
        )
    if series.cost_bps < 0:
        fail("data.series.cost_bps", series.cost_bps, "a cost >= 0 in basis points")
    if not series.features:
        fail("data.series.features", series.features, "a non-empty list of feature names")
    if config.train.class_weight is not None or config.train.oversample is not None:
        fail(
            "train.class_weight and train.oversample",
            [config.train.class_weight, config.train.oversample],
            f"null for {config.task} (the days of a series are not resampled)",
        )


def _check_distribute(
    distribute: DistributeConfig, fail: typing.Callable[[str, Any, str], None]
) -> None:
    if distribute.strategy not in STRATEGIES:
        fail("distribute.strategy", distribute.strategy, "one of " + ", ".join(STRATEGIES))
    if distribute.precision not in PRECISIONS:
        fail("distribute.precision", distribute.precision, "one of " + ", ".join(PRECISIONS))
    if distribute.cpu_devices is not None and distribute.cpu_devices < 1:
        fail("distribute.cpu_devices", distribute.cpu_devices, "a positive integer or null")
    if distribute.model_shards < 1:
        fail("distribute.model_shards", distribute.model_shards, "a positive integer")
    task = distribute.task
    if task is not None:
        kind, _, index = task.partition(":")
        if kind not in ("chief", "worker", "ps", "evaluator") or not index.isdigit():
            fail("distribute.task", task, "TYPE:INDEX with TYPE chief, worker or ps, e.g. worker:1")
    if (distribute.cluster is None) != (task is None):
        fail(
            "distribute.cluster and distribute.task",
            [distribute.cluster, task],
            "set together (a cluster file and this process's TYPE:INDEX in it)",
        )
