"""Flag values and the flags of ``otarena run`` (shared by its ``metaot`` alias)."""

from __future__ import annotations

import argparse

from otarena.budgets import PROFILES
from otarena.map_task import SEED_LIMIT

EPILOG = "Data directory: $OTARENA_DATA, else ~/.cache/otarena/data (see `otarena data path`)."
# Flags that apply to the cells of one task only (dest -> the task kind).
MAP_ONLY = ("eval_every", "eval_size", "reverse", "vmap_seeds")
SINKHORN_ONLY = ("test_instances", "repeats", "thresholds", "curve_iterations", "dtype",
                 "pair_option", "artifacts", "retrain")


def csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def seeds(text: str) -> list[int]:
    """'0,1,5' or '0-9' or a mix; every seed in [0, 2**32)."""
    found = []
    for part in csv(text):
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if lo > hi:
                    raise argparse.ArgumentTypeError(f"reversed seed range {part!r}: write {hi}-{lo}")
                found.extend(range(lo, hi + 1))
            else:
                found.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad seed list {text!r}: use e.g. 0,1,2 or 0-9") from None
    if not found:
        raise argparse.ArgumentTypeError(f"no seeds in {text!r}: use e.g. 0,1,2 or 0-9")
    if max(found) >= SEED_LIMIT:
        # jax.random.key keeps 32 bits: 2**32 would silently be seed 0 again
        raise argparse.ArgumentTypeError(f"seed {max(found)} is too large: seeds are below 2**32")
    return found


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def eval_size(text: str) -> int:
    from otarena import metrics

    value = positive(text)
    problem = metrics.eval_size_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(t) for t in csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad list of numbers {text!r}: use e.g. 1e-2,1e-3") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"thresholds must be positive, got {text!r}")
    return values


def pair_option(text: str) -> tuple[str, str, str]:
    """``FAMILY.KEY=VALUE``, e.g. ``mnist.grid=2d``."""
    name, sep, value = text.partition("=")
    family, dot, key = name.partition(".")
    if not (sep and dot and family and key):
        raise argparse.ArgumentTypeError(f"{text!r}: write FAMILY.KEY=VALUE, e.g. mnist.grid=2d")
    return family, key, value


def add_run_arguments(run: argparse.ArgumentParser) -> None:
    """The flags of ``otarena run``: one set for every task; a flag that applies to the cells
    of one task only is refused for the other's."""
    run.add_argument("--suite", help="a named matrix (`otarena list suites`); the flags below narrow it")
    run.add_argument("--pairs", help="comma-separated pair names, e.g. hd-2,hd-4 (Sinkhorn "
                     "suite: problem families, e.g. mnist)")
    run.add_argument("--solvers", help="comma-separated solver names (Sinkhorn suite: "
                     "initializers, e.g. zeros,meta-ot)")
    run.add_argument("--seeds", type=seeds, help="e.g. 0,1,2 or 0-9 (default: the suite's "
                     "seeds for the budget, else 0)")
    run.add_argument("--budget", default="smoke", help=f"{' | '.join(PROFILES)} (default smoke)")
    run.add_argument("--iterations", type=positive, help="override the budget's iterations "
                     "(Sinkhorn cells: the Meta OT training iterations)")
    run.add_argument("--results", default="results", help="result store directory (default results/)")
    run.add_argument("--force", action="store_true", help="redo cells already in the store")
    run.add_argument("--quiet", action="store_true", help="no progress bars or per-cell lines")
    maps = run.add_argument_group("map cells (solvers on pairs)")
    maps.add_argument("--eval-every", type=positive, help="override the budget's evaluation period")
    maps.add_argument("--eval-size", type=eval_size, default=None,
                      help="evaluation points (default: the suite's, 2^14 for the Amos HD "
                           "suites as w2ot, else 4096; fixed key)")
    maps.add_argument("--reverse", action="store_true", help="swap source and target of every pair")
    maps.add_argument("--vmap-seeds", action="store_true",
                      help="train the seeds of a cell in one compiled program (vmap over keys)")
    sink = run.add_argument_group("Sinkhorn cells (initializers on problem families)")
    sink.add_argument("--test-instances", type=positive, help="override the number of test instances")
    sink.add_argument("--repeats", type=positive, help="timed calls per instance (median)")
    sink.add_argument("--thresholds", type=floats, help="marginal errors to time, e.g. 1e-2,1e-3")
    sink.add_argument("--curve-iterations", type=positive, help="length of the error curves")
    sink.add_argument("--dtype", choices=["float32", "float64"],
                      help="override the budget's dtype (paper: float64)")
    sink.add_argument("--pair-option", type=pair_option, action="append", metavar="FAMILY.KEY=VALUE",
                      help="a family option, e.g. mnist.grid=2d (the 28x28 pixel grid; default "
                           "1d) or spherical.population_file=pop-15min.tif (repeatable)")
    sink.add_argument("--artifacts", metavar="DIR", help="trained-model cache (default "
                      "$OTARENA_ARTIFACTS or ~/.cache/otarena/artifacts)")
    sink.add_argument("--retrain", action="store_true", help="train even if a cached model exists")
    jobs = run.add_argument_group("executors")
    jobs.add_argument("--executor", choices=["local", "slurm", "submitit-local"], default="local",
                      help="local: this process (default); slurm: a submitit job array; "
                           "submitit-local: the SLURM path with jobs as local processes")
    jobs.add_argument("--partition", help="slurm: partition")
    jobs.add_argument("--time-limit", type=positive, default=4320, help="slurm: minutes per job")
    jobs.add_argument("--gpus-per-job", type=int, default=1, help="slurm: GPUs per job")
    jobs.add_argument("--array-parallelism", type=positive, default=64,
                      help="slurm: array tasks running at once")
    jobs.add_argument("--jobs-dir", help="submitit's folder (default {results}/.submitit)")
    jobs.add_argument("--wait", action="store_true", help="wait for the jobs, then print the table")
