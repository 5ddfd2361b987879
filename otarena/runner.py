"""The one runner loop: every cell of any task (:mod:`otarena.task`) not yet in the store.

Before any work: the cells' values are checked, the data of the cells that will run is
checked, and the store is checked writable. Then group by group (the seeds of a cell that
train together with ``vmap_seeds``, else one cell): the store is re-read (another process
may have finished the group meanwhile), the group runs under a
:class:`~otarena.runtime.RunContext` (checkpoints under ``{store}/.checkpoints``, progress
bars or progress lines, log lines), a group that raises is recorded as ``failed`` and the
run goes on, and each record is appended to the task's file of the store.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from otarena import runtime
from otarena.provenance import git_state
from otarena.store import Store, run_id
from otarena.task import Cell, Task

__all__ = ["checkpoint_stem", "groups", "run"]


def checkpoint_stem(store: Store, group: Sequence[Cell]) -> Path:
    """Where the training state of a group of cells is checkpointed (a file name prefix)."""
    return store.root / ".checkpoints" / run_id({"cells": sorted(c.run_id for c in group)})


def groups(todo: Sequence[Cell], vmap_seeds: bool) -> list[list[Cell]]:
    """Cells to run together: those with one ``group_key`` when vmapping seeds."""
    if not vmap_seeds:
        return [[c] for c in todo]
    found: dict[tuple, list[Cell]] = {}
    for c in todo:
        key = c.group_key
        found.setdefault((id(c),) if key is None else (c.task.kind, key), []).append(c)
    return list(found.values())


def by_task(cells: Sequence[Cell]) -> dict[Task, list[Cell]]:
    found: dict[Task, list[Cell]] = {}
    for c in cells:
        found.setdefault(c.task, []).append(c)
    return found


def check(todo: Sequence[Cell]) -> None:
    """Values out of range, as one OtarenaError, before anything else."""
    for task, cells in by_task(todo).items():
        task.check(cells)


def check_ready(pending: Sequence[Cell], store: Store) -> None:
    """Before any work: the data files are there and intact, the store can be written."""
    for task, cells in by_task(pending).items():
        task.check_ready(cells)
    for task in by_task(pending):
        store.check_writable(task.records_file)


def _finished(store: Store) -> set[str]:
    """Run ids with a record that is not a failure (failed cells are tried again)."""
    return {r["run_id"] for r in store.records() if r.get("status") != "failed"}


PROGRESS_SECONDS = 30.0


class _Eta:
    """Time left for the matrix: the mean time of the cells done so far times the cells left
    (cells differ in cost, so it is a rough guide that sharpens as cells finish)."""

    def __init__(self, total: int):
        self.total, self.finished, self.start = total, 0, time.monotonic()

    def done(self, cells: int):
        self.finished += cells

    def text(self) -> str:
        left = self.total - self.finished
        if not self.finished or not left:
            return f" [{self.finished}/{self.total}]"
        seconds = (time.monotonic() - self.start) / self.finished * left
        return f" [{self.finished}/{self.total}, about {_duration(seconds)} left]"


class _ProgressLines:
    """Where no progress bar can be drawn (a log, CI): a line every PROGRESS_SECONDS with the
    iterations done, the rate and the time left for the running cell."""

    def __init__(self, label: str, say, enabled: bool):
        self.label, self.say, self.enabled = label, say, enabled
        self.first = None  # (time, iterations) at the first report: compiling is over then

    def __call__(self, iterations: int, planned: int):
        now = time.monotonic()
        if self.first is None:
            self.first = self.last = now, iterations
            return
        if not self.enabled or now - self.last[0] < PROGRESS_SECONDS or iterations >= planned:
            return
        self.last = now, iterations
        rate = (iterations - self.first[1]) / max(now - self.first[0], 1e-9)
        self.say(f"  {self.label}: {iterations}/{planned} iterations, {rate:.0f} it/s, "
                 f"about {_duration((planned - iterations) / max(rate, 1e-9))} left")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def run(todo: Sequence[Cell], store: Store, force: bool = False, quiet: bool = False,
        vmap_seeds: bool = False) -> list[dict]:
    """Run every cell whose record is not in the store (all of them with ``force``).

    Shows a progress bar for the matrix and one for the iterations of the running cell
    (on a terminal; elsewhere a progress line every ``PROGRESS_SECONDS``), and a line per
    finished cell with the time left for the matrix, unless ``quiet``. Training state is
    checkpointed under ``{store}/.checkpoints`` every ``$OTARENA_CHECKPOINT_SECONDS``
    (default 300) seconds, so a killed run resumes where it was.

    Args:
        todo: cells of any tasks (map cells, Sinkhorn cells), in the order to run them.
        store: the result store; each record goes to its task's file there.
        force: run cells already in the store again, replacing their records.
        quiet: no progress bars, progress lines or per-cell lines.
        vmap_seeds: run the cells of one ``group_key`` as one group (their seeds in one
            compiled program).

    Returns:
        The store's records of ``todo`` (failed cells included, with their error).

    Raises:
        OtarenaError: a value out of range, missing or damaged data, a store that cannot
            be written; found before any work.
    """
    check(todo)
    every = runtime.checkpoint_seconds()
    git_state()  # read the code's commit now: a commit made during a long run must not relabel it
    finished = set() if force else _finished(store)
    pending = [c for c in todo if c.run_id not in finished]
    check_ready(pending, store)  # a missing or corrupt data file fails here, before any work
    say = (lambda line: None) if quiet else (lambda line: tqdm.write(line, file=sys.stdout))
    bars = {"disable": True if quiet else None, "dynamic_ncols": True}  # None: only on a TTY
    if len(pending) < len(todo):
        say(f"{len(todo) - len(pending)} of {len(todo)} cells already in {store.root}")
    eta = _Eta(len(pending))
    with tqdm(total=len(todo), initial=len(todo) - len(pending), unit="cell", desc="matrix",
              **bars) as matrix:
        for group in groups(pending, vmap_seeds):
            if not force:  # another process on this store may have finished some meanwhile
                finished = _finished(store)
                for cell in (c for c in group if c.run_id in finished):
                    matrix.update(1)
                    say(f"{cell.label}: already recorded by another process")
                group = [c for c in group if c.run_id not in finished]
                if not group:
                    continue
            stem = checkpoint_stem(store, group)
            with tqdm(total=None, unit="it", desc=group[0].label, leave=False, **bars) as bar:
                lines = _ProgressLines(group[0].label, say, enabled=bar.disable and not quiet)

                def progress(iterations, planned, bar=bar, lines=lines):
                    bar.total = planned
                    bar.update(iterations - bar.n)
                    lines(iterations, planned)

                task = group[0].task
                context = runtime.RunContext(checkpoint=stem, progress=progress,
                                             checkpoint_every=every, log=say)
                try:
                    records = task.run(group, context)
                except Exception as error:  # the solver's fault: record it, go on
                    records = [task.failed_record(cell, error) for cell in group]
            eta.done(len(group))
            for record, cell in zip(records, group):
                if store.add(record, replace=force, filename=task.records_file):
                    say(task.summary(cell, record) + eta.text())
                else:
                    say(f"{cell.label}: already recorded by another process; kept that record")
                matrix.update(1)
            runtime.remove_checkpoints(stem)
    wanted = {c.run_id for c in todo}
    return [r for r in store.records() if r["run_id"] in wanted]
