"""The solve every initializer gets, as one function to jit: the initializer and OTT's
log-domain Sinkhorn (``lse_mode=True``, error checked every ``INNER_ITERATIONS`` = 10
iterations as in the paper, at most ``MAX_ITERATIONS``) on a dense cost matrix, returning
what a caller gets and nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from ott.geometry import geometry
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn

from otarena.sinkhorn import metaot
from otarena.sinkhorn.config import INNER_ITERATIONS, MAX_ITERATIONS
from otarena.sinkhorn.family import THRESHOLDS
from otarena.sinkhorn.initializers import make_initializer



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
