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

Timing method: each timed function is compiled and run once on instance 0 first, then
each instance is timed with ``time.perf_counter`` around the call and
``jax.block_until_ready``. The timed function returns a *witness*, a sum over every
output it computed (potentials, errors, iteration count; for the prediction-only timer,
the predicted potential), so the compiler cannot drop work whose result is unused (the
paper's prediction timer returned a constant, which lets XLA skip the MLP entirely).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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

    def points(self) -> tuple[jax.Array, jax.Array]:
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
        return jnp.asarray(self.x, dtype), jnp.asarray(self.y, dtype)

    def cost_matrix(self) -> jax.Array:
        return self.cost(*self.points())


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


def make_initializer(name: str, ctx: Mapping[str, Any], geom, model=None):
    """The OTT initializer ``name`` from traced context arrays (points, parameters)."""
    if name == "zeros":
        return initializers.DefaultInitializer()
    if name == "gaussian":
        return GaussianOnAtoms(ctx["x"], ctx["y"])
    if name == "meta-ot":
        return MetaOTInitializer(model, ctx["params"])
    if name == "ott-meta":
        return ott_meta_initializer(geom, model, ctx["params"])
    raise UnknownNameError(f"unknown initializer {name!r}; known: {', '.join(INITIALIZERS)}")


# -- the solve, the harness -----------------------------------------------------------------

def make_solver(threshold, inner_iterations: int = INNER_ITERATIONS,
                max_iterations: int = MAX_ITERATIONS, min_iterations: int = 0
                ) -> sinkhorn.Sinkhorn:
    """The one Sinkhorn every initializer gets (log domain; ``threshold`` may be traced)."""
    return sinkhorn.Sinkhorn(lse_mode=True, threshold=threshold, norm_error=1,
                             inner_iterations=inner_iterations, min_iterations=min_iterations,
                             max_iterations=max_iterations)


def make_solve(name: str, epsilon: float, model=None, **solver_options) -> Callable:
    """solve(ctx, a, b, threshold) -> potentials, errors, iterations, converged."""

    def solve(ctx, a, b, threshold):
        geom = geometry.Geometry(cost_matrix=ctx["cost"], epsilon=epsilon)
        problem = linear_problem.LinearProblem(geom, a=a, b=b)
        init = make_initializer(name, ctx, geom, model)(problem, lse_mode=True)
        out = make_solver(threshold, **solver_options)(problem, init=init)
        return {"f": out.f, "g": out.g, "errors": out.errors,
                "iterations": out.n_iters, "converged": out.converged}

    return solve


def make_predict(name: str, epsilon: float, model) -> Callable:
    """predict(ctx, a, b, threshold) -> the initial f alone (what the caption times)."""

    def predict(ctx, a, b, threshold):
        del threshold
        geom = geometry.Geometry(cost_matrix=ctx["cost"], epsilon=epsilon)
        problem = linear_problem.LinearProblem(geom, a=a, b=b)
        return {"f": make_initializer(name, ctx, geom, model).init_fu(problem, lse_mode=True)}

    return predict


def make_initialize(name: str, epsilon: float, model=None) -> Callable:
    """initialize(ctx, a, b, threshold) -> the (f, g) a solve starts from, and nothing more."""

    def initialize(ctx, a, b, threshold):
        del threshold
        geom = geometry.Geometry(cost_matrix=ctx["cost"], epsilon=epsilon)
        problem = linear_problem.LinearProblem(geom, a=a, b=b)
        f, g = make_initializer(name, ctx, geom, model)(problem, lse_mode=True)
        return {"f": f, "g": g}

    return initialize


def dispatch(ctx, a, b, threshold):
    """Reads one element of every argument of a solve: what a call costs with no work."""
    firsts = [jnp.ravel(leaf)[0].astype(jnp.float32)
              for leaf in jax.tree.leaves((ctx, a, b, threshold))]
    return {"firsts": jnp.stack(firsts)}


def witness(tree) -> jax.Array:
    """One number that depends on every element of every output (non-finite ones as 0)."""
    total = jnp.zeros((), jax.dtypes.canonicalize_dtype(jnp.float64))
    for leaf in jax.tree.leaves(tree):
        leaf = jnp.asarray(leaf)
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            leaf = jnp.where(jnp.isfinite(leaf), leaf, 0)
        total = total + jnp.sum(leaf.astype(total.dtype))
    return total


def guarded(fn: Callable) -> Callable:
    """fn -> (witness of all its outputs, its scalar outputs): nothing it computes is dead."""

    def run(*args):
        out = fn(*args)
        scalars = {k: v for k, v in out.items() if jnp.ndim(v) == 0}
        return witness(out), scalars

    return run


@dataclass
class Timing:
    seconds: list[float]  # per instance: median over the repeats
    outputs: list[dict]  # per instance: the scalar outputs (iterations, converged)
    compile_seconds: float


def time_instances(fn: Callable, ctx, a: jax.Array, b: jax.Array, threshold: float,
                   repeats: int = 1) -> Timing:
    """Compile, warm up on instance 0, then time every instance with block_until_ready."""
    timed = jax.jit(guarded(fn))
    start = time.perf_counter()
    jax.block_until_ready(timed(ctx, a[0], b[0], threshold))
    compile_seconds = time.perf_counter() - start
    seconds, outputs = [], []
    for i in range(len(a)):
        ai, bi = a[i], b[i]
        jax.block_until_ready((ai, bi))  # the slicing is not part of the solve
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = jax.block_until_ready(timed(ctx, ai, bi, threshold))
            runs.append(time.perf_counter() - start)
        seconds.append(float(np.median(runs)))
        outputs.append({k: np.asarray(v).item() for k, v in result[1].items()})
    return Timing(seconds, outputs, compile_seconds)


def time_batched(fn: Callable, ctx, a: jax.Array, b: jax.Array, threshold: float,
                 repeats: int = 1) -> dict:
    """All instances in one vmapped call: seconds per batch and instances per second."""
    timed = jax.jit(guarded(jax.vmap(fn, in_axes=(None, 0, 0, None))))
    jax.block_until_ready(timed(ctx, a, b, threshold))
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(timed(ctx, a, b, threshold))
        runs.append(time.perf_counter() - start)
    seconds = float(np.median(runs))
    return {"instances": len(a), "seconds": seconds, "instances_per_second": len(a) / seconds}


def error_curves(name: str, epsilon: float, ctx, a: jax.Array, b: jax.Array, iterations: int,
                 model=None) -> np.ndarray:
    """Marginal error after each of ``iterations`` Sinkhorn iterations, per instance."""
    # threshold -1 never converges, so every run does all iterations; OTT computes the
    # error only from min_iterations on, hence min_iterations stays 0.
    solve = make_solve(name, epsilon, model, inner_iterations=1, max_iterations=iterations)
    run = jax.jit(jax.vmap(lambda a, b: solve(ctx, a, b, -1.0)["errors"]))
    return np.asarray(run(a, b))


def cost_model(name: str, epsilon: float, ctx, a: jax.Array, b: jax.Array,
               iterations: Sequence[int], repeats: int = 3, model=None) -> dict:
    """Where the wall clock of a solve goes: call, initialization, fixed cost, iterations.

    Every test instance is solved for exactly n iterations for each n in ``iterations``
    (threshold -1 never converges; the error is still computed every 10 iterations, as in
    the timed solves), and a least-squares line through (n, seconds) splits a solve into a
    fixed cost and a cost per iteration. The fixed cost contains the call itself (timed
    alone by ``dispatch``) and the initialization (timed alone). On a small problem on a
    GPU the fixed cost can dominate; this is what says so.

    Fixed-length solves cost the same on every instance, so each part is the minimum over
    instances and rounds (noise on a shared machine only ever adds time); each round
    times every function on all instances in turn, so a slow spell cannot bias one of
    them.
    """
    timed = {"call": jax.jit(guarded(dispatch)),
             "initialization": jax.jit(guarded(make_initialize(name, epsilon, model)))}
    for n in iterations:
        timed[n] = jax.jit(guarded(make_solve(name, epsilon, model, max_iterations=n)))
    instances = jax.block_until_ready([(a[i], b[i]) for i in range(len(a))])  # not timed
    for key, fn in timed.items():  # compile, and check the solves ran n iterations
        for ai, bi in instances:
            out = jax.block_until_ready(fn(ctx, ai, bi, -1.0))[1]
            if key in iterations and int(out["iterations"]) != key:
                raise RuntimeError(f"a {key}-iteration solve ran {int(out['iterations'])}")
    samples = {key: [[] for _ in range(len(a))] for key in timed}
    for _ in range(max(repeats, 3)):
        for key, fn in timed.items():
            for i, (ai, bi) in enumerate(instances):  # back to back: warm, as a real loop
                start = time.perf_counter()
                jax.block_until_ready(fn(ctx, ai, bi, -1.0))
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


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


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
    "dead_code_guard": "the timed function returns a witness summing every output it computed "
                       "(potentials, errors, iterations; the prediction timer: f), so XLA "
                       "cannot skip work whose result is unused",
    "per_instance": "median over `repeats` calls; table cells: mean and std over instances",
    "batched": "all test instances in one jax.vmap-ed call (throughput)",
    "cost_model": "solves of exactly n iterations for n in plan.cost_iterations, the call "
                  "alone (every argument read, no work) and the initialization alone, each "
                  "compiled first, timed on all instances in turn, in rounds; each the "
                  "minimum over instances and rounds; least-squares line seconds = fixed + "
                  "n * per_iteration",
    "timed_work": "initializer (Meta OT: MLP forward and g(f) half-step) + Sinkhorn to the "
                  "threshold, one jitted function returning the potentials, the errors and "
                  "the iteration count (the regularized cost OTT can attach is not asked for)",
}


