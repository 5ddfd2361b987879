"""L2-UVP and cosine follow Korotin et al.'s definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otarena import metrics, pairs


@pytest.fixture(scope="module")
def pair():
    return pairs.load("hd-8")


def test_true_map_scores_perfectly(pair):
    m = metrics.evaluate(pair, pair.true_map, None, size=4096)
    assert m["l2_uvp_fwd"] == pytest.approx(0.0, abs=1e-9)
    assert m["cos_fwd"] == pytest.approx(
        np.sqrt(empirical_cost(pair) / pair.cost), rel=1e-5)
    assert "l2_uvp_inv" not in m


def empirical_cost(pair, size=4096):
    x, y = metrics.evaluation_sample(pair, size)
    return 0.5 * float(jnp.mean(jnp.sum((x - y) ** 2, axis=1)))


def test_a_shifted_map_costs_its_shift(pair):
    shift = jnp.full((pair.dim,), 0.25)
    m = metrics.evaluate(pair, lambda x: pair.true_map(x) + shift, lambda y: y - shift)
    expected = 100 * float(jnp.sum(shift**2))
    assert m["l2_uvp_fwd"] == pytest.approx(expected / pair.target_var, rel=1e-4)
    # the inverse map y - shift misses the truth x by (y - x) - shift
    x, y = metrics.evaluation_sample(pair, 4096)
    direct = 100 * float(jnp.mean(jnp.sum((y - shift - x) ** 2, axis=1))) / pair.source_var
    assert m["l2_uvp_inv"] == pytest.approx(direct, rel=1e-4)


def test_identity_has_zero_cosine_and_official_uvp(pair):
    m = metrics.evaluate(pair, lambda x: x, lambda y: y)
    assert m["cos_fwd"] == 0.0 and m["cos_inv"] == 0.0
    c = empirical_cost(pair)
    assert m["l2_uvp_fwd"] == pytest.approx(100 * 2 * c / pair.target_var, rel=1e-4)
    assert m["l2_uvp_inv"] == pytest.approx(100 * 2 * c / pair.source_var, rel=1e-4)


def test_constant_map_is_about_100(pair):
    mean = jnp.asarray(pair.target_mean, jnp.float32)
    m = metrics.evaluate(pair, lambda x: jnp.broadcast_to(mean, x.shape), None, size=2**14)
    assert m["l2_uvp_fwd"] == pytest.approx(100.0, abs=3.0)


def test_cosine_of_a_halfway_map(pair):
    """x -> x + (T(x) - x)/2 points exactly along the true displacement."""
    m = metrics.evaluate(pair, lambda x: 0.5 * (x + pair.true_map(x)))
    assert m["cos_fwd"] == pytest.approx(np.sqrt(empirical_cost(pair) / pair.cost), rel=1e-4)
    assert m["l2_uvp_fwd"] == pytest.approx(100 * 0.5 * empirical_cost(pair) / pair.target_var,
                                            rel=1e-4)


def test_reversed_pair_swaps_the_directions(pair):
    forward = lambda x: 0.9 * pair.true_map(x)  # noqa: E731
    inverse = lambda y: y * 0.8  # noqa: E731
    m = metrics.evaluate(pair, forward, inverse)
    r = metrics.evaluate(pair.reversed(), inverse, forward)
    assert r["l2_uvp_fwd"] == pytest.approx(m["l2_uvp_inv"], rel=1e-6)
    assert r["l2_uvp_inv"] == pytest.approx(m["l2_uvp_fwd"], rel=1e-6)
    assert r["cos_fwd"] == pytest.approx(m["cos_inv"], rel=1e-6)


def test_evaluation_is_fixed_and_sized(pair):
    f = lambda x: x + 0.1  # noqa: E731
    a = metrics.evaluate(pair, f, size=8192)
    assert a == metrics.evaluate(pair, f, size=8192)
    assert a != metrics.evaluate(pair, f, size=4096)
    other = metrics.evaluate(pair, f, size=8192, key=jax.random.key(1))
    assert other["l2_uvp_fwd"] == pytest.approx(a["l2_uvp_fwd"], rel=0.05)
    with pytest.raises(ValueError):
        metrics.evaluate(pair, f, size=5000)
