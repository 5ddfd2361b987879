"""The timing harness: dead-code guard, iteration counts, the two ways of counting."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otarena.sinkhorn import config as sinkhorn_config
from otarena.sinkhorn import initializers as sinkhorn_initializers
from otarena.sinkhorn import metaot
from otarena.sinkhorn import solve as sinkhorn_solve
from otarena.sinkhorn import timing as sinkhorn_timing


def _count(op: str, compiled_text: str) -> int:
    """How many ``op`` instructions an optimized (compiled) HLO module has."""
    return len(re.findall(rf"\s{op}\(", compiled_text))


@pytest.fixture(scope="module")
def small():
    """A small random problem and a small Meta OT model (the harness does not care)."""
    k = jax.random.split(jax.random.key(0), 4)
    x, y = jax.random.uniform(k[0], (20, 2)), jax.random.uniform(k[1], (30, 2))
    a = jax.random.uniform(k[2], (3, 20)) + 0.1
    b = jax.random.uniform(k[3], (3, 30)) + 0.1
    model = metaot.MetaMLP(n_out=20, hidden=64, layers=3)
    params = model.init(jax.random.key(1), jnp.zeros(50))["params"]
    cost = jnp.sum((x[:, None] - y[None]) ** 2, -1)
    return cost, (x, y), params, a / a.sum(1, keepdims=True), b / b.sum(1, keepdims=True), model


def _init_args(small, name):
    cost, (x, y), params, a, b, model = small
    return sinkhorn_initializers.initializer_args(name, x, y, params)


def test_the_prediction_is_one_small_call_that_xla_cannot_drop(small):
    cost, _, params, a, b, model = small
    predict = sinkhorn_solve.make_predict(model)
    # The hazard: the paper's prediction timer returned a constant, so the MLP compiles away.
    naive = jax.jit(lambda *args: (predict(*args), True)[1])
    assert _count("dot", naive.lower(params, a[0], b[0]).compile().as_text()) == 0
    hlo = jax.jit(predict).lower(params, a[0], b[0]).compile().as_text()
    assert _count("dot", hlo) >= model.layers + 1  # every layer of the MLP is computed
    assert _count("while", hlo) == 0  # the MLP and nothing else: no Sinkhorn
    f = jax.jit(predict)(params, a[0], b[0])
    np.testing.assert_array_equal(f, metaot.predict_f(model, params, a[0], b[0]))


def test_a_solve_is_one_program_from_prediction_to_the_last_iteration(small):
    """MLP, g(f) and the Sinkhorn loop compile into one program whose outputs are a user's."""
    cost, _, params, a, b, model = small
    solve = sinkhorn_solve.make_solve("meta-ot", 0.05, model, threshold=1e-3)
    lowered = jax.jit(solve).lower(cost, a[0], b[0], params)
    hlo = lowered.compile().as_text()
    assert _count("while", hlo) >= 1 and _count("dot", hlo) >= model.layers + 1
    # no callback to the host anywhere in the program
    assert "host_callback" not in hlo and "xla_python_cpu_callback" not in hlo
    # the threshold is a constant of the program: the arguments are cost, a, b, parameters
    assert len(jax.tree.leaves(lowered.args_info)) == 3 + len(jax.tree.leaves(params))
    # ... and the outputs are what a caller reads: f, g, the errors, converged
    assert len(jax.tree.leaves(jax.eval_shape(solve, cost, a[0], b[0], params))) == 4
    out = jax.jit(solve)(cost, a[0], b[0], params)
    assert isinstance(out, sinkhorn_solve.Solution) and out.f.shape == (20,) and out.g.shape == (30,)
    assert bool(out.converged) and int(out.iterations) % sinkhorn_config.INNER_ITERATIONS == 0
    # the same potentials as OTT's Sinkhorn run directly from the Meta OT initialization
    from ott.geometry import geometry
    from ott.problems.linear import linear_problem

    @jax.jit
    def direct(cost, a, b):
        problem = linear_problem.LinearProblem(geometry.Geometry(cost, epsilon=0.05), a=a, b=b)
        init = sinkhorn_initializers.MetaOTInitializer(model, params)(problem, lse_mode=True)
        return sinkhorn_solve.make_solver(1e-3)(problem, init=init)

    ref = direct(cost, a[0], b[0])
    np.testing.assert_allclose(out.f, ref.f, rtol=1e-6)
    assert int(out.iterations) == int(ref.n_iters)