def sinkhorn_settings(family: ProblemFamily, plan: Plan) -> dict:
    return {"solver": "ott.solvers.linear.sinkhorn.Sinkhorn", "lse_mode": True,
            "inner_iterations": INNER_ITERATIONS, "max_iterations": MAX_ITERATIONS,
            "norm_error": 1, "error": "L1 marginal error of the coupling's column sums "
            "against b after each full iteration (its row sums match a exactly)",
            "geometry": "ott Geometry on the dense cost matrix, computed once per family",
            "cost": family.cost_name, "epsilon": family.epsilon, "dtype": plan.dtype}


def bench_initializer(family: ProblemFamily, name: str, ctx: Mapping[str, Any], a: jax.Array,
                      b: jax.Array, plan: Plan, model=None,
                      log: Callable[[str], None] = print) -> dict:
    """Times to each threshold, iterations, batched throughput, error curves (a record body)."""
    solve = make_solve(name, family.epsilon, model)
    thresholds = []
    for tau in plan.thresholds:
        timing = time_instances(solve, ctx, a, b, tau, repeats=plan.repeats)
        iterations = [o["iterations"] if o["converged"] else None for o in timing.outputs]
        row = {"threshold": tau, "seconds": timing.seconds, **_prefixed("seconds", timing.seconds),
               "iterations": iterations, **_prefixed("iterations", iterations),
               "converged": [bool(o["converged"]) for o in timing.outputs],
               "compile_seconds": timing.compile_seconds}
        if plan.batched:
            row["batched"] = time_batched(solve, ctx, a, b, tau, repeats=plan.repeats)
        thresholds.append(row)
        log(f"  [{family.name} {name}] error <= {tau:g}: {row['seconds_mean']:.3g} s, "
            f"{row['iterations_mean']:.1f} iterations (mean of {len(a)})")
    metrics = {"thresholds": thresholds}
    if name in LEARNED:
        pred = time_instances(make_predict(name, family.epsilon, model), ctx, a, b, 0.0,
                              repeats=plan.repeats)
        metrics["prediction_seconds"] = {"per_instance": pred.seconds,
                                         **mean_std(pred.seconds)}
    if plan.cost_iterations:
        metrics["cost_model"] = cost_model(name, family.epsilon, ctx, a, b,
                                           plan.cost_iterations, plan.repeats, model)
    errors = error_curves(name, family.epsilon, ctx, a, b, plan.curve_iterations, model)
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

