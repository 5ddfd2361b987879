"""The Meta OT Sinkhorn benchmark: problem families, initializers, timing, error curves.

Reproduces Table 1 of Meta Optimal Transport (Amos et al., ICML 2023): the wall clock of
log-domain Sinkhorn (OTT-JAX) to reach a marginal error of 1e-2 (and 1e-3 ... 1e-5) from
four initializations of the dual potentials, on the 10 test instances of a family:

* ``zeros``: f = g = 0 (OTT's default initializer);
* ``gaussian``: OTT's ``GaussianInitializer`` (Thornton & Cuturi), on the atoms' point
  clouds in R^d (for the spherical family: the unit vectors in R^3, as in the paper);
* ``meta-ot``: f from the Meta OT MLP, g from f by one exact half-step (otarena's training);
* ``ott-meta``: OTT-JAX's own ``MetaInitializer``, trained on the same batches (a peer row).

Every initializer feeds the same OTT ``Sinkhorn`` (``lse_mode=True``, error checked every
``inner_iterations=10`` iterations as in the paper, ``max_iterations=100000``) on the same
dense cost matrix; zero weights get -inf potentials as OTT's initializers do.

What is timed is what a user of an initializer and the solver runs: one jitted function
``solve(cost, a, b, init_args) -> Solution(f, g, errors, converged)`` holding the
initializer (Meta OT: MLP forward and the g(f) half-step; Gaussian: the fit) and the whole
Sinkhorn loop, with no host round trip in between. The threshold is part of the compiled
program (a Python float argument costs a transfer and a slow dispatch on every call), the
cost matrix, the weights and the initializer's arrays are arguments, and the outputs are
the potentials, the error history and the convergence flag, so nothing is computed that
a user would not get (XLA cannot drop work either: everything feeds the potentials). Each
function is compiled and run once on instance 0 first; then each instance is timed with
``time.perf_counter`` around the call and ``jax.block_until_ready``. The Meta OT
prediction alone is its own small jitted call ``predict(params, a, b) -> f`` (the paper's
prediction timer returned a constant, which lets XLA skip the MLP entirely).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from ott.geometry import geometry, pointcloud
from ott.initializers.linear import initializers
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn

from otarena import metaot, plugins
from otarena.errors import UnknownNameError

SUITE = "metaot-sinkhorn"
INITIALIZERS = ("zeros", "gaussian", "meta-ot", "ott-meta")
LEARNED = {"meta-ot": "otarena", "ott-meta": "ott"}  # initializer -> trainer
LABELS = {"zeros": "Zeros", "gaussian": "Gaussian", "meta-ot": "Meta OT",
          "ott-meta": "Meta OT (OTT MetaInitializer)"}
THRESHOLDS = (1e-2, 1e-3, 1e-4, 1e-5)
INNER_ITERATIONS = 10  # error checked every 10 iterations, as in the paper
MAX_ITERATIONS = 100_000


# -- problem families -----------------------------------------------------------------------

@dataclass(eq=False)
class ProblemFamily:
    """Instances (a, b) on fixed atoms x (for a) and y (for b) with a fixed cost and eps."""

    name: str
    epsilon: float
    x: np.ndarray
    y: np.ndarray
    cost: Callable[[jax.Array, jax.Array], jax.Array]  # pairwise cost matrix, jittable
    cost_name: str
    sample_train: Callable[[jax.Array, int], tuple[jax.Array, jax.Array]]  # pure JAX
    test_instances: Callable[[int], tuple[jax.Array, jax.Array, dict]]
    curve_iterations: int  # the paper's x-axis for the error curves
    provenance: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # resolved: rebuilds this family
    variant: str | None = None  # short label of a non-default instance set, for reports

    def points(self) -> tuple[jax.Array, jax.Array]:
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
        return jnp.asarray(self.x, dtype), jnp.asarray(self.y, dtype)

    def cost_matrix(self) -> jax.Array:
        return self.cost(*self.points())


# The JAX that drew the paper's test instances in 2022 ran with x64 on (train_discrete.py)
# and the non-partitionable threefry PRNG (jax_threefry_partitionable was added later and
# became True by default in JAX 0.5.0). Under today's default, PRNGKey(0) draws other MNIST
# digits and other spherical weights.
PAPER_DRAWS = "PRNGKey(0), x64, jax_threefry_partitionable=False (the JAX the paper ran)"


@contextlib.contextmanager
def paper_draws() -> Iterator[None]:
    """Random draws inside this block are the ones the paper's 2022 JAX made (thread-local)."""
    with jax.enable_x64(True), jax.threefry_partitionable(False):
        yield