def test_time_instances_reports_the_solves_it_timed(small):
    cost, _, _, a, b, _ = small
    solve = sinkhorn_solve.make_solve("zeros", 0.05, threshold=1e-4)
    timing = sinkhorn_timing.time_instances(solve, sinkhorn_timing.instance_args(cost, a, b, ()), repeats=2)
    assert len(timing.seconds) == 3 and all(s > 0 for s in timing.seconds)
    plain = jax.jit(solve)
    for i, out in enumerate(timing.outputs):
        ref = plain(cost, a[i], b[i], ())
        assert out["iterations"] == int(ref.iterations) and out["converged"]
        assert out["iterations"] % sinkhorn_config.INNER_ITERATIONS == 0
    batched = sinkhorn_timing.time_batched(solve, cost, a, b, ())
    assert batched["instances"] == 3 and batched["instances_per_second"] > 0


@pytest.mark.parametrize("name", ["zeros", "gaussian", "meta-ot"])
def test_checked_every_10_iterations_agrees_with_the_per_iteration_curve(small, name):
    """Iterations to a threshold with the error checked every 10 iterations are the
    per-iteration first crossing rounded up to the next multiple of 10."""
    cost, _, _, a, b, model = small
    tau, init_args = 1e-3, _init_args(small, name)
    curves = sinkhorn_timing.error_curves(name, 0.05, cost, a, b, init_args, 300, model)
    timing = sinkhorn_timing.time_instances(sinkhorn_solve.make_solve(name, 0.05, model, threshold=tau),
                               sinkhorn_timing.instance_args(cost, a, b, init_args))
    for errors, out in zip(curves, timing.outputs):
        first = sinkhorn_timing.first_below(errors, tau)
        assert first is not None
        assert out["iterations"] == 10 * int(np.ceil(first / 10))


def test_cost_model_splits_a_solve_into_fixed_cost_and_iterations():
    """Fixed-length solves run exactly n iterations, and the fit sees the iteration cost."""
    k = jax.random.split(jax.random.key(3), 3)
    x, y = jax.random.uniform(k[0], (300, 2)), jax.random.uniform(k[1], (300, 2))
    a = jnp.full((2, 300), 1 / 300)
    b = jax.random.uniform(k[2], (2, 300)) + 0.1
    cost = jnp.sum((x[:, None] - y[None]) ** 2, -1)
    model = sinkhorn_timing.cost_model("zeros", 0.01, cost, a, b / b.sum(1, keepdims=True), (), (10, 40, 160),
                          repeats=3)
    assert model["iterations"] == [10, 40, 160]
    assert np.shape(model["seconds"]) == (3, 2)  # counts x instances
    # 150 more iterations of a 300 x 300 log-domain Sinkhorn cost far more than timer noise
    assert np.mean(model["seconds"][2]) > np.mean(model["seconds"][0])
    assert model["seconds_per_iteration"] > 0 and model["r2"] > 0.5
    assert model["dispatch_seconds"] > 0 and model["initialization_seconds"] > 0


def test_time_split_is_the_sum_it_says():
    from otarena.reporting.sinkhorn_records import ratio, time_split

    def model(per_iteration, call, init):
        return {"seconds_per_iteration": per_iteration, "fixed_seconds": 1e-3,
                "dispatch_seconds": call, "initialization_seconds": init}

    zeros = time_split([model(1e-4, 2e-5, 2e-5)], iterations=30)
    meta = time_split([model(1e-4, 2e-5, 1.2e-4), model(1e-4, 2e-5, 1.2e-4)], iterations=10)
    assert zeros["initialization"] == 0 and zeros["algorithm"] == pytest.approx(3e-3)
    assert meta["initialization"] == pytest.approx(1e-4)
    assert meta["algorithm"] == pytest.approx(1e-4 + 1e-3)
    cells = {"zeros": {"cost": zeros}, "meta-ot": {"cost": meta}}
    assert ratio(cells, what="algorithm") == pytest.approx(3e-3 / 1.1e-3)
