"""Conjugate solvers recover argmin_x psi(x) - <x, y> for strongly convex quadratics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otarena import conjugate


def random_quadratic(key, dim=5, n=16):
    """psi(x) = 1/2 x'Ax + b'x with A SPD (eigenvalues in [0.5, 3]): x_hat = A^-1 (y - b)."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    q, _ = jnp.linalg.qr(jax.random.normal(k1, (dim, dim)))
    a = (q * jax.random.uniform(k2, (dim,), minval=0.5, maxval=3.0)) @ q.T
    b = jax.random.normal(k3, (dim,))
    y = jax.random.normal(k4, (n, dim))

    def psi_batch(x):
        return 0.5 * jnp.einsum("ni,ij,nj->n", x, a, x) + x @ b

    exact = jnp.linalg.solve(a, (y - b).T).T
    return psi_batch, y, exact


@pytest.mark.parametrize("solver", [
    conjugate.LBFGS(gtol=1e-6, max_iter=200),
    conjugate.Adam(gtol=1e-6, max_iter=3000, lr=0.05),
    conjugate.BatchAdam(tol=1e-6, max_iter=5000, lr=0.05),
], ids=["lbfgs", "adam", "batch-adam"])
def test_solvers_recover_the_exact_conjugate_point(solver):
    """In float64. In float32 a line search on function values stalls near 1e-3: close to the
    optimum the objective changes by less than its rounding (see the next test)."""
    with jax.enable_x64(True):
        psi_batch, y, exact = random_quadratic(jax.random.key(0))
        assert y.dtype == jnp.float64
        x0 = y + jax.random.normal(jax.random.key(1), y.shape)  # a warm start off the answer
        solution = jax.jit(lambda y, x0: solver.solve_batch(psi_batch, y, x0))(y, x0)
        assert float(jnp.max(jnp.abs(solution.x - exact))) < 1e-4


def test_lbfgs_in_float32_gets_as_close_as_float32_allows():
    psi_batch, y, exact = random_quadratic(jax.random.key(0))
    x0 = y + jax.random.normal(jax.random.key(1), y.shape)
    solution = conjugate.LBFGS(gtol=1e-6, max_iter=200).solve_batch(psi_batch, y, x0)
    assert float(jnp.max(jnp.abs(solution.x - exact))) < 5e-3


@pytest.mark.parametrize("name", ["lbfgs", "adam"])
def test_amos_settings_stop_at_the_gradient_tolerance(name):
    solver = conjugate.SETTINGS[name]
    psi_batch, y, exact = random_quadratic(jax.random.key(2), n=64)
    solution = jax.jit(lambda y, x0: solver.solve_batch(psi_batch, y, x0))(y, y)
    grad = jax.vmap(jax.grad(lambda x, yi: psi_batch(x[None])[0] - x @ yi))(solution.x, y)
    done = jnp.max(jnp.abs(grad), axis=1) < solver.gtol
    assert bool(jnp.all(done | (solution.iterations >= solver.max_iter)))
    assert int(solution.iterations.max()) <= solver.max_iter
    assert float(jnp.mean(done)) > 0.9  # a well-conditioned quadratic converges


def test_lbfgs_is_faster_than_adam_on_a_quadratic():
    psi_batch, y, _ = random_quadratic(jax.random.key(3), n=32)
    iters = {name: int(np.mean(conjugate.SETTINGS[name].solve_batch(psi_batch, y, y).iterations))
             for name in ("lbfgs", "adam")}
    assert iters["lbfgs"] < iters["adam"]


@pytest.mark.parametrize("name", ["lbfgs", "lbfgs-high-precision"])
def test_lbfgs_always_takes_a_step_as_w2ot(name):
    """w2ot tests convergence after a step, never before: a warm start within gtol still
    gets a step, so a fine-tuned conjugate ends closer than its start. (Returning the start
    unchanged made the regression loss exactly 0.)"""
    psi_batch, y, exact = random_quadratic(jax.random.key(4))
    start = exact + 1e-3 * jax.random.normal(jax.random.key(5), exact.shape)
    solution = conjugate.SETTINGS[name].solve_batch(psi_batch, y, start)
    assert int(solution.iterations.min()) >= 1
    before = float(jnp.max(jnp.abs(start - exact)))
    after = float(jnp.max(jnp.abs(solution.x - exact)))
    assert after < 0.9 * before


@pytest.mark.parametrize("line_search", ["parallel", "backtracking"])
def test_lbfgs_first_step_is_the_full_gradient_step(line_search):
    """The first direction is -grad J (inverse-Hessian scale 1, not capped at unit norm as
    optax's L-BFGS does): on J(x) = |x|^2/2 - <x, y> it lands on y in one step from any start."""
    y = jnp.array([[3.0, -4.0], [10.0, 2.0]])
    far = jnp.array([[-20.0, 30.0], [0.0, 0.0]])
    solver = conjugate.LBFGS(line_search=line_search, gtol=1e-3)
    solution = solver.solve_batch(lambda x: 0.5 * jnp.sum(x * x, axis=1), y, far)
    np.testing.assert_array_equal(np.asarray(solution.iterations), [1, 1])
    np.testing.assert_allclose(np.asarray(solution.x), np.asarray(y), rtol=1e-6)


