"""Where cells run: in this process (``local``) or as a SLURM job array through submitit.

A SLURM job receives the names of its cells (never pickled solver objects), rebuilds them,
and runs them with :func:`otarena.runner.run` against the shared result store, whose
appends are safe across processes. A preempted or timed-out job is requeued by submitit
and resumes from the training checkpoints the runner keeps in the store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import submitit

from otarena import runner, solver
from otarena.budgets import Budget
from otarena.store import Store


@dataclass(frozen=True)
class CellName:
    pair: str
    reverse: bool
    solver: str
    seed: int
    solver_file: str | None = None  # a user's adapter file outside solvers/


@dataclass(frozen=True)
class Job:
    """One array task: a group of cells and how to run them."""

    cells: tuple[CellName, ...]
    budget: dict
    eval_size: int
    store: str
    force: bool = False
    vmap_seeds: bool = False

    def rebuild(self) -> list[runner.Cell]:
        budget = Budget(**self.budget)
        out = []
        for c in self.cells:
            if c.solver_file:
                solvers = {s.name: s for s in solver.load_file(c.solver_file)}
                found = solvers[c.solver]
            else:
                found = solver.get(c.solver)
            out.append(runner.Cell(c.pair, c.reverse, found, c.seed, budget, self.eval_size))
        return out


class RunJob(submitit.helpers.Checkpointable):
    """The job's callable. Requeued as is on preemption: finished cells are skipped and
    unfinished ones resume from their training checkpoints."""

    def __call__(self, job: Job) -> int:
        records = runner.run(job.rebuild(), Store(job.store), force=job.force, quiet=True,
                             vmap_seeds=job.vmap_seeds)
        return len(records)


def name_of(cell: runner.Cell, user_files: dict[str, str]) -> CellName:
    return CellName(cell.pair, cell.reverse, cell.solver.name, cell.seed,
                    user_files.get(cell.solver.name))


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    time_limit_minutes: int = 4320  # w2ot's sweeps: 72 h per job
    gpus_per_job: int = 1
    cpus_per_job: int = 4
    mem_gb: int = 64
    array_parallelism: int = 64


def submit(todo: list[runner.Cell], store: Store, folder: Path, options: SlurmOptions,
           cluster: str = "slurm", force: bool = False, vmap_seeds: bool = False,
           user_files: dict[str, str] | None = None) -> list[submitit.Job]:
    """One array task per group of cells (the seeds of a cell when vmapping)."""
    user_files = user_files or {}
    runner.check_cells(todo)
    done = set() if force else store.ids()
    pending = [c for c in todo if c.run_id not in done]
    runner.check_ready(pending, store)  # a data error is one line here, not a failed job
    groups = runner.groups(pending, vmap_seeds)
    jobs = [Job(tuple(name_of(c, user_files) for c in g), asdict(g[0].budget), g[0].eval_size,
                str(store.root.resolve()), force, vmap_seeds) for g in groups]
    if not jobs:
        return []
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params = {"timeout_min": options.time_limit_minutes, "cpus_per_task": options.cpus_per_job,
              "slurm_array_parallelism": options.array_parallelism, "name": "otarena"}
    if cluster == "slurm":
        params.update(gpus_per_node=options.gpus_per_job, mem_gb=options.mem_gb,
                      slurm_partition=options.partition)
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor.map_array(RunJob(), jobs)
