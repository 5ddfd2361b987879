"""The Mix3 source is the official one, bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

DIMS = (2, 4, 8, 16, 32, 64, 128, 256)


def official_recipe(dim, num=3, dist=1, std=0.4):
    """RandomGaussianMixSampler.__init__ right after np.random.seed(0), transcribed."""
    np.random.seed(0)
    centers = np.zeros((num, dim), dtype=np.float32)
    for d in range(dim):
        idx = np.random.choice(list(range(num)), num, replace=False)
        centers[:, d] += dist * idx
    centers -= dist * (num - 1) / 2
    maps = np.random.normal(size=(num, dim, dim)).astype(np.float32)
    maps /= np.sqrt((maps ** 2).sum(axis=2, keepdims=True))
    mult = np.sqrt((centers ** 2).sum(axis=1).mean() + dim * std ** 2) / np.sqrt(dim)
    centers /= mult
    maps /= mult
    return centers, maps


@pytest.mark.parametrize("dim", DIMS)
def test_parameters_are_bit_identical_to_the_official_recipe(hd_module, dim):
    centers, maps = hd_module.mixture_parameters(dim)
    ref_centers, ref_maps = official_recipe(dim)
    assert centers.dtype == maps.dtype == np.float32
    assert centers.tobytes() == ref_centers.tobytes()
    assert maps.tobytes() == ref_maps.tobytes()


def test_global_rng_state_is_left_alone(hd_module):
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    hd_module.mixture_parameters(8)
    assert np.array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize("dim", (2, 16, 128))
def test_exact_moments_are_standardized(hd_module, dim):
    centers, maps = hd_module.mixture_parameters(dim)
    mean, cov = hd_module.mixture_moments(centers, maps)
    assert np.abs(mean).max() < 1e-7  # centers are permutations of {-1, 0, 1} / const
    assert np.trace(cov) == pytest.approx(dim, rel=1e-6)  # E|x|^2 = D by construction


@pytest.mark.parametrize("dim", (2, 16))
def test_jax_sampler_draws_the_mixture(hd_module, dim):
    centers, maps = hd_module.mixture_parameters(dim)
    mean, cov = hd_module.mixture_moments(centers, maps)
    n = 2**17
    x = np.asarray(hd_module.sample_mixture(jnp.asarray(centers), jnp.asarray(maps), 0.4,
                                            jax.random.key(3), n), np.float64)
    assert x.shape == (n, dim)
    # Monte Carlo error of a covariance entry is about sqrt(2/n) * scale of cov.
    assert np.abs(x.mean(0) - mean).max() < 6 * np.sqrt(cov.diagonal().max() / n)
    assert np.abs(np.cov(x.T) - cov).max() < 6 * np.sqrt(2.0 / n) * cov.diagonal().max()
    # Points sit on the components: the residual to the nearest center is the noise part.
    nearest = np.argmin(((x[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
    assert set(np.unique(nearest)) == {0, 1, 2}
