"""The map benchmark (Korotin et al. 2021, Amos 2023) as a task: a cell is a solver trained
on a pair (or its reverse) with one seed at one budget, its maps scored by L2-UVP and
cosine on a fixed evaluation sample. Records go to ``records.jsonl``; the tables are
:mod:`otarena.reporting.maps`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import jax

from otarena import metrics, pairs, runtime, solver
from otarena.budgets import Budget
from otarena.errors import OtarenaError
from otarena.provenance import numerics, stamp
from otarena.solver import Fitted, Solver
from otarena.store import SCHEMA, run_id
from otarena.task import failure

# jax.random.key keeps 32 bits of a seed: 2**32 would silently be seed 0 again
SEED_LIMIT = 2**32


@dataclass(frozen=True)
class Cell:
    """A solver on a pair (``reverse``: source and target swapped), one seed, one budget."""

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

    @property
    def task(self) -> MapTask:
        return TASK

    @property
    def group_key(self):
        """The seeds of one (pair, solver, budget) train together when the solver can."""
        if self.solver.fit_seeds is None:
            return None
        return (self.pair, self.reverse, self.solver.name, self.budget, self.eval_size)

    def spec(self) -> dict:
        """Names, not objects; a solver from a user's file (its config holds the file's
        sha256) is found again through that file."""
        user_file = self.solver.source if "source_sha256" in self.solver.config else None
        return {"pair": self.pair, "reverse": self.reverse, "solver": self.solver.name,
                "seed": self.seed, "budget": asdict(self.budget), "eval_size": self.eval_size,
                "solver_file": user_file}


def cells(pair_names: Iterable[str], solvers: Iterable[Solver], seeds: Iterable[int],
          budget: Budget, eval_size: int, reverse: bool = False) -> list[Cell]:
    return [Cell(p, reverse, s, seed, budget, eval_size)
            for p in pair_names for s in solvers for seed in seeds]


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


class MapTask:
    """Runs map cells: see :class:`otarena.task.Task`."""

    kind = "maps"
    records_file = "records.jsonl"
    vmaps_seeds = True

    def check(self, cells: Sequence[Cell]) -> None:
        """A seed or an evaluation size out of range, as one OtarenaError (it would
        otherwise fail, or alias another seed, only after training)."""
        for cell in cells:
            if not 0 <= cell.seed < SEED_LIMIT:
                raise OtarenaError(f"seed {cell.seed}: seeds are integers in [0, 2**32), "
                                   "i.e. below 2**32")
            problem = metrics.eval_size_problem(cell.eval_size)
            if problem:
                raise OtarenaError(problem)

    def check_ready(self, cells: Sequence[Cell]) -> None:
        """The data files of every pair are there and intact."""
        for name, reverse in dict.fromkeys((c.pair, c.reverse) for c in cells):
            pairs.load(name, reverse=reverse)

    def run(self, group: Sequence[Cell], context: runtime.RunContext) -> list[dict]:
        return run_cells(list(group), context)

    def failed_record(self, cell: Cell, error: BaseException) -> dict:
        """The solver raised (in fit or in its maps): the matrix goes on."""
        return {**failure(cell, error), "metrics": {}, "curve": [], "iterations": 0,
                "solver_label": cell.solver.label}

    def summary(self, cell: Cell, record: dict) -> str:
        if record["status"] == "failed":
            return f"{cell.label}: failed: {record['error']}"
        uvp = record["metrics"].get("l2_uvp_fwd")
        shown = "n/a" if uvp is None else f"{uvp:.2f}"
        return (f"{cell.label}: {record['status']}, L2-UVP fwd {shown} "
                f"({record['timing']['wall_seconds']:.1f}s)")

    def rebuild(self, spec: dict) -> Cell:
        if spec.get("solver_file"):
            found = {s.name: s for s in solver.load_file(spec["solver_file"])}[spec["solver"]]
        else:
            found = solver.get(spec["solver"])
        return Cell(spec["pair"], spec["reverse"], found, spec["seed"], Budget(**spec["budget"]),
                    spec["eval_size"])

    def owns(self, record: dict) -> bool:
        return record.get("suite") is None


TASK = MapTask()
