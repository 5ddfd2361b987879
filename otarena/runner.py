"""Running cells of the benchmark matrix: one (pair, solver, seed, budget) each."""

from __future__ import annotations

import math
import sys
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jax
from tqdm import tqdm

from otarena import metrics, pairs, runtime
from otarena.budgets import Budget
from otarena.errors import OtarenaError
from otarena.provenance import git_state, numerics, stamp
from otarena.solver import Fitted, Solver
from otarena.store import SCHEMA, Store, run_id

__all__ = ["Cell", "cells", "groups", "run", "run_cells"]


# jax.random.key keeps 32 bits of a seed: 2**32 would silently be seed 0 again
SEED_LIMIT = 2**32


@dataclass(frozen=True)
class Cell:
    pair: str
    reverse: bool
    solver: Solver
    seed: int
    budget: Budget
    eval_size: int

    def identity(self) -> dict:
        """What determines the result, hashed into the run id (not the code version)."""
        return {"schema": SCHEMA, "pair": self.pair, "reverse": self.reverse,
                "solver": self.solver.name, "solver_config": dict(self.solver.config),
                "seed": self.seed, "budget": self.budget.as_dict(),
                "eval": {"size": self.eval_size, "seed": metrics.EVAL_SEED}}

    @property
    def run_id(self) -> str:
        return run_id(self.identity())

    @property
    def label(self) -> str:
        pair = f"{self.pair}:R" if self.reverse else self.pair
        return f"{pair} {self.solver.name} seed={self.seed} budget={self.budget.profile}"


def checkpoint_stem(store: Store, group: list[Cell]) -> Path:
    """Where the training state of a group of cells is checkpointed (a file name prefix)."""
    return store.root / ".checkpoints" / run_id({"cells": sorted(c.run_id for c in group)})


def run_cells(group: list[Cell], context: runtime.RunContext = runtime.RunContext()) -> list[dict]:
    """Train and evaluate cells that differ only by seed; one compiled program if possible.

    Runs under the budget's matmul precision (full fp32 at ``paper``: no TF32 on GPUs).
    """
    first = group[0]
    pair = pairs.load(first.pair, reverse=first.reverse)
    keys = jax.numpy.stack([jax.random.key(c.seed) for c in group])
    precision = first.budget.matmul_precision
    start = time.perf_counter()
    with runtime.running(context), jax.default_matmul_precision(precision):
        if len(group) > 1:
            fitted_all = first.solver.fit_seeds(pair, keys, first.budget)
        else:
            fitted_all = [first.solver.fit(pair, keys[0], first.budget)]
        _check_fitted(fitted_all, len(group))
        for fitted in fitted_all:
            jax.block_until_ready(fitted.forward(pair.sample_source(keys[0], 1)))
        # a run resumed from its checkpoint: the wall clock of its earlier segments too
        wall = time.perf_counter() - start + runtime.earlier_seconds()
        return [_record(cell, pair, fitted, wall, len(group), precision)
                for cell, fitted in zip(group, fitted_all)]


def _check_fitted(fitted_all, expected: int) -> None:
    """The solver protocol: one Fitted per seed (a solver's error, recorded as failed)."""
    if not isinstance(fitted_all, (list, tuple)) or len(fitted_all) != expected:
        raise TypeError(f"fit_seeds returned {type(fitted_all).__name__}, not a list of "
                        f"{expected} otarena.solver.Fitted")
    for fitted in fitted_all:
        if not isinstance(fitted, Fitted):
            what = "None" if fitted is None else f"a {type(fitted).__name__}"
            raise TypeError(f"fit returned {what}, not an otarena.solver.Fitted")


def _scores(cell: Cell, pair, forward, inverse) -> dict:
    return metrics.evaluate(pair, forward, inverse, size=cell.eval_size)


def _record(cell: Cell, pair, fitted, wall_seconds: float, vmapped: int, precision: str) -> dict:
    """The record of a cell: the reported iterate's metrics (and those of other iterates the
    solver returned), the split of the time, and provenance.

    A run stopped early by its paper's rule is ``diverged``; its metrics are those of the
    parameters it stopped with, which the Amos tables average in as w2ot does.
    """
    start = time.perf_counter()
    scores = {**_scores(cell, pair, fitted.forward, fitted.inverse), **fitted.exact_metrics}
    by_iterate = {fitted.reported_iterate: scores}
    for name, (forward, inverse) in fitted.alternatives.items():
        by_iterate[name] = _scores(cell, pair, forward, inverse)
    eval_seconds = time.perf_counter() - start
    info = dict(fitted.info)
    timing = dict(info.pop("timing", {}))
    timing.update({
        "wall_seconds": wall_seconds, "eval_seconds": eval_seconds, "seeds_in_program": vmapped,
        # Steady-state: per iteration of the compiled program (all its seeds), and per seed.
        "seconds_per_iteration": timing.get("seconds_per_iteration"),
    })
    if timing["seconds_per_iteration"] is None and fitted.iterations:
        # A solver outside the engine reports no split: its wall clock is all we know.
        timing["seconds_per_iteration"] = wall_seconds / fitted.iterations
        timing["split"] = False
    if timing.get("seconds_per_iteration") is not None:
        timing["seconds_per_iteration_per_seed"] = timing["seconds_per_iteration"] / vmapped
    # a map with NaN or infinite output has no score: a divergence, not a result
    not_finite = sorted(k for k, v in scores.items() if not math.isfinite(v))
    record = {
        **cell.identity(),
        "run_id": cell.run_id,
        "status": "diverged" if fitted.diverged or not_finite else "ok",
        "metrics": scores,
        "reported_iterate": fitted.reported_iterate,
        "curve": [dict(point) for point in fitted.curve],
        "iterations": fitted.iterations,
        "timing": timing,
        "solver_label": cell.solver.label,
        "solver_info": info,
        "pair_provenance": dict(pair.provenance),
        "numerics": numerics(precision),
        **stamp(),
    }
    if len(by_iterate) > 1:
        record["metrics_by_iterate"] = by_iterate
    if not_finite and not fitted.diverged:
        record["error"] = f"map output or metrics not finite: {', '.join(not_finite)}"
    return record