def family_builders() -> dict[str, Callable[..., ProblemFamily]]:
    """``SINKHORN_FAMILY = (name, build)`` of every file in ``datasets/``."""
    found = {}
    for module in plugins.load_folder("datasets"):
        entry = getattr(module, "SINKHORN_FAMILY", None)
        if entry is not None:
            found[entry[0]] = entry[1]
    return found


def load_family(name: str, **options) -> ProblemFamily:
    builders = family_builders()
    if name not in builders:
        raise UnknownNameError(f"unknown Sinkhorn problem family {name!r}; known: "
                               f"{', '.join(sorted(builders))}")
    return builders[name](**options)


# -- initializers ---------------------------------------------------------------------------

@jax.tree_util.register_pytree_node_class
class MetaOTInitializer(initializers.DefaultInitializer):
    """f from the Meta OT model, g from f by one exact Sinkhorn half-step (as the paper)."""

    def __init__(self, model: metaot.MetaMLP, params):
        super().__init__()
        self.model, self.params = model, params

    def init_fu(self, ot_prob, lse_mode, rng=None):
        f = metaot.predict_f(self.model, self.params, ot_prob.a, ot_prob.b)
        return f if lse_mode else ot_prob.geom.scaling_from_potential(f)

    def __call__(self, ot_prob, lse_mode, rng=None):
        assert lse_mode, "the benchmark runs log-domain Sinkhorn only"
        f = jnp.where(ot_prob.a > 0, self.init_fu(ot_prob, True), -jnp.inf)
        g = metaot.g_from_f(ot_prob.geom, f, ot_prob.b)
        return f, jnp.where(ot_prob.b > 0, g, -jnp.inf)

    def tree_flatten(self):
        return [self.params], {"model": self.model}

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(aux["model"], children[0])


@jax.tree_util.register_pytree_node_class
class GaussianOnAtoms(initializers.DefaultInitializer):
    """OTT's ``GaussianInitializer`` on the point clouds of the atoms.

    The benchmark solves on a dense cost matrix (the spherical cost is not a point-cloud
    cost OTT knows), so the Gaussian fit is taken on the atoms in R^d, exactly as the
    paper applied it to the spherical problem's unit vectors.
    """

    def __init__(self, x: jax.Array, y: jax.Array):
        super().__init__()
        self.x, self.y = x, y

    def init_fu(self, ot_prob, lse_mode, rng=None):
        cloud = pointcloud.PointCloud(self.x, self.y, epsilon=ot_prob.geom.epsilon)
        problem = linear_problem.LinearProblem(cloud, a=ot_prob.a, b=ot_prob.b)
        return initializers.GaussianInitializer().init_fu(problem, lse_mode=lse_mode)

    def tree_flatten(self):
        return [self.x, self.y], {}


def ott_meta_initializer(geom, model: metaot.MetaMLP, params):
    """OTT-JAX's ``MetaInitializer`` holding trained parameters (built inside a trace)."""
    import optax
    from flax.training import train_state
    from ott.initializers.neural import meta_initializer

    state = train_state.TrainState.create(apply_fn=model.apply, params=params,
                                          tx=optax.identity())
    return meta_initializer.MetaInitializer(geom, meta_model=model, state=state)


def initializer_args(name: str, x: jax.Array, y: jax.Array, params=None):
    """The arrays the initializer ``name`` needs besides (cost, a, b): its solve's last argument."""
    if name not in INITIALIZERS:
        raise UnknownNameError(f"unknown initializer {name!r}; known: {', '.join(INITIALIZERS)}")
    return {"zeros": (), "gaussian": (x, y)}.get(name, params)


def make_initializer(name: str, init_args, geom, model=None):
    """The OTT initializer ``name`` from its traced arrays (see ``initializer_args``)."""
    if name == "zeros":
        return initializers.DefaultInitializer()
    if name == "gaussian":
        return GaussianOnAtoms(*init_args)
    if name == "meta-ot":
        return MetaOTInitializer(model, init_args)
    if name == "ott-meta":
        return ott_meta_initializer(geom, model, init_args)
    raise UnknownNameError(f"unknown initializer {name!r}; known: {', '.join(INITIALIZERS)}")


