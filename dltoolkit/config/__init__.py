"""Run configuration: defaults -> recipe or config file -> overrides, checked, dumped as YAML.

Three parts: the schema (:mod:`.schema`, one dataclass per section), loading
(:mod:`.loading`: recipes, YAML files, ``--set`` overrides, coercion) and the checks every
run passes (:mod:`.checks`). A task's own rules are its ``check_config``
(``dltoolkit.tasks.get_task`` applies them). Nothing here imports Keras.
"""

from dltoolkit.config.checks import check_model_name, check_values, fail
from dltoolkit.config.loading import (
    apply_overrides,
    coerce,
    from_dict,
    load_config,
    merge,
    parse_override,
    read_yaml,
    recipe_names,
    recipe_path,
    recipes_dir,
    with_values,
)
from dltoolkit.config.schema import (
    BACKENDS,
    PRECISIONS,
    SCHEDULES,
    SPLITS,
    STRATEGIES,
    THRESHOLD_OBJECTIVES,
    CheckpointConfig,
    ClusteringConfig,
    DataConfig,
    DistributeConfig,
    EarlyStoppingConfig,
    ExportConfig,
    LearningRateScheduleConfig,
    ReduceLROnPlateauConfig,
    ReportConfig,
    RunConfig,
    SeriesConfig,
    ThresholdConfig,
    TrainConfig,
)

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "SCHEDULES",
    "SPLITS",
    "STRATEGIES",
    "THRESHOLD_OBJECTIVES",
    "CheckpointConfig",
    "ClusteringConfig",
    "DataConfig",
    "DistributeConfig",
    "EarlyStoppingConfig",
    "ExportConfig",
    "LearningRateScheduleConfig",
    "ReduceLROnPlateauConfig",
    "ReportConfig",
    "RunConfig",
    "SeriesConfig",
    "ThresholdConfig",
    "TrainConfig",
    "apply_overrides",
    "check_model_name",
    "check_values",
    "coerce",
    "fail",
    "from_dict",
    "load_config",
    "merge",
    "parse_override",
    "read_yaml",
    "recipe_names",
    "recipe_path",
    "recipes_dir",
    "with_values",
]
