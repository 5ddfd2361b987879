"""Timing a solve as a user runs it, the cost model of a solve, the error curves, and the
body of a record: what one initializer measures on one family.

What is timed is one jitted ``solve(cost, a, b, init_args) -> Solution(f, g, errors,
converged)`` holding the initializer (Meta OT: MLP forward and the g(f) half-step;
Gaussian: the fit) and the whole Sinkhorn loop, with no host round trip in between. The
threshold is part of the compiled program (a Python float argument costs a transfer and a
slow dispatch on every call), the cost matrix, the weights and the initializer's arrays
are arguments, and the outputs are the potentials, the error history and the convergence
flag, so nothing is computed that a user would not get (XLA cannot drop work either:
everything feeds the potentials). Each function is compiled and run once on instance 0
first; then each instance is timed with ``time.perf_counter`` around the call and
``jax.block_until_ready``. The Meta OT prediction alone is its own small jitted call
``predict(params, a, b) -> f`` (the paper's prediction timer returned a constant, which
lets XLA skip the MLP entirely).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import numpy as np

from otarena.sinkhorn.family import Plan, ProblemFamily
from otarena.sinkhorn.config import LEARNED
from otarena.sinkhorn.solve import (Solution, _sinkhorn, call_only, make_initialize,
                                    make_predict, make_solve)

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