def failed_record(cell: Cell, error: Exception) -> dict:
    """The record of a cell whose solver raised (in fit or in its maps): the error in one
    line and its traceback. The matrix goes on, and the next run tries the cell again."""
    line = " ".join(f"{type(error).__name__}: {error}".split())
    return {**cell.identity(), "run_id": cell.run_id, "status": "failed", "metrics": {},
            "curve": [], "iterations": 0, "error": line[:500],
            "traceback": "".join(traceback.format_exception(error)),
            "solver_label": cell.solver.label, **stamp()}


def cells(pair_names: Iterable[str], solvers: Iterable[Solver], seeds: Iterable[int],
          budget: Budget, eval_size: int, reverse: bool = False) -> list[Cell]:
    return [Cell(p, reverse, s, seed, budget, eval_size)
            for p in pair_names for s in solvers for seed in seeds]


def groups(todo: list[Cell], vmap_seeds: bool) -> list[list[Cell]]:
    """Cells to train together: the seeds of one (pair, solver, budget) when vmapping."""
    if not vmap_seeds:
        return [[c] for c in todo]
    groups: dict[tuple, list[Cell]] = {}
    for c in todo:
        if c.solver.fit_seeds is None:
            groups[(id(c),)] = [c]
        else:
            groups.setdefault((c.pair, c.reverse, c.solver.name, c.budget, c.eval_size), []).append(c)
    return list(groups.values())


def summary(cell: Cell, record: dict) -> str:
    if record["status"] == "failed":
        return f"{cell.label}: failed: {record['error']}"
    uvp = record["metrics"].get("l2_uvp_fwd")
    shown = "n/a" if uvp is None else f"{uvp:.2f}"
    return (f"{cell.label}: {record['status']}, L2-UVP fwd {shown} "
            f"({record['timing']['wall_seconds']:.1f}s)")


def check_cells(todo: list[Cell]) -> None:
    """A seed or an evaluation size out of range, as one OtarenaError (it would otherwise
    fail, or alias another seed, only after training)."""
    for cell in todo:
        if not 0 <= cell.seed < SEED_LIMIT:
            raise OtarenaError(f"seed {cell.seed}: seeds are integers in [0, 2**32), "
                               "i.e. below 2**32")
        problem = metrics.eval_size_problem(cell.eval_size)
        if problem:
            raise OtarenaError(problem)


def check_ready(pending: list[Cell], store: Store) -> None:
    """Before any work: the data files are there and intact, the store can be written."""
    for name, reverse in dict.fromkeys((c.pair, c.reverse) for c in pending):
        pairs.load(name, reverse=reverse)
    if pending:
        store.check_writable()


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


def run(todo: list[Cell], store: Store, force: bool = False, quiet: bool = False,
        vmap_seeds: bool = False) -> list[dict]:
    """Run every cell whose record is not in the store (all of them with ``force``).

    Shows a progress bar for the matrix and one for the iterations of the running cell
    (on a terminal; elsewhere a progress line every ``PROGRESS_SECONDS``), and a line per
    finished cell with the time left for the matrix, unless ``quiet``. Training state is checkpointed under
    ``{store}/.checkpoints`` every ``$OTARENA_CHECKPOINT_SECONDS`` (default 300) seconds,
    so a killed run resumes where it was.
    """
    check_cells(todo)
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

                context = runtime.RunContext(checkpoint=stem, progress=progress,
                                             checkpoint_every=every)
                try:
                    records = run_cells(group, context)
                except Exception as error:  # the solver's fault: record it, go on
                    records = [failed_record(cell, error) for cell in group]
            eta.done(len(group))
            for record, cell in zip(records, group):
                if store.add(record, replace=force):
                    say(summary(cell, record) + eta.text())
                else:
                    say(f"{cell.label}: already recorded by another process; kept that record")
                matrix.update(1)
            runtime.remove_checkpoints(stem)
    wanted = {c.run_id for c in todo}
    return [r for r in store.records() if r["run_id"] in wanted]
