"""What differs per task: output head, loss, metrics, evaluation and classical baseline."""

from dltoolkit.tasks.classification import ClassificationTask

TASKS = {"classification": ClassificationTask}


def get_task(name: str) -> ClassificationTask:
    """The task object for a config's ``task`` name (validated by the config)."""
    return TASKS[name]()


__all__ = ["TASKS", "ClassificationTask", "get_task"]
