"""Initializers and the Meta OT objective against OTT-JAX and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from ott.geometry import geometry, pointcloud
from ott.initializers.linear import initializers
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn

from otarena.sinkhorn import family as sinkhorn_family
from otarena.sinkhorn import initializers as sinkhorn_initializers
from otarena.sinkhorn import metaot


@pytest.fixture(scope="module", params=["1d", "2d"])
def mnist_family(request):
    return sinkhorn_family.load_family("mnist", grid=request.param)


def _problem(cost, a, b, eps):
    return linear_problem.LinearProblem(geometry.Geometry(cost_matrix=cost, epsilon=eps), a=a, b=b)


def test_gaussian_initializer_matches_otts_and_the_closed_form(mnist_family):
    with jax.enable_x64(True):
        a, b, _ = mnist_family.test_instances(2)
        x, y = mnist_family.points()
        cost = mnist_family.cost_matrix()

        @jax.jit
        def ours(cost, a, b):
            problem = _problem(cost, a, b, mnist_family.epsilon)
            return sinkhorn_initializers.make_initializer("gaussian", (x, y), problem.geom)(problem, lse_mode=True)

        @jax.jit
        def otts(a, b):  # OTT's GaussianInitializer on the point-cloud problem, directly
            cloud = linear_problem.LinearProblem(pointcloud.PointCloud(x, y, epsilon=1e-2),
                                                 a=a, b=b)
            return initializers.GaussianInitializer()(cloud, lse_mode=True)

        f, g = ours(cost, a[1], b[1])
        f_ott, g_ott = otts(a[1], b[1])
    f, f_ott = np.asarray(f), np.asarray(f_ott)
    np.testing.assert_array_equal(np.isfinite(f), np.asarray(a[1]) > 0)  # zero weights: -inf
    np.testing.assert_allclose(f, f_ott, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(g), np.asarray(g_ott))

    # Independently: Brenier potential between the weighted Gaussian fits (unbiased
    # weighted covariance), times 2 for the |x - y|^2 cost, centred.
    pts, wa, wb = np.asarray(x), np.asarray(a[1]), np.asarray(b[1])

    def fit(w):
        m = w @ pts
        c = ((pts - m) * w[:, None]).T @ (pts - m) / (1 - w @ w)
        return m, c

    (ma, ca), (mb, cb) = fit(wa), fit(wb)
    root = scipy.linalg.sqrtm(ca).real
    inv_root = np.linalg.inv(root)
    transport = inv_root @ scipy.linalg.sqrtm(root @ cb @ root).real @ inv_root
    centred = pts - ma
    phi = 0.5 * (pts * pts).sum(1) - 0.5 * np.einsum("ni,ij,nj->n", centred, transport, centred) \
        - pts @ mb
    expected = 2 * phi - np.mean(2 * phi)
    keep = wa > 0
    np.testing.assert_allclose(f[keep], expected[keep], rtol=1e-8, atol=1e-10)


def test_meta_ot_initializer_gives_an_exact_b_marginal(mnist_family):
    with jax.enable_x64(True):
        a, b, _ = mnist_family.test_instances(1)
        a, b = a[0], b[0]
        model = metaot.MetaMLP(n_out=784, hidden=32, layers=2, dtype=jnp.float64)
        params = model.init(jax.random.key(3), jnp.zeros(1568, jnp.float64))["params"]
        cost = mnist_family.cost_matrix()

        @jax.jit
        def run(cost, a, b, params):
            problem = _problem(cost, a, b, mnist_family.epsilon)
            f, g = sinkhorn_initializers.make_initializer("meta-ot", params, problem.geom, model)(problem,
                                                                               lse_mode=True)
            marginal = problem.geom.marginal_from_potentials(f, g, axis=0)
            # OTT's own MetaInitializer with the same parameters
            f_ott, _ = sinkhorn_initializers.make_initializer("ott-meta", params, problem.geom, model)(problem,
                                                                                    lse_mode=True)
            return f, g, marginal, f_ott

        f, g, marginal, f_ott = run(cost, a, b, params)
        raw = jax.jit(lambda p, a, b: metaot.predict_f(model, p, a, b))(params, a, b)
    f, g = np.asarray(f), np.asarray(g)
    np.testing.assert_array_equal(np.isfinite(f), np.asarray(a) > 0)
    np.testing.assert_allclose(f[np.isfinite(f)], np.asarray(raw)[np.isfinite(f)])
    np.testing.assert_array_equal(np.isfinite(g), np.asarray(b) > 0)
    # g = g(f) is one exact half-step: the coupling's column sums are b
    np.testing.assert_allclose(np.asarray(marginal), np.asarray(b), atol=1e-13)
    np.testing.assert_allclose(np.asarray(f_ott), f)


def test_dual_objective_equals_otts_up_to_a_constant():
    """Differences of our objective between two f equal those of OTT's full dual."""
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.key(0), 5)
        x, y = jax.random.normal(k[0], (30, 2)), jax.random.normal(k[1], (40, 2))
        a = jax.random.uniform(k[2], (30,)) + 0.1
        b = jax.random.uniform(k[3], (40,)) + 0.1
        a, b = a / a.sum(), b / b.sum()
        geom = pointcloud.PointCloud(x, y, epsilon=0.1)
        problem = linear_problem.LinearProblem(geom, a=a, b=b)
        fs = 0.3 * jax.random.normal(k[4], (2, 30))

        @jax.jit
        def ours(f):
            return metaot.dual_objective(geom, f, a, b)

        @jax.jit
        def otts(f):
            return sinkhorn.compute_kl_reg_cost(f, metaot.g_from_f(geom, f, b), problem,
                                                lse_mode=True)

        np.testing.assert_allclose(ours(fs[0]) - ours(fs[1]), otts(fs[0]) - otts(fs[1]),
                                   rtol=1e-10)
        np.testing.assert_allclose(jax.jit(jax.grad(ours))(fs[0]), jax.jit(jax.grad(otts))(fs[0]),
                                   atol=1e-12)
        # Sinkhorn's solution maximizes it: better than a perturbed copy
        solve = jax.jit(lambda p: sinkhorn.Sinkhorn(threshold=1e-10, max_iterations=5000)(p).f)
        f_star = solve(problem)
        assert ours(f_star) > ours(f_star + 0.05 * fs[0])
