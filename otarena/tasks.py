"""The tasks otarena runs, by kind: the map benchmark and the Sinkhorn benchmark
(:mod:`otarena.task` describes the interface)."""

from __future__ import annotations

from otarena import map_task
from otarena.errors import UnknownNameError
from otarena.sinkhorn import task as sinkhorn_task
from otarena.task import Task

TASKS: dict[str, Task] = {t.kind: t for t in (map_task.TASK, sinkhorn_task.TASK)}


def get(kind: str) -> Task:
    if kind not in TASKS:
        raise UnknownNameError(f"unknown task {kind!r}; known: {', '.join(TASKS)}")
    return TASKS[kind]


def of_record(record: dict) -> Task | None:
    """The task that made a store record (None: no task of this otarena)."""
    return next((t for t in TASKS.values() if t.owns(record)), None)
