"""The task interface: what a cell is, how it runs, what it records, how it is reported.

A benchmark table is a set of *cells*; a cell is one measurement, named by its run id (a
hash of its :meth:`Cell.identity`: what determines the result, never the code version).
A *task* runs groups of its cells and makes one record per cell. Two tasks implement it:

- the map benchmark (:mod:`otarena.map_task`): a solver trained on a pair, its maps
  scored by L2-UVP and cosine (Korotin et al. 2021, Amos 2023);
- the Sinkhorn benchmark (:mod:`otarena.sinkhorn.task`): an initializer timed on a
  problem family's test instances (Meta OT, Table 1).

:func:`otarena.runner.run` drives any list of cells: it skips cells already in the store,
checks everything before any work, runs each group under a :class:`~otarena.runtime.
RunContext` (checkpoints, progress, log lines), records a failing group as ``failed``
and goes on. :mod:`otarena.executors` runs the same cells as SLURM (or local) jobs: a job
receives ``(task kind, Cell.spec())`` pairs and rebuilds them with :meth:`Task.rebuild`.
:mod:`otarena.reporting` writes each task's tables from its records (the module of the
task's ``kind``).
"""

from __future__ import annotations

import traceback
from collections.abc import Hashable, Sequence
from typing import Any, Protocol, runtime_checkable

from otarena.provenance import stamp
from otarena.runtime import RunContext


@runtime_checkable
class Cell(Protocol):
    """One measurement of a task."""

    @property
    def task(self) -> Task:
        """The task that runs this cell."""

    @property
    def run_id(self) -> str:
        """``store.run_id(self.identity())``: the record's key in the store."""

    @property
    def label(self) -> str:
        """A short human name, e.g. ``hd-2 W2 seed=0 budget=smoke``."""

    @property
    def group_key(self) -> Hashable | None:
        """Cells with the same key may run as one group (their seeds in one compiled
        program, ``--vmap-seeds``); None: this cell always runs alone."""

    def identity(self) -> dict:
        """What determines the result, as JSON-able data (hashed into the run id)."""

    def spec(self) -> dict:
        """JSON-able arguments from which ``task.rebuild`` makes this cell again (a job
        process gets these, never pickled solver objects)."""


class Task(Protocol):
    """A kind of measurement.

    Attributes:
        kind: the task's name (``maps``, ``sinkhorn``), also the name of its report
            module in :mod:`otarena.reporting` and of its cells in a job.
        records_file: the store file its records are appended to.
        vmaps_seeds: whether its cells can train several seeds in one program.
    """

    kind: str
    records_file: str
    vmaps_seeds: bool

    def check(self, cells: Sequence[Cell]) -> None:
        """Raise one :class:`~otarena.errors.OtarenaError` for a value out of range (a
        seed, an evaluation size) before any work.

        Args:
            cells: cells of this task about to run.
        """

    def check_ready(self, cells: Sequence[Cell]) -> None:
        """Raise one :class:`~otarena.errors.DataError` when the data of ``cells`` is
        missing or damaged, before any work.

        Args:
            cells: the cells that will run (not those already in the store).
        """

    def run(self, group: Sequence[Cell], context: RunContext) -> list[dict]:
        """Run a group of cells and return one record per cell, in order.

        Args:
            group: cells of this task with one ``group_key`` (or a single cell).
            context: where to checkpoint (the training loops resume from it), whom to
                report progress and log lines to. An exception fails the whole group.

        Returns:
            Records: ``{**cell.identity(), "run_id", "status", ...}`` plus the task's
            measurements and :func:`otarena.provenance.stamp`.
        """

    def failed_record(self, cell: Cell, error: BaseException) -> dict:
        """The record of a cell whose group raised ``error`` (retried by the next run)."""

    def summary(self, cell: Cell, record: dict) -> str:
        """One line for the console when ``cell`` finished with ``record``."""

    def rebuild(self, spec: dict) -> Cell:
        """The cell of :meth:`Cell.spec` (in a job process)."""

    def owns(self, record: dict) -> bool:
        """Whether a store record was made by this task."""


def failure(cell: Cell, error: BaseException) -> dict[str, Any]:
    """The fields every failed record has: the identity, the error in one line and its
    traceback, and the provenance stamp. A task adds its own empty measurements."""
    line = " ".join(f"{type(error).__name__}: {error}".split())
    return {**cell.identity(), "run_id": cell.run_id, "status": "failed", "error": line[:500],
            "traceback": "".join(traceback.format_exception(error)), **stamp()}
