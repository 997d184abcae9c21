"""What differs per task: output head, loss, metrics, decisions, scores and baselines."""

from dltoolkit.tasks.anomaly import AnomalyTask
from dltoolkit.tasks.base import Task
from dltoolkit.tasks.binary import BinaryTask
from dltoolkit.tasks.classification import ClassificationTask
from dltoolkit.tasks.clustering import ClusteringTask
from dltoolkit.tasks.forecasting import ForecastingTask
from dltoolkit.tasks.regression import RegressionTask
from dltoolkit.tasks.signal import SignalTask

TASKS = {
    "classification": ClassificationTask,
    "binary": BinaryTask,
    "regression": RegressionTask,
    "anomaly": AnomalyTask,
    "clustering": ClusteringTask,
    "forecasting": ForecastingTask,
    "signal": SignalTask,
}


def get_task(name: str) -> Task:
    """The task object for a config's ``task`` name (validated by the config)."""
    return TASKS[name]()


__all__ = [
    "TASKS",
    "AnomalyTask",
    "BinaryTask",
    "ClassificationTask",
    "ClusteringTask",
    "ForecastingTask",
    "RegressionTask",
    "SignalTask",
    "Task",
    "get_task",
]