def test_lbfgs_stops_after_max_iter_plus_one_steps_as_w2ot():
    """w2ot tests ``k >= max_iter`` before counting the step: at most max_iter + 1 steps."""
    psi_batch, y, _ = random_quadratic(jax.random.key(6), dim=8, n=4)
    solver = conjugate.LBFGS(gtol=0.0, max_iter=2, ftol=-1.0)  # never converges, never stalls
    assert int(solver.solve_batch(psi_batch, y, y + 5.0).iterations.max()) == 3


def test_the_settings_are_w2ots_two_lbfgs_configurations():
    fast, precise = conjugate.SETTINGS["lbfgs"], conjugate.SETTINGS["lbfgs-high-precision"]
    assert (fast.gtol, fast.line_search, fast.ls_evaluations) == (0.1, "parallel", 10)
    assert (precise.gtol, precise.line_search, precise.ls_evaluations) == (1e-3, "backtracking", 30)
    assert fast.max_iter == precise.max_iter == 100


def test_lanes_per_phase():
    assert conjugate.lanes_per_phase(1024) == (1024, 128, 16)
    assert conjugate.lanes_per_phase(100) == (100, 13, 2)
    assert conjugate.lanes_per_phase(8) == (8, 1)
    assert conjugate.lanes_per_phase(1) == (1,)


@pytest.mark.parametrize("name, largest_log_scale",
                         [("lbfgs", 3.0), ("lbfgs-high-precision", 3.0), ("adam", 0.5)])
def test_a_batch_solves_every_row_as_its_own_solve(name, largest_log_scale):
    """The phased batch takes, row by row, the steps the row takes alone: same iteration
    counts, same points up to float64 rounding. Targets from 1e-2 to 10^largest_log_scale
    on psi(x) = x'Ax/2 + |x|_4^4/4, started at 0: most rows stop early, a few run long, so
    every phase runs rows."""
    with jax.enable_x64(True):
        k1, k2, k3 = jax.random.split(jax.random.key(7), 3)
        dim, n = 6, 200
        q, _ = jnp.linalg.qr(jax.random.normal(k1, (dim, dim)))
        a = (q * jax.random.uniform(k2, (dim,), minval=0.5, maxval=3.0)) @ q.T

        def psi_batch(x):
            return 0.5 * jnp.einsum("ni,ij,nj->n", x, a, x) + 0.25 * jnp.sum(x ** 4, axis=1)

        y = jnp.logspace(-2, largest_log_scale, n)[:, None] * jax.random.normal(k3, (n, dim))
        solver = conjugate.SETTINGS[name]
        batch = jax.jit(lambda y: solver.solve_batch(psi_batch, y, jnp.zeros_like(y)))(y)
        alone = jax.jit(jax.vmap(lambda yi: solver.solve_batch(psi_batch, yi[None], 0 * yi[None])))(y)
        iterations = np.sort(np.asarray(batch.iterations))
        for lanes in conjugate.lanes_per_phase(n)[1:]:  # rows still run when each phase starts
            assert iterations[-1] > iterations[-lanes - 1]
        np.testing.assert_array_equal(np.asarray(batch.iterations), np.asarray(alone.iterations)[:, 0])
        np.testing.assert_allclose(np.asarray(batch.x), np.asarray(alone.x)[:, 0], rtol=0, atol=1e-9)


@pytest.mark.parametrize("line_search", ["parallel", "backtracking"])
def test_the_line_search_tries_exactly_ls_evaluations_sizes(line_search):
    """w2ot's sizes are 1.5^-i for i < ls_evaluations. On J(x) = 5 x^2 - x from 0 the first
    (gradient) step satisfies Armijo only from 1.5^-4 on: 4 sizes fail the solve at its first
    step, where it started; 5 take that size and go on to the minimum 0.1."""
    psi_batch = lambda x: 5.0 * jnp.sum(x ** 2, axis=1)  # noqa: E731
    y, x0 = jnp.ones((1, 1)), jnp.zeros((1, 1))

    def solve(evaluations):
        solver = conjugate.LBFGS(gtol=1e-4, line_search=line_search,
                                 ls_evaluations=evaluations)
        return jax.jit(lambda: solver.solve_batch(psi_batch, y, x0))()

    short, enough = solve(4), solve(5)
    assert int(short.iterations[0]) == 1 and float(short.x[0, 0]) == 0.0
    assert int(enough.iterations[0]) > 1
    assert float(enough.x[0, 0]) == pytest.approx(0.1, abs=1e-4)
