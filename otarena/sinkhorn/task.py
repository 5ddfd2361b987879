"""The Sinkhorn benchmark (Meta OT, Table 1) as a task: a cell is an initializer timed on
the test instances of a problem family at one budget (one cell per training seed for the
learned initializers, one in all for the others). Records go to ``metaot-sinkhorn.jsonl``;
the tables are :mod:`otarena.reporting.sinkhorn`.

A cell's identity holds the family's resolved options (the MNIST grid, the population
file), the way its test instances were drawn and the data's sha256, so records of
different instance sets never share a run id, whether an option was given or defaulted;
and the kind of device, since the numbers are wall clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property

import jax

from otarena import data, runtime
from otarena.budgets import Budget
from otarena.errors import OtarenaError, UnknownNameError
from otarena.provenance import device_description, stamp
from otarena.sinkhorn import family as families
from otarena.sinkhorn.config import (INITIALIZERS, LABELS, LEARNED, SUITE, TrainConfig,
                                     sinkhorn_settings)
from otarena.sinkhorn.family import Plan, ProblemFamily
from otarena.store import SCHEMA, run_id
from otarena.task import failure

SEED_LIMIT = 2**32  # jax.random.key keeps 32 bits


def identity(family: ProblemFamily, name: str, seed: int | None, budget: Budget, plan: Plan,
             model_key: str | None) -> dict:
    """What determines a record (see the module's docstring)."""
    device = device_description()
    return {"schema": SCHEMA, "suite": SUITE, "pair": family.name, "solver": name,
            "solver_config": {"model": model_key, "sinkhorn": sinkhorn_settings(family, plan)},
            "seed": seed, "budget": budget.as_dict(), "plan": plan.as_dict(),
            "family_options": dict(family.options),
            "test_draws": family.provenance.get("test_draws"),
            "data_sha256": list(family.provenance.get("sha256", [])),
            "device_kind": {"platform": device["platform"], "kind": device["kind"]}}


_FAMILIES: dict[tuple, ProblemFamily] = {}


def _family(name: str, options: tuple) -> ProblemFamily:
    """The family built once per process, options and data directory."""
    key = (name, options, str(data.data_dir()))
    if key not in _FAMILIES:
        _FAMILIES[key] = families.load_family(name, **dict(options))
    return _FAMILIES[key]


def _items(mapping: Mapping) -> tuple:
    """A mapping as sorted (key, value) pairs, lists as tuples (hashable, JSON round trip)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                        for k, v in mapping.items() if v is not None))


@dataclass(frozen=True)
class Cell:
    """An initializer on a family at a budget; ``seed`` trains a learned initializer."""

    family: str
    initializer: str
    seed: int | None
    budget: Budget
    options: tuple = ()  # the family's options, as _items
    overrides: tuple = ()  # of the budget's plan (test_instances, thresholds, ...), as _items
    artifacts: str | None = None  # the trained-model cache (None: the default)
    retrain: bool = False

    @property
    def task(self) -> SinkhornTask:
        return TASK

    group_key = None  # one cell at a time: nothing trains seeds together

    @cached_property
    def problem(self) -> ProblemFamily:
        return _family(self.family, self.options)

    @cached_property
    def plan(self) -> Plan:
        return families.plan_for(self.budget, self.family, **dict(self.overrides))

    @cached_property
    def train_config(self) -> TrainConfig | None:
        if self.initializer not in LEARNED:
            return None
        plan = self.plan
        return TrainConfig(family=self.family, family_provenance=dict(self.problem.provenance),
                           iterations=plan.train_iterations, batch=plan.batch, seed=self.seed,
                           dtype=plan.dtype, trainer=LEARNED[self.initializer])

    def identity(self) -> dict:
        config = self.train_config
        return identity(self.problem, self.initializer, self.seed, self.budget, self.plan,
                        config.key() if config else None)

    @cached_property
    def run_id(self) -> str:
        return run_id(self.identity())

    @property
    def label(self) -> str:
        seed = "" if self.seed is None else f" seed={self.seed}"
        return f"{self.family} {self.initializer}{seed} budget={self.budget.profile}"

    def spec(self) -> dict:
        return {"family": self.family, "initializer": self.initializer, "seed": self.seed,
                "budget": asdict(self.budget), "options": dict(self.options),
                "overrides": {k: list(v) if isinstance(v, tuple) else v
                              for k, v in self.overrides},
                "artifacts": self.artifacts, "retrain": self.retrain}


def cells(family_names: Iterable[str], initializers: Iterable[str], seeds: Iterable[int],
          budget: Budget, options: Mapping[str, Mapping] | None = None,
          overrides: Mapping | None = None, artifacts: str | None = None,
          retrain: bool = False) -> list[Cell]:
    """Every (family, initializer[, seed]): learned initializers get one cell per seed.

    Args:
        family_names: Sinkhorn problem families (``SINKHORN_FAMILY`` of ``datasets/``).
        initializers: names of :data:`~otarena.sinkhorn.config.INITIALIZERS`.
        seeds: training seeds of the learned initializers.
        budget: the profile (``iterations`` overrides the Meta OT training iterations).
        options: per family, its options (e.g. ``{"mnist": {"grid": "2d"}}``).
        overrides: fields of the profile's :class:`~otarena.sinkhorn.family.Plan`.
        artifacts: the trained-model cache folder (None: the default).
        retrain: train even where a cached model exists.
    """
    family_names, initializers, seeds = list(family_names), list(initializers), list(seeds)
    for name in family_names:
        families.get(name)
    for name in initializers:
        if name not in INITIALIZERS:
            raise UnknownNameError(f"unknown initializer {name!r}; known: {', '.join(INITIALIZERS)}")
    options = options or {}
    return [Cell(f, name, seed, budget, _items(options.get(f, {})), _items(overrides or {}),
                 None if artifacts is None else str(artifacts), retrain)
            for f in family_names for name in initializers
            for seed in (seeds if name in LEARNED else [None])]


_INSTANCES: dict[tuple, tuple] = {}


def _instances(cell: Cell, log) -> tuple:
    """(a, b, test information, cost matrix, x, y) of the cell's family and plan, made
    once per process (all initializers solve the same instances)."""
    problem, plan = cell.problem, cell.plan
    key = (id(problem), plan.dtype, plan.test_instances)
    if key not in _INSTANCES:
        log(f"{cell.family}: {len(problem.x)} x {len(problem.y)} atoms, eps {problem.epsilon:g}, "
            f"budget {cell.budget.profile}, {plan.dtype}, data "
            f"{', '.join(problem.provenance['files'])}")
        a, b, test_info = problem.test_instances(plan.test_instances)
        _INSTANCES[key] = (a, b, test_info, problem.cost_matrix(), *problem.points())
    return _INSTANCES[key]


def run_cell(cell: Cell, log=print) -> dict:
    """Train (or load) the cell's model, time its solves, and make the record."""
    from otarena.sinkhorn import artifacts
    from otarena.sinkhorn.initializers import initializer_args
    from otarena.sinkhorn.timing import TIMING_METHOD, bench_initializer

    problem, plan, config = cell.problem, cell.plan, cell.train_config
    with jax.enable_x64(plan.dtype == "float64"):
        a, b, test_info, cost, x, y = _instances(cell, log)
        model = params = training = None
        if config is not None:
            trained = artifacts.trained_model(
                problem, config, cell.artifacts, retrain=cell.retrain, log=log,
                info={k: v for k, v in stamp().items() if k != "created"})
            model = trained.model(len(problem.x))
            params = jax.device_put(trained.params)
            training = {"config": dict(config.__dict__), "artifact": trained.artifact,
                        "cached": trained.cached, "train_seconds": trained.train_seconds,
                        "steady_seconds_per_iteration": trained.steady_seconds_per_iteration,
                        "loss_curve": trained.curve, "diverged_at": trained.diverged_at,
                        "trained_on": trained.info}
        if training and training["diverged_at"] is not None:
            # A model with NaN parameters is not an initializer: no timings.
            log(f"[{cell.label}] training diverged: recorded without timings")
            status, body = "training diverged", {"metrics": {"thresholds": []}, "curve": None}
        else:
            body = bench_initializer(problem, cell.initializer, cost, a, b,
                                     initializer_args(cell.initializer, x, y, params), plan,
                                     model, log=log)
            converged = all(all(t["converged"]) for t in body["metrics"]["thresholds"])
            status = "ok" if converged else "not converged"
    return {**cell.identity(), "run_id": cell.run_id, "status": status,
            "family": cell.family, "variant": problem.variant,
            "initializer": cell.initializer, "label": LABELS[cell.initializer],
            **body, "training": training, "sinkhorn": sinkhorn_settings(problem, plan),
            "timing_method": TIMING_METHOD, "test_instances": {"n": len(a), **test_info},
            "data": dict(problem.provenance), **stamp()}


class SinkhornTask:
    """Runs Sinkhorn cells: see :class:`otarena.task.Task`."""

    kind = "sinkhorn"
    records_file = "metaot-sinkhorn.jsonl"
    vmaps_seeds = False

    def check(self, cells: Sequence[Cell]) -> None:
        for cell in cells:
            if cell.seed is not None and not 0 <= cell.seed < SEED_LIMIT:
                raise OtarenaError(f"seed {cell.seed}: seeds are integers in [0, 2**32), "
                                   "i.e. below 2**32")

    def check_ready(self, cells: Sequence[Cell]) -> None:
        """Every family builds (its data there and intact, its options known)."""
        for cell in cells:
            cell.problem  # builds the family: its data there and intact, its options known

    def run(self, group: Sequence[Cell], context: runtime.RunContext) -> list[dict]:
        return [run_cell(cell, context.log) for cell in group]

    def failed_record(self, cell: Cell, error: BaseException) -> dict:
        return {**failure(cell, error), "family": cell.family, "variant": cell.problem.variant,
                "initializer": cell.initializer, "label": LABELS[cell.initializer],
                "metrics": {"thresholds": []}, "curve": None, "training": None,
                "data": dict(cell.problem.provenance)}

    def summary(self, cell: Cell, record: dict) -> str:
        if record["status"] == "failed":
            return f"{cell.label}: failed: {record['error']}"
        rows = record["metrics"]["thresholds"]
        if not rows:
            return f"{cell.label}: {record['status']}, no timings"
        first = rows[0]
        return (f"{cell.label}: {record['status']}, {first['seconds_mean']:.3g} s and "
                f"{first['iterations_mean']:.1f} iterations to {first['threshold']:g}")

    def rebuild(self, spec: dict) -> Cell:
        return Cell(spec["family"], spec["initializer"], spec["seed"], Budget(**spec["budget"]),
                    _items(spec["options"]), _items(spec["overrides"]), spec["artifacts"],
                    spec["retrain"])

    def owns(self, record: dict) -> bool:
        return record.get("suite") == SUITE


TASK = SinkhornTask()
