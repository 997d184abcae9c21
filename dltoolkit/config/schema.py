"""The run configuration's schema: one dataclass per section, with its defaults.

A run is described by a :class:`RunConfig`; ``to_yaml`` writes the resolved configuration
that ``dltk train`` accepts again. Nothing here imports Keras, so a configuration can be
read before the backend is chosen. Which values a task accepts is the task's to check
(``dltoolkit.tasks``); :mod:`dltoolkit.config.checks` holds the rules every run shares.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import yaml

BACKENDS = ("tensorflow", "jax", "torch")


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
    # images:PATH: [height, width] every image is resized to; null: the images' own size
    # (they must then all share one).
    image_size: list[int] | None = None
    color_mode: str = "rgb"
    # Streamed images: keep the decoded images after their first pass, in "memory", on
    # "disk" (a tf.data cache file under cache_dir), or "none"; "auto": memory for a split
    # whose decoded images take at most 1 GiB, else none. csv/parquet tables: "memory"
    # reads the table whole; "disk" streams it, encoded once into files kept under
    # cache_dir for later runs; "none" streams it through files removed at exit; "auto":
    # memory up to 512 MiB of files, else disk.
    cache: str = "auto"
    # data.cache: disk: the folder of cache files (null: $XDG_CACHE_HOME/dltoolkit/data,
    # ~/.cache/dltoolkit/data by default).
    cache_dir: str | None = None
    validation_split: float = 0.15
    test_split: float = 0.15
    data_dir: str | None = None
    label: str | None = None
    features: list[str] | None = None
    categorical: list[str] | None = None
    time_column: str | None = None
    split: str = "stratified"
    # Tables streamed from disk: rows are split by a hash of this column's value (all rows
    # of one customer or account in one split) instead of by row number.
    split_key: str | None = None
    missing: str = "error"
    # Tables: K-fold cross-validation of the model and baselines before the main run.
    folds: int | None = None
    # Binary tables: the label value that is the positive class (class 1); by default the
    # second in sorted order (1 of 0/1).
    positive_class: str | None = None
    # Binary and anomaly tables: a column of money amounts (>= 0) per row. With a cost
    # model (train.costs) a missed positive costs its amount, instead of
    # train.costs.false_negative; the test report gives the value of the positives caught.
    amount_column: str | None = None
    # Tables: numeric columns standardised on the log(1 + x) scale (skewed amounts, counts).
    log_transform: list[str] = field(default_factory=list)
    # Tables: a column holding "train" or "test" per row, which fixes the test split (a
    # dataset's published split); validation is drawn from the "train" rows. Not a feature.
    split_column: str | None = None
    # Tasks text_classification and text_binary: the column of raw text. Its tokens
    # (lower-cased, punctuation stripped, split on whitespace) are looked up in a
    # vocabulary of the vocabulary_size - 2 commonest tokens of the training split; a text
    # is read up to its first max_tokens tokens (the share of longer texts is reported).
    text_column: str | None = None
    max_tokens: int = 256
    vocabulary_size: int = 20000
    # What turns texts into tokens: "words" (the vocabulary above), "wordpiece" (as many
    # word pieces learned on the training split) or "hub:PRESET", a keras-hub preset's own
    # tokenizer (which model.backbone hub:PRESET sets, for a pretrained text backbone;
    # vocabulary_size then is the preset's).
    tokenizer: str = "words"
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
    highest threshold whose recall reaches ``target``), ``cost`` (the least total cost of
    ``train.costs`` on the validation rows), or ``fixed`` (``target`` itself).
    """

    objective: str = "f1"
    target: float | None = None


THRESHOLD_OBJECTIVES = ("f1", "precision", "recall", "cost", "fixed")


@dataclass
class CostConfig:
    """What the decisions of a binary classifier or anomaly detector cost, in money.

    A flagged row costs ``review`` (an analyst's look, a call), plus ``false_positive``
    when it is a negative (a good customer declined); a positive let through costs
    ``false_negative`` (a default, a missed fraud), or its amount in ``data.amount_column``
    where that is set. All zero: no cost model (the report has no money view).
    """

    false_positive: float = 0.0
    false_negative: float = 0.0
    review: float = 0.0
    currency: str = ""

    def priced(self) -> bool:
        """Whether any cost is set."""
        return bool(self.false_positive or self.false_negative or self.review)


