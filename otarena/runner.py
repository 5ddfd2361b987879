"""Running cells of the benchmark matrix: one (pair, solver, seed, budget) each."""

from __future__ import annotations

import datetime as dt
import math
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jax
from tqdm import tqdm

from otarena import metrics, pairs, runtime
from otarena.budgets import Budget
from otarena.errors import OtarenaError
from otarena.plugins import repo_root
from otarena.solver import Fitted, Solver
from otarena.store import SCHEMA, Store, run_id


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


def device_description() -> dict:
    device = jax.devices()[0]
    return {"platform": device.platform, "kind": device.device_kind,
            "count": jax.device_count(), "host": platform.node()}


@lru_cache(maxsize=1)
def versions() -> dict:
    import flax
    import jaxlib
    import numpy
    import optax

    found = {"python": sys.version.split()[0], "jax": jax.__version__,
             "jaxlib": jaxlib.__version__, "flax": flax.__version__,
             "optax": optax.__version__, "numpy": numpy.__version__}
    if "torch" in sys.modules:
        found["torch"] = sys.modules["torch"].__version__
    return found


@lru_cache(maxsize=1)
def git_state() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=repo_root(), capture_output=True,
                              text=True, check=True).stdout.strip()
    try:
        # dirty: the code differs from the commit; the committed result store and reports
        # change with every record, so they do not count
        return {"commit": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", ".",
                                  ":(exclude)results", ":(exclude)reports"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def checkpoint_stem(store: Store, group: list[Cell]) -> Path:
    """Where the training state of a group of cells is checkpointed (a file name prefix)."""
    return store.root / ".checkpoints" / run_id({"cells": sorted(c.run_id for c in group)})


def run_cells(group: list[Cell], context: runtime.RunContext = runtime.RunContext()) -> list[dict]:
    """Train and evaluate cells that differ only by seed; one compiled program if possible."""
    first = group[0]
    pair = pairs.load(first.pair, reverse=first.reverse)
    keys = jax.numpy.stack([jax.random.key(c.seed) for c in group])
    start = time.perf_counter()
    with runtime.running(context):
        if len(group) > 1:
            fitted_all = first.solver.fit_seeds(pair, keys, first.budget)
        else:
            fitted_all = [first.solver.fit(pair, keys[0], first.budget)]
        resumed_seconds = runtime.earlier_seconds()  # of a run resumed from its checkpoint
    _check_fitted(fitted_all, len(group))
    for fitted in fitted_all:
        jax.block_until_ready(fitted.forward(pair.sample_source(keys[0], 1)))
    train_seconds = time.perf_counter() - start + resumed_seconds
    return [_record(cell, pair, fitted, train_seconds, len(group))
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


def _record(cell: Cell, pair, fitted, train_seconds: float, vmapped: int) -> dict:
    start = time.perf_counter()
    if fitted.diverged:
        # As in the papers: keep the last evaluation before the divergence; reports
        # print ">100" for the cell whatever it says.
        status = "diverged"
        scores = {k: v for k, v in (fitted.curve[-1] if fitted.curve else {}).items()
                  if k.startswith(("l2_uvp", "cos"))}
    else:
        scores = metrics.evaluate(pair, fitted.forward, fitted.inverse, size=cell.eval_size)
        # a map with NaN or infinite output has no score: it is a divergence, not a result
        bad = sorted(k for k, v in scores.items() if not math.isfinite(v))
        status = "diverged" if bad else "ok"
    eval_seconds = time.perf_counter() - start

    return {
        **cell.identity(),
        "run_id": cell.run_id,
        "status": status,
        "metrics": scores,
        "curve": [dict(point) for point in fitted.curve],
        "iterations": fitted.iterations,
        "timing": {"train_seconds": train_seconds, "eval_seconds": eval_seconds,
                   "seconds_per_iteration": (train_seconds / fitted.iterations
                                             if fitted.iterations else None),
                   "seeds_in_program": vmapped},
        "solver_label": cell.solver.label,
        "solver_info": dict(fitted.info),
        "pair_provenance": dict(pair.provenance),
        "device": device_description(),
        "versions": versions(),
        "git": git_state(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **({"error": f"map output or metrics not finite: {', '.join(bad)}"}
           if status == "diverged" and not fitted.diverged else {}),
    }


def failed_record(cell: Cell, error: Exception) -> dict:
    """The record of a cell whose solver raised (in fit or in its maps): the error in one
    line and its traceback. The matrix goes on, and the next run tries the cell again."""
    line = " ".join(f"{type(error).__name__}: {error}".split())
    return {**cell.identity(), "run_id": cell.run_id, "status": "failed", "metrics": {},
            "curve": [], "iterations": 0, "error": line[:500],
            "traceback": "".join(traceback.format_exception(error)),
            "solver_label": cell.solver.label, "device": device_description(),
            "versions": versions(), "git": git_state(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


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
            f"({record['timing']['train_seconds']:.1f}s train)")


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
    """Before any work: the store can be written, the data files are there and intact."""
    if pending:
        store.check_writable()
    for name, reverse in dict.fromkeys((c.pair, c.reverse) for c in pending):
        pairs.load(name, reverse=reverse)


def _finished(store: Store) -> set[str]:
    """Run ids with a record that is not a failure (failed cells are tried again)."""
    return {r["run_id"] for r in store.records() if r.get("status") != "failed"}


def run(todo: list[Cell], store: Store, force: bool = False, quiet: bool = False,
        vmap_seeds: bool = False) -> list[dict]:
    """Run every cell whose record is not in the store (all of them with ``force``).

    Shows a progress bar for the matrix and one for the iterations of the running cell,
    and a line per finished cell, unless ``quiet``. Training state is checkpointed under
    ``{store}/.checkpoints`` every ``$OTARENA_CHECKPOINT_SECONDS`` (default 300) seconds,
    so a killed run resumes where it was.
    """
    check_cells(todo)
    every = runtime.checkpoint_seconds()
    finished = set() if force else _finished(store)
    pending = [c for c in todo if c.run_id not in finished]
    check_ready(pending, store)  # a missing or corrupt data file fails here, before any work
    say = (lambda line: None) if quiet else (lambda line: tqdm.write(line, file=sys.stdout))
    bars = {"disable": True if quiet else None, "dynamic_ncols": True}  # None: only on a TTY
    if len(pending) < len(todo):
        say(f"{len(todo) - len(pending)} of {len(todo)} cells already in {store.root}")
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
                def progress(iterations, planned, bar=bar):
                    bar.total = planned
                    bar.update(iterations - bar.n)

                context = runtime.RunContext(checkpoint=stem, progress=progress,
                                             checkpoint_every=every)
                try:
                    records = run_cells(group, context)
                except Exception as error:  # the solver's fault: record it, go on
                    records = [failed_record(cell, error) for cell in group]
            for record, cell in zip(records, group):
                if store.add(record, replace=force):
                    say(summary(cell, record))
                else:
                    say(f"{cell.label}: already recorded by another process; kept that record")
                matrix.update(1)
            runtime.remove_checkpoints(stem)
    wanted = {c.run_id for c in todo}
    return [r for r in store.records() if r["run_id"] in wanted]
