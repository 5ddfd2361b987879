"""The Pair contract: sampling, coupling, reversal, moments, devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otarena import pairs
from otarena.errors import UnknownNameError


def test_names():
    assert [f"hd-{d}" for d in (2, 4, 8, 16, 32, 64, 128, 256)] == list(pairs.families()["hd"].names)
    with pytest.raises(UnknownNameError, match="unknown pair 'hd-3'"):
        pairs.load("hd-3")


def test_samples_are_coupled_and_shaped():
    pair = pairs.load("hd-4")
    key = jax.random.key(7)
    x, y = pair.sample_source(key, 100), pair.sample_target(key, 100)
    assert x.shape == y.shape == (100, 4) and x.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), np.asarray(pair.true_map(x)), rtol=1e-6, atol=1e-6)
    cx, cy = pair.sample_coupled(key, 100)
    np.testing.assert_array_equal(np.asarray(cx), np.asarray(x))


def test_sampling_is_jittable_and_on_the_default_device():
    pair = pairs.load("hd-4")

    @jax.jit
    def step(key):
        kx, ky = jax.random.split(key)
        return pair.sample_source(kx, 64), pair.sample_target(ky, 64)

    x, y = step(jax.random.key(0))
    assert x.devices() == {jax.devices()[0]} == y.devices()


def test_reverse_swaps_source_and_target():
    pair = pairs.load("hd-8")
    rev = pairs.load("hd-8", reverse=True)
    key = jax.random.key(2)
    np.testing.assert_array_equal(np.asarray(rev.sample_source(key, 32)),
                                  np.asarray(pair.sample_target(key, 32)))
    np.testing.assert_array_equal(np.asarray(rev.sample_target(key, 32)),
                                  np.asarray(pair.sample_source(key, 32)))
    assert (rev.source_var, rev.target_var) == (pair.target_var, pair.source_var)
    np.testing.assert_array_equal(rev.source_cov, pair.target_cov)
    np.testing.assert_array_equal(rev.target_mean, pair.source_mean)
    assert rev.label == "hd-8:R" and rev.reversed().label == "hd-8"


@pytest.mark.parametrize("name", ["hd-2", "hd-16"])
def test_reversed_true_map_inverts_the_forward_map(name):
    pair = pairs.load(name)
    x = pair.sample_source(jax.random.key(4), 256)
    y = pair.true_map(x)
    back = pair.reversed().true_map(y)
    assert float(jnp.max(jnp.abs(back - x))) < 1e-4
    assert float(jnp.max(jnp.abs(pair.true_map(back) - y))) < 1e-5


def test_moments_of_the_target_are_estimated_consistently():
    pair = pairs.load("hd-4")
    assert np.trace(pair.target_cov) == pytest.approx(pair.target_var, rel=0.02)
    assert np.abs(pair.target_mean).max() < 0.03  # standardized: zero mean
    # the exact source moments
    assert np.trace(pair.source_cov) == pytest.approx(4.0, rel=1e-6)
