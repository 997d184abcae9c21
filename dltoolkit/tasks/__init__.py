"""What differs per task: data preparation, head, loss and metrics, fitting, evaluation,
baselines, artefacts, report figures and serving outputs (see :class:`Task`).

``TASKS`` is the task registry; :func:`get_task` builds a run's task from its config,
checking the task's own rules.
"""

from __future__ import annotations

from typing import Any

from dltoolkit.config import RunConfig, fail
from dltoolkit.runs import higher_is_better
from dltoolkit.tasks.anomaly import AnomalyTask
from dltoolkit.tasks.base import Evaluation, Task
from dltoolkit.tasks.binary import BinaryTask
from dltoolkit.tasks.classification import ClassificationTask
from dltoolkit.tasks.clustering import ClusteringTask
from dltoolkit.tasks.forecasting import ForecastingTask
from dltoolkit.tasks.regression import RegressionTask
from dltoolkit.tasks.signal import SignalTask
from dltoolkit.tasks.text import TextBinaryTask, TextClassificationTask

TASKS: dict[str, type[Task]] = {
    task.name: task
    for task in (
        ClassificationTask,
        BinaryTask,
        RegressionTask,
        AnomalyTask,
        ClusteringTask,
        ForecastingTask,
        SignalTask,
        TextClassificationTask,
        TextBinaryTask,
    )
}


def task_class(name: str) -> type[Task]:
    """The task registered as ``name`` (a config's ``task``, or a run's metrics.json)."""
    if name not in TASKS:
        fail("task", name, "one of " + ", ".join(TASKS))
    return TASKS[name]


def with_headline(written: dict[str, Any]) -> dict[str, Any]:
    """A run's metrics.json with its ``headline`` entry, which runs written before it was
    recorded get from their task."""
    if "headline" in written or written.get("task") not in TASKS:
        return written
    task = TASKS[written["task"]]
    score = task.headline_for(written)
    return {**written, "headline": {"score": score, "higher_is_better": higher_is_better(score)}}


def get_task(config: RunConfig) -> Task:
    """The run's task, built from its config once its own rules are checked."""
    return task_class(config.task)(config)


__all__ = [
    "TASKS",
    "AnomalyTask",
    "BinaryTask",
    "ClassificationTask",
    "ClusteringTask",
    "Evaluation",
    "ForecastingTask",
    "RegressionTask",
    "SignalTask",
    "Task",
    "TextBinaryTask",
    "TextClassificationTask",
    "get_task",
    "task_class",
    "with_headline",
]