def record_versions() -> dict:
    import ott

    from otarena.runner import versions
    return {**versions(), "ott-jax": ott.__version__}


def identity(family: ProblemFamily, name: str, seed: int | None, budget, plan: Plan,
             options: Mapping[str, Any], model_key: str | None) -> dict:
    """What determines a record: also the device, since the numbers are wall clock."""
    from otarena.runner import device_description
    from otarena.store import SCHEMA

    device = device_description()
    return {"schema": SCHEMA, "suite": SUITE, "pair": family.name, "solver": name,
            "solver_config": {"model": model_key, "sinkhorn": sinkhorn_settings(family, plan)},
            "seed": seed, "budget": budget.as_dict(), "plan": plan.as_dict(),
            "family_options": dict(options),
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
    from otarena.runner import device_description, git_state
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
            base_ctx = {"cost": family.cost_matrix(), "x": x, "y": y}
            for name in initializers:
                for seed in (seeds if name in LEARNED else [None]):
                    config = model = None
                    if name in LEARNED:
                        config = metaot.TrainConfig(
                            family=fam_name, family_provenance=dict(family.provenance),
                            iterations=plan.train_iterations, batch=plan.batch, seed=seed,
                            dtype=plan.dtype, trainer=LEARNED[name])
                    ident = identity(family, name, seed, budget, plan, options,
                                     config.key() if config else None)
                    rid = run_id(ident)
                    wanted.append(rid)
                    label = f"{fam_name} {name}" + ("" if seed is None else f" seed={seed}")
                    if rid in done:
                        log(f"[{label}] already in {store.root}, skipped")
                        continue
                    ctx, training = dict(base_ctx), None
                    if config is not None:
                        trained = metaot.trained_model(
                            family, config, artifacts, retrain=retrain, log=log,
                            info={"device": device_description(), "versions": record_versions(),
                                  "git": git_state()})
                        model = trained.model(len(family.x))
                        ctx["params"] = jax.device_put(trained.params)
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
                        body = bench_initializer(family, name, ctx, a, b, plan, model, log=log)
                        converged = all(all(t["converged"]) for t in body["metrics"]["thresholds"])
                        status = "ok" if converged else "not converged"
                    record = {**ident, "run_id": rid, "status": status,
                              "family": fam_name, "initializer": name, "label": LABELS[name],
                              **body, "training": training,
                              "sinkhorn": sinkhorn_settings(family, plan),
                              "timing_method": TIMING_METHOD,
                              "test_instances": {"n": len(a), **test_info},
                              "data": dict(family.provenance),
                              "device": device_description(), "versions": record_versions(),
                              "git": git_state(), "created": now()}
                    store.add(record, replace=force)
    wanted = set(wanted)
    return [r for r in store.records() if r["run_id"] in wanted]