# -- the solve, the harness -----------------------------------------------------------------

def make_solver(threshold, inner_iterations: int = INNER_ITERATIONS,
                max_iterations: int = MAX_ITERATIONS, min_iterations: int = 0
                ) -> sinkhorn.Sinkhorn:
    """The one Sinkhorn every initializer gets (log domain; ``threshold`` may be traced)."""
    return sinkhorn.Sinkhorn(lse_mode=True, threshold=threshold, norm_error=1,
                             inner_iterations=inner_iterations, min_iterations=min_iterations,
                             max_iterations=max_iterations)


class Solution(NamedTuple):
    """What a solve returns: the potentials, OTT's error history and its convergence flag.

    The iteration count is read from the errors on the host, as OTT's own ``n_iters``
    property does, so the compiled solve spends no reduction on it.
    """

    f: jax.Array
    g: jax.Array
    errors: jax.Array  # one entry per check (every INNER_ITERATIONS iterations); -1 = not run
    converged: jax.Array

    @property
    def iterations(self) -> int:
        return int(np.sum(np.asarray(self.errors) != -1)) * INNER_ITERATIONS


def _sinkhorn(name: str, epsilon: float, model, threshold: float, **solver_options) -> Callable:
    """run(cost, a, b, init_args) -> OTT's SinkhornOutput, from the initializer ``name``."""
    solver = make_solver(threshold, **solver_options)

    def run(cost, a, b, init_args):
        geom = geometry.Geometry(cost_matrix=cost, epsilon=epsilon)
        problem = linear_problem.LinearProblem(geom, a=a, b=b)
        init = make_initializer(name, init_args, geom, model)(problem, lse_mode=True)
        return solver(problem, init=init)

    return run


def make_solve(name: str, epsilon: float, model=None, threshold: float = THRESHOLDS[0],
               **solver_options) -> Callable:
    """solve(cost, a, b, init_args) -> Solution: initializer + Sinkhorn, one function to jit.

    The geometry and problem objects are built while tracing, so they cost nothing per
    call; the threshold is a constant of the compiled program; OTT's regularized cost,
    which a caller did not ask for, is never computed (its output is not returned).
    """
    if solver_options.get("inner_iterations", INNER_ITERATIONS) != INNER_ITERATIONS:
        raise ValueError("a Solution counts iterations in checks of INNER_ITERATIONS")
    run = _sinkhorn(name, epsilon, model, threshold, **solver_options)

    def solve(cost, a, b, init_args=()):
        out = run(cost, a, b, init_args)
        return Solution(out.f, out.g, out.errors, out.converged)

    return solve


def make_predict(model) -> Callable:
    """predict(params, a, b) -> f: the Meta OT MLP alone (what the paper's caption times).

    OTT's ``MetaInitializer`` computes exactly this (``meta_model.apply`` on the
    concatenated weights), so the same function times both learned initializers.
    """

    def predict(params, a, b):
        return metaot.predict_f(model, params, a, b)

    return predict


def make_initialize(name: str, epsilon: float, model=None) -> Callable:
    """initialize(cost, a, b, init_args) -> the (f, g) a solve starts from, and nothing more."""

    def initialize(cost, a, b, init_args=()):
        geom = geometry.Geometry(cost_matrix=cost, epsilon=epsilon)
        problem = linear_problem.LinearProblem(geom, a=a, b=b)
        return make_initializer(name, init_args, geom, model)(problem, lse_mode=True)

    return initialize


