"""Where cells run: in this process (``local``) or as a SLURM job array through submitit.

A job receives the specs of its cells by task kind (never pickled solver objects), rebuilds
them with their task (:meth:`otarena.task.Task.rebuild`), and runs them with
:func:`otarena.runner.run` against the shared result store, whose appends are safe across
processes. A preempted or timed-out job is requeued by submitit and resumes from the
training checkpoints the runner keeps in the store. Map cells and Sinkhorn cells go the
same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import submitit

from otarena import runner, tasks
from otarena.store import Store
from otarena.task import Cell


@dataclass(frozen=True)
class Job:
    """One array task: a group of cells (task kind and spec each) and how to run them."""

    cells: tuple[tuple[str, dict], ...]
    store: str
    force: bool = False
    vmap_seeds: bool = False

    def rebuild(self) -> list[Cell]:
        return [tasks.get(kind).rebuild(spec) for kind, spec in self.cells]


class RunJob(submitit.helpers.Checkpointable):
    """The job's callable. Requeued as is on preemption: finished cells are skipped and
    unfinished ones resume from their training checkpoints."""

    def __call__(self, job: Job) -> int:
        records = runner.run(job.rebuild(), Store(job.store), force=job.force, quiet=True,
                             vmap_seeds=job.vmap_seeds)
        return len(records)


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    time_limit_minutes: int = 4320  # w2ot's sweeps: 72 h per job
    gpus_per_job: int = 1
    cpus_per_job: int = 4
    mem_gb: int = 64
    array_parallelism: int = 64


def submit(todo: Sequence[Cell], store: Store, folder: Path, options: SlurmOptions,
           cluster: str = "slurm", force: bool = False, vmap_seeds: bool = False
           ) -> list[submitit.Job]:
    """One array task per group of cells (the seeds of a cell when vmapping).

    Args:
        todo: cells of any tasks; those already in the store are left out (unless
            ``force``).
        store: the shared result store the jobs append to.
        folder: submitit's folder (job scripts, logs, pickled jobs).
        options: SLURM resources per job.
        cluster: ``slurm``, or ``local`` to run the same path as local processes.
        force: redo cells already in the store.
        vmap_seeds: one job per group of seeds that train together.

    Returns:
        The submitted jobs (none when every cell is done).
    """
    runner.check(todo)
    done = set() if force else store.ids()
    pending = [c for c in todo if c.run_id not in done]
    runner.check_ready(pending, store)  # a data error is one line here, not a failed job
    jobs = [Job(tuple((c.task.kind, c.spec()) for c in group), str(store.root.resolve()),
                force, vmap_seeds) for group in runner.groups(pending, vmap_seeds)]
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
