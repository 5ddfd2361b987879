"""Running cells of the benchmark matrix: one (pair, solver, seed, budget) each."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jax
from tqdm import tqdm

from otarena import metrics, pairs, runtime
from otarena.budgets import Budget
from otarena.provenance import device_description, git_state, numerics, timestamp, versions
from otarena.solver import Solver
from otarena.store import SCHEMA, Store, run_id

__all__ = ["Cell", "cells", "groups", "run", "run_cells", "device_description", "git_state",
           "versions"]


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
        for fitted in fitted_all:
            jax.block_until_ready(fitted.forward(pair.sample_source(keys[0], 1)))
        wall = time.perf_counter() - start
        return [_record(cell, pair, fitted, wall, len(group), precision)
                for cell, fitted in zip(group, fitted_all)]


def _scores(cell: Cell, pair, forward, inverse) -> dict:
    return metrics.evaluate(pair, forward, inverse, size=cell.eval_size)


def _record(cell: Cell, pair, fitted, wall_seconds: float, vmapped: int, precision: str) -> dict:
    """The record of a cell: the reported iterate's metrics (and those of other iterates the
    solver returned), the split of the time, and provenance.

    A run stopped early by its paper's rule is ``diverged``; its metrics are those of the
    parameters it stopped with, which the Amos tables average in as w2ot does.
    """
    start = time.perf_counter()
    scores = _scores(cell, pair, fitted.forward, fitted.inverse)
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
    record = {
        **cell.identity(),
        "run_id": cell.run_id,
        "status": "diverged" if fitted.diverged else "ok",
        "metrics": scores,
        "reported_iterate": fitted.reported_iterate,
        "curve": [dict(point) for point in fitted.curve],
        "iterations": fitted.iterations,
        "timing": timing,
        "solver_label": cell.solver.label,
        "solver_info": info,
        "pair_provenance": dict(pair.provenance),
        "device": device_description(),
        "numerics": numerics(precision),
        "versions": versions(),
        "git": git_state(),
        "created": timestamp(),
    }
    if len(by_iterate) > 1:
        record["metrics_by_iterate"] = by_iterate
    return record


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
    uvp = record["metrics"].get("l2_uvp_fwd")
    shown = "n/a" if uvp is None else f"{uvp:.2f}"
    return (f"{cell.label}: {record['status']}, L2-UVP fwd {shown} "
            f"({record['timing']['wall_seconds']:.1f}s)")


def run(todo: list[Cell], store: Store, force: bool = False, quiet: bool = False,
        vmap_seeds: bool = False) -> list[dict]:
    """Run every cell whose record is not in the store (all of them with ``force``).

    Shows a progress bar for the matrix and one for the iterations of the running cell,
    and a line per finished cell, unless ``quiet``. Training state is checkpointed under
    ``{store}/.checkpoints`` every ``$OTARENA_CHECKPOINT_SECONDS`` (default 300) seconds,
    so a killed run resumes where it was.
    """
    git_state()  # read the code's commit now: a commit made during a long run must not relabel it
    done = set() if force else store.ids()
    pending = [c for c in todo if c.run_id not in done]
    for cell in pending:  # a missing or corrupt data file fails here, before any work
        pairs.load(cell.pair, reverse=cell.reverse)
    say = (lambda line: None) if quiet else (lambda line: tqdm.write(line, file=sys.stdout))
    bars = {"disable": True if quiet else None, "dynamic_ncols": True}  # None: only on a TTY
    if len(pending) < len(todo):
        say(f"{len(todo) - len(pending)} of {len(todo)} cells already in {store.root}")
    with tqdm(total=len(todo), initial=len(todo) - len(pending), unit="cell", desc="matrix",
              **bars) as matrix:
        for group in groups(pending, vmap_seeds):
            stem = checkpoint_stem(store, group)
            with tqdm(total=None, unit="it", desc=group[0].label, leave=False, **bars) as bar:
                def progress(iterations, planned, bar=bar):
                    bar.total = planned
                    bar.update(iterations - bar.n)

                context = runtime.RunContext(checkpoint=stem, progress=progress,
                                             checkpoint_every=runtime.checkpoint_seconds())
                records = run_cells(group, context)
            for record, cell in zip(records, group):
                store.add(record, replace=force)
                matrix.update(1)
                say(summary(cell, record))
            for leftover in stem.parent.glob(f"{stem.name}-*.pkl"):
                leftover.unlink()
    wanted = {c.run_id for c in todo}
    return [r for r in store.records() if r["run_id"] in wanted]