def call_only(cost, a, b, init_args=()) -> Solution:
    """A solve's call with no work: the same arguments (each read once) and outputs."""
    read = cost[0, 0] + sum(jnp.ravel(leaf)[0] for leaf in jax.tree.leaves(init_args))
    errors = jnp.full(MAX_ITERATIONS // INNER_ITERATIONS, -1.0, a.dtype).at[0].set(read)
    return Solution(a + read.astype(a.dtype), b + read.astype(b.dtype), errors, a[0] > 0)


@dataclass
class Timing:
    seconds: list[float]  # per instance: median over the repeats
    outputs: list[dict]  # per instance: iterations and converged (of a solve)
    compile_seconds: float


def instance_args(cost: jax.Array, a: jax.Array, b: jax.Array, init_args) -> list[tuple]:
    """(cost, a_i, b_i, init_args) per instance, on device before any timing."""
    return jax.block_until_ready([(cost, a[i], b[i], init_args) for i in range(len(a))])


def time_instances(fn: Callable, args: Sequence[tuple], repeats: int = 1) -> Timing:
    """Compile, warm up on instance 0, then time ``jit(fn)(*args[i])`` with block_until_ready."""
    timed = jax.jit(fn)
    start = time.perf_counter()
    jax.block_until_ready(timed(*args[0]))
    compile_seconds = time.perf_counter() - start
    seconds, outputs = [], []
    for instance in args:
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = jax.block_until_ready(timed(*instance))
            runs.append(time.perf_counter() - start)
        seconds.append(float(np.median(runs)))
        outputs.append({"iterations": result.iterations, "converged": bool(result.converged)}
                       if isinstance(result, Solution) else {})
    return Timing(seconds, outputs, compile_seconds)


def time_batched(solve: Callable, cost: jax.Array, a: jax.Array, b: jax.Array, init_args,
                 repeats: int = 1) -> dict:
    """All instances in one vmapped call: seconds per batch and instances per second."""
    timed = jax.jit(jax.vmap(solve, in_axes=(None, 0, 0, None)))
    jax.block_until_ready(timed(cost, a, b, init_args))
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(timed(cost, a, b, init_args))
        runs.append(time.perf_counter() - start)
    seconds = float(np.median(runs))
    return {"instances": len(a), "seconds": seconds, "instances_per_second": len(a) / seconds}


def error_curves(name: str, epsilon: float, cost: jax.Array, a: jax.Array, b: jax.Array,
                 init_args, iterations: int, model=None) -> np.ndarray:
    """Marginal error after each of ``iterations`` Sinkhorn iterations, per instance."""
    # threshold -1 never converges, so every run does all iterations; OTT computes the
    # error only from min_iterations on, hence min_iterations stays 0.
    run = _sinkhorn(name, epsilon, model, -1.0, inner_iterations=1, max_iterations=iterations)
    errors = jax.jit(jax.vmap(lambda a, b: run(cost, a, b, init_args).errors))
    return np.asarray(errors(a, b))


def cost_model(name: str, epsilon: float, cost: jax.Array, a: jax.Array, b: jax.Array,
               init_args, iterations: Sequence[int], repeats: int = 3, model=None) -> dict:
    """Where the wall clock of a solve goes: call, initialization, fixed cost, iterations.

    Every test instance is solved for exactly n iterations for each n in ``iterations``
    (threshold -1 never converges; the error is still computed every 10 iterations, as in
    the timed solves), and a least-squares line through (n, seconds) splits a solve into a
    fixed cost and a cost per iteration. The fixed cost contains the call itself (timed
    alone: ``call_only``, the same arguments and outputs with no work) and the
    initialization (timed alone). On a small problem on a GPU the fixed cost can
    dominate; this is what says so.

    Fixed-length solves cost the same on every instance, so each part is the minimum over
    instances and rounds (noise on a shared machine only ever adds time); each round
    times every function on all instances in turn, so a slow spell cannot bias one of
    them.
    """
    timed = {"call": jax.jit(call_only),
             "initialization": jax.jit(make_initialize(name, epsilon, model))}
    for n in iterations:
        timed[n] = jax.jit(make_solve(name, epsilon, model, threshold=-1.0, max_iterations=n))
    instances = instance_args(cost, a, b, init_args)  # not timed
    for key, fn in timed.items():  # compile, and check the solves ran n iterations
        for args in instances:
            out = jax.block_until_ready(fn(*args))
            if key in iterations and out.iterations != key:
                raise RuntimeError(f"a {key}-iteration solve ran {out.iterations}")
    samples = {key: [[] for _ in instances] for key in timed}
    for _ in range(max(repeats, 3)):
        for key, fn in timed.items():
            for i, args in enumerate(instances):  # back to back: warm, as a real loop
                start = time.perf_counter()
                jax.block_until_ready(fn(*args))
                samples[key][i].append(time.perf_counter() - start)
    fastest = {key: [min(runs) for runs in rows] for key, rows in samples.items()}
    best = np.asarray([min(fastest[n]) for n in iterations])
    slope, intercept = np.polyfit(np.asarray(iterations, float), best, 1)
    fitted = intercept + slope * np.asarray(iterations, float)
    spread = np.sum((best - best.mean()) ** 2)
    return {"iterations": list(iterations), "estimator": "minimum over instances and rounds",
            "rounds": max(repeats, 3), "seconds": [fastest[n] for n in iterations],
            "seconds_per_iteration": float(slope), "fixed_seconds": float(intercept),
            "r2": float(1 - np.sum((best - fitted) ** 2) / spread) if spread > 0 else None,
            "dispatch_seconds": min(fastest["call"]),
            "initialization_seconds": min(fastest["initialization"])}


def first_below(errors: np.ndarray, threshold: float) -> int | None:
    """The first iteration (1-based) whose error is below ``threshold``; None if none."""
    hits = np.flatnonzero(errors < threshold)
    return int(hits[0]) + 1 if len(hits) else None


def mean_std(values: Sequence[float]) -> dict:
    v = np.asarray([np.nan if x is None else x for x in values], dtype=float)
    return {"mean": float(np.mean(v)), "std": float(np.std(v))}


# -- budgets --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """What one budget means for one family (every field is recorded and hashed)."""

    train_iterations: int
    batch: int
    test_instances: int
    thresholds: tuple[float, ...]
    repeats: int  # timed calls per instance; the instance's time is their median
    curve_iterations: int
    dtype: str
    batched: bool = True  # also time all test instances in one vmapped call
    cost_iterations: tuple[int, ...] = (10, 20, 40, 80, 160)  # fixed-length solves, see cost_model

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


# smoke: CI in seconds; quick: a CPU in minutes; paper: the paper's budget (a GPU).
# The paper trains and solves in float64; the CPU budgets use float32 to stay in minutes.
# A spherical solve from zeros takes ~4000 iterations (seconds on a CPU core), so its smoke
# plan times one instance to the loose threshold 1e-1: a check of the plumbing only.
PLANS = {
    "smoke": {
        "mnist": Plan(30, 16, 3, (1e-2,), 1, 25, "float32", cost_iterations=(10, 20)),
        "spherical": Plan(5, 4, 1, (1e-1,), 1, 50, "float32", batched=False,
                          cost_iterations=()),
    },
    "quick": {
        "mnist": Plan(500, 128, 10, THRESHOLDS, 5, 25, "float32"),
        "spherical": Plan(200, 32, 3, (1e-2,), 1, 200, "float32"),
    },
    "paper": {
        "mnist": Plan(50_000, 128, 10, THRESHOLDS, 1, 25, "float64"),
        "spherical": Plan(50_000, 128, 10, THRESHOLDS, 1, 1000, "float64"),
    },
}


def plan_for(budget, family: str, **overrides) -> Plan:
    """The family's plan at ``budget`` (an ``otarena.budgets.Budget``), with overrides."""
    plan = PLANS[budget.profile][family]
    changes = {k: v for k, v in overrides.items() if v is not None}
    if budget.iterations is not None:
        changes["train_iterations"] = budget.iterations
    return Plan(**{**plan.__dict__, **changes})


# -- one initializer on one family: the record -----------------------------------------------

TIMING_METHOD = {
    "clock": "time.perf_counter around each call, after jax.block_until_ready on its result",
    "compile": "each timed function is compiled and run once on test instance 0 before timing",
    "dead_code_guard": "the timed functions return their results (the solve: f, g, iterations, "
                       "converged; the prediction: f), and all their work feeds those "
                       "results, so XLA cannot skip any of it",
    "per_instance": "median over `repeats` calls; table cells: mean and std over instances",
    "batched": "all test instances in one jax.vmap-ed call (throughput)",
    "cost_model": "solves of exactly n iterations for n in plan.cost_iterations, the call "
                  "alone (a solve's arguments, each read, and its outputs; no work) and the "
                  "initialization alone, each "
                  "compiled first, timed on all instances in turn, in rounds; each the "
                  "minimum over instances and rounds; least-squares line seconds = fixed + "
                  "n * per_iteration",
    "timed_work": "one jitted function solve(cost, a, b, initializer arrays) per initializer "
                  "and threshold: the initializer (Meta OT: MLP forward and the g(f) "
                  "half-step; Gaussian: the fit) and OTT's Sinkhorn to the threshold (a "
                  "constant of the program), no host round trip in between, returning what "
                  "a caller gets: f, g, the error history and the convergence flag (the "
                  "iteration count is read from the errors afterwards, as OTT's n_iters does; "
                  "OTT's regularized cost is not asked for, so not computed)",
    "prediction": "predict(params, a, b) -> f, the MLP alone, its own jitted call",
}


def sinkhorn_settings(family: ProblemFamily, plan: Plan) -> dict:
    return {"solver": "ott.solvers.linear.sinkhorn.Sinkhorn", "lse_mode": True,
            "inner_iterations": INNER_ITERATIONS, "max_iterations": MAX_ITERATIONS,
            "norm_error": 1, "error": "L1 marginal error of the coupling's column sums "
            "against b after each full iteration (its row sums match a exactly)",
            "geometry": "ott Geometry on the dense cost matrix, computed once per family",
            "cost": family.cost_name, "epsilon": family.epsilon, "dtype": plan.dtype}


def bench_initializer(family: ProblemFamily, name: str, cost: jax.Array, a: jax.Array,
                      b: jax.Array, init_args, plan: Plan, model=None,
                      log: Callable[[str], None] = print) -> dict:
    """Times to each threshold, iterations, batched throughput, error curves (a record body)."""
    args = instance_args(cost, a, b, init_args)
    thresholds = []
    for tau in plan.thresholds:
        solve = make_solve(name, family.epsilon, model, threshold=tau)
        timing = time_instances(solve, args, repeats=plan.repeats)
        iterations = [o["iterations"] if o["converged"] else None for o in timing.outputs]
        row = {"threshold": tau, "seconds": timing.seconds, **_prefixed("seconds", timing.seconds),
               "iterations": iterations, **_prefixed("iterations", iterations),
               "converged": [bool(o["converged"]) for o in timing.outputs],
               "compile_seconds": timing.compile_seconds}
        if plan.batched:
            row["batched"] = time_batched(solve, cost, a, b, init_args, repeats=plan.repeats)
        thresholds.append(row)
        log(f"  [{family.name} {name}] error <= {tau:g}: {row['seconds_mean']:.3g} s, "
            f"{row['iterations_mean']:.1f} iterations (mean of {len(a)})")
    metrics = {"thresholds": thresholds}
    if name in LEARNED:
        pred = time_instances(make_predict(model), [(init_args, ai, bi) for _, ai, bi, _ in args],
                              repeats=plan.repeats)
        metrics["prediction_seconds"] = {"per_instance": pred.seconds,
                                         **mean_std(pred.seconds)}
    if plan.cost_iterations:
        metrics["cost_model"] = cost_model(name, family.epsilon, cost, a, b, init_args,
                                           plan.cost_iterations, plan.repeats, model)
    errors = error_curves(name, family.epsilon, cost, a, b, init_args, plan.curve_iterations,
                          model)
    # 5 significant digits: the curves are for plots, and the paper-budget spherical
    # records would otherwise carry 10 x 1000 full-precision floats each.
    rounded = [[float(f"{e:.5g}") for e in row] for row in errors]
    curve = {"iterations": plan.curve_iterations, "errors": rounded,
             "first_below": {f"{tau:g}": [first_below(e, tau) for e in errors]
                             for tau in plan.thresholds}}
    return {"metrics": metrics, "curve": curve}


def _prefixed(prefix: str, values) -> dict:
    return {f"{prefix}_{k}": v for k, v in mean_std(values).items()}


# -- the suite ------------------------------------------------------------------------------

def identity(family: ProblemFamily, name: str, seed: int | None, budget, plan: Plan,
             model_key: str | None) -> dict:
    """What determines a record: also the device, since the numbers are wall clock.

    The family's resolved options (the MNIST grid, the population file) and the way its
    test instances were drawn are part of it, so records of different instance sets never
    share a run id, whether an option was given or defaulted.
    """
    from otarena.provenance import device_description
    from otarena.store import SCHEMA

    device = device_description()
    return {"schema": SCHEMA, "suite": SUITE, "pair": family.name, "solver": name,
            "solver_config": {"model": model_key, "sinkhorn": sinkhorn_settings(family, plan)},
            "seed": seed, "budget": budget.as_dict(), "plan": plan.as_dict(),
            "family_options": dict(family.options),
            "test_draws": family.provenance.get("test_draws"),
            "data_sha256": list(family.provenance.get("sha256", [])),
            "device_kind": {"platform": device["platform"], "kind": device["kind"]}}


def run_suite(budget, seeds: Sequence[int], store, families: Sequence[str] = ("mnist", "spherical"),
              initializers: Sequence[str] = INITIALIZERS, artifacts=None, force: bool = False,
              retrain: bool = False, family_options: Mapping[str, Mapping] | None = None,
              plan_overrides: Mapping[str, Any] | None = None,
              log: Callable[[str], None] = print) -> list[dict]:
    """Benchmark every (family, initializer[, seed]) not yet in ``store``; return their records.

    ``budget`` is an ``otarena.budgets.Budget`` (``iterations`` overrides the Meta OT training
    iterations); learned initializers get one record per seed, the others one in all.
    Trained models are cached under ``artifacts`` (see ``otarena.metaot.artifacts_dir``).
    """
    from otarena.provenance import stamp
    from otarena.store import run_id

    for name in initializers:
        if name not in INITIALIZERS:
            raise UnknownNameError(f"unknown initializer {name!r}; known: {', '.join(INITIALIZERS)}")
    family_options = family_options or {}
    done = set() if force else store.ids()
    wanted = []
    for fam_name in families:
        options = dict(family_options.get(fam_name, {}))
        family = load_family(fam_name, **options)
        plan = plan_for(budget, fam_name, **(plan_overrides or {}))
        log(f"{fam_name}: {len(family.x)} x {len(family.y)} atoms, eps {family.epsilon:g}, "
            f"budget {budget.profile}, {plan.dtype}, data {', '.join(family.provenance['files'])}")
        with jax.enable_x64(plan.dtype == "float64"):
            a, b, test_info = family.test_instances(plan.test_instances)
            x, y = family.points()
            cost = family.cost_matrix()
            for name in initializers:
                for seed in (seeds if name in LEARNED else [None]):
                    config = model = None
                    if name in LEARNED:
                        config = metaot.TrainConfig(
                            family=fam_name, family_provenance=dict(family.provenance),
                            iterations=plan.train_iterations, batch=plan.batch, seed=seed,
                            dtype=plan.dtype, trainer=LEARNED[name])
                    ident = identity(family, name, seed, budget, plan,
                                     config.key() if config else None)
                    rid = run_id(ident)
                    wanted.append(rid)
                    label = f"{fam_name} {name}" + ("" if seed is None else f" seed={seed}")
                    if rid in done:
                        log(f"[{label}] already in {store.root}, skipped")
                        continue
                    params = training = None
                    if config is not None:
                        trained = metaot.trained_model(
                            family, config, artifacts, retrain=retrain, log=log,
                            info={k: v for k, v in stamp().items() if k != "created"})
                        model = trained.model(len(family.x))
                        params = jax.device_put(trained.params)
                        training = {"config": dict(config.__dict__), "artifact": trained.artifact,
                                    "cached": trained.cached, "train_seconds": trained.train_seconds,
                                    "steady_seconds_per_iteration": trained.steady_seconds_per_iteration,
                                    "loss_curve": trained.curve, "diverged_at": trained.diverged_at,
                                    "trained_on": trained.info}
                    if training and training["diverged_at"] is not None:
                        # A model with NaN parameters is not an initializer: no timings.
                        log(f"[{label}] training diverged: recorded without timings")
                        status, body = "training diverged", {"metrics": {"thresholds": []},
                                                             "curve": None}
                    else:
                        body = bench_initializer(family, name, cost, a, b,
                                                 initializer_args(name, x, y, params), plan,
                                                 model, log=log)
                        converged = all(all(t["converged"]) for t in body["metrics"]["thresholds"])
                        status = "ok" if converged else "not converged"
                    record = {**ident, "run_id": rid, "status": status,
                              "family": fam_name, "variant": family.variant,
                              "initializer": name, "label": LABELS[name],
                              **body, "training": training,
                              "sinkhorn": sinkhorn_settings(family, plan),
                              "timing_method": TIMING_METHOD,
                              "test_instances": {"n": len(a), **test_info},
                              "data": dict(family.provenance),
                              **stamp()}
                    store.add(record, replace=force)
    wanted = set(wanted)
    return [r for r in store.records() if r["run_id"] in wanted]