CALIBRATIONS = ("none", "platt", "isotonic", "temperature")


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
class FineTuneConfig:
    """Fine-tuning a model that starts from a pretrained backbone (``model.backbone``).

    With ``head_epochs`` set, training has two phases: first ``head_epochs`` epochs of the
    new head alone (the backbone frozen, its BatchNormalization in inference mode) at
    ``head_learning_rate``; then ``train.epochs`` epochs with the backbone's last
    ``unfreeze`` weighted layers trainable (``all``: every one; 0: none, the head only) at
    ``train.learning_rate``, which should be lower (1e-4 to 1e-5). ``head_epochs: null``:
    one phase, ``train.epochs`` with ``unfreeze`` layers trainable from the start.
    BatchNormalization layers stay frozen in both phases.
    """

    head_epochs: int | None = None
    head_learning_rate: float = 1e-3
    unfreeze: int | str = "all"


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
    # Binary and anomaly tasks: the money cost of decisions (threshold objective "cost",
    # and the money view of the test report).
    costs: CostConfig = field(default_factory=CostConfig)
    # Binary and anomaly tasks: a monotone map from the network's score to a calibrated
    # probability, fitted on the validation split after training and kept inside the saved
    # and exported model: platt (logistic on the logit), temperature (the logit divided by
    # one number), isotonic (piecewise linear; needs more validation positives) or none.
    # Baselines are calibrated the same way.
    calibration: str = "none"
    fine_tune: FineTuneConfig = field(default_factory=FineTuneConfig)
    # Fit on the training and validation splits together for exactly train.epochs (early
    # stopping off): the final fit after a search has fixed the hyperparameters. Scores on
    # validation, and a threshold chosen there, are then optimistic; test stays held out.
    refit_on_validation: bool = False
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    # The classical baselines fit on at most this many training rows (a seeded sample of a
    # larger training split); metrics.json gives each baseline's train_rows.
    baseline_rows: int = 250_000
    verbose: int = 2
    # Back up weights and optimizer state every epoch (keras.callbacks.BackupAndRestore), so
    # a run killed mid-training and started again with the same command resumes.
    backup: bool = True


@dataclass
class ScorecardConfig:
    """Credit-scorecard points beside a binary model's probability of the positive (bad)
    class: ``points = offset + factor * ln(odds)`` with ``odds = (1 - p) / p`` (good to
    bad), ``factor = points_to_double_odds / ln 2`` and ``offset`` putting ``base_score``
    at ``base_odds``: higher points, lower risk. The SavedModel, ``dltk predict`` and the
    report give them where ``enabled``.
    """

    enabled: bool = False
    base_score: float = 600.0
    base_odds: float = 50.0
    points_to_double_odds: float = 20.0


@dataclass
class ExportConfig:
    """SavedModel export into a TF Serving model repository."""

    enabled: bool = True
    model_name: str | None = None
    directory: str = "saved_models"
    scorecard: ScorecardConfig = field(default_factory=ScorecardConfig)


@dataclass
class ReportConfig:
    """``report.html`` and its pictures, written into the run directory at the end."""

    enabled: bool = True
    permutation_repeats: int = 3  # shuffles per feature column (tables); 0: no importance
    saliency_images: int = 4  # test images with gradient saliency maps (images); 0: none
    explained_texts: int = 4  # test texts whose tokens are weighed by occlusion; 0: none
    tensorboard: bool = False  # TensorBoard logs in <run dir>/tensorboard (--tensorboard)
    # Binary and anomaly tables: groups whose decisions are audited for disparate impact,
    # each a column (one group per value) or COLUMN<NUMBER (the two sides of a cut).
    fairness_groups: list[str] = field(default_factory=list)


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


SPLITS = ("stratified", "random", "time")
CACHE_MODES = ("auto", "none", "memory", "disk")


class _ConfigDumper(yaml.SafeDumper):
    """Block-style mappings, one-line lists: ``filters: [32, 64]``."""


_ConfigDumper.add_representer(
    list,
    lambda dumper, value: dumper.represent_sequence(
        "tag:yaml.org,2002:seq", value, flow_style=True
    ),
)
