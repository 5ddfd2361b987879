"""Running cells of the benchmark matrix: one (pair, solver, seed, budget) each."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

import jax

from otarena import metrics, pairs
from otarena.budgets import Budget
from otarena.plugins import repo_root
from otarena.solver import Solver
from otarena.store import SCHEMA, Store, run_id


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
        return {"commit": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def run_cells(group: list[Cell]) -> list[dict]:
    """Train and evaluate cells that differ only by seed; one compiled program if possible."""
    first = group[0]
    pair = pairs.load(first.pair, reverse=first.reverse)
    keys = jax.numpy.stack([jax.random.key(c.seed) for c in group])
    start = time.perf_counter()
    if len(group) > 1:
        fitted_all = first.solver.fit_seeds(pair, keys, first.budget)
    else:
        fitted_all = [first.solver.fit(pair, keys[0], first.budget)]
    for fitted in fitted_all:
        jax.block_until_ready(fitted.forward(pair.sample_source(keys[0], 1)))
    train_seconds = time.perf_counter() - start
    return [_record(cell, pair, fitted, train_seconds, len(group))
            for cell, fitted in zip(group, fitted_all)]


def _record(cell: Cell, pair, fitted, train_seconds: float, vmapped: int) -> dict:
    start = time.perf_counter()
    if fitted.diverged:
        # As in the papers: keep the last evaluation before the divergence; reports
        # print ">100" for the cell whatever it says.
        status = "diverged"
        scores = {k: v for k, v in (fitted.curve[-1] if fitted.curve else {}).items()
                  if k.startswith(("l2_uvp", "cos"))}
    else:
        status = "ok"
        scores = metrics.evaluate(pair, fitted.forward, fitted.inverse, size=cell.eval_size)
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
    }


def cells(pair_names: Iterable[str], solvers: Iterable[Solver], seeds: Iterable[int],
          budget: Budget, eval_size: int, reverse: bool = False) -> list[Cell]:
    return [Cell(p, reverse, s, seed, budget, eval_size)
            for p in pair_names for s in solvers for seed in seeds]


def _groups(todo: list[Cell], vmap_seeds: bool) -> list[list[Cell]]:
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


def run(todo: list[Cell], store: Store, force: bool = False,
        log: Callable[[str], None] = print, vmap_seeds: bool = False) -> list[dict]:
    """Run every cell whose record is not in the store (all of them with ``force``)."""
    done = set() if force else store.ids()
    for cell in todo:
        if cell.run_id in done:
            log(f"{cell.label}: already in {store.root}, skipped")
    pending = [c for c in todo if c.run_id not in done]
    finished = len(todo) - len(pending)
    for group in _groups(pending, vmap_seeds):
        for record, cell in zip(run_cells(group), group):
            store.add(record, replace=force)
            finished += 1
            uvp = record["metrics"].get("l2_uvp_fwd")
            shown = "n/a" if uvp is None else f"{uvp:.2f}"
            log(f"[{finished}/{len(todo)}] {cell.label}: {record['status']}, L2-UVP fwd "
                f"{shown} ({record['timing']['train_seconds']:.1f}s train)")
    wanted = {c.run_id for c in todo}
    return [r for r in store.records() if r["run_id"] in wanted]
