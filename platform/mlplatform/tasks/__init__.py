"""The tasks a tenant file can name (`task`), each one module implementing tasks/base.py's Task.

A new task is a new module here plus its entry in TASKS.
"""

from __future__ import annotations

from mlplatform.tasks import classification, ranking
from mlplatform.tasks.base import Task

TASKS: dict[str, Task] = {t.name: t for t in (classification.TASK, ranking.TASK)}


def task_for(cfg) -> Task:
    """The task of a tenant (its `task` value). Raises ValueError naming the known tasks."""
    try:
        return TASKS[cfg.task]
    except KeyError:
        raise ValueError(f"tenant {cfg.name!r}: unknown task {cfg.task!r}; known tasks: {sorted(TASKS)}") from None
