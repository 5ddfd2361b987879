"""The JAX port of the HD ground truth agrees with an independent PyTorch implementation."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from benchmarks.torch_reference import OfficialStyleSampler
from otarena import data, pairs
from otarena.torch_io import load_state_dict
from tests.conftest import OFFICIAL_DIMS

CONSTANTS = json.loads((data.repo_root() / "datasets" / "hd_official_constants.json").read_text())


def reference(hd_module, dim):
    centers, maps = hd_module.mixture_parameters(dim)
    states = [load_state_dict(data.require(p), data.entry(p)) for p in hd_module.checkpoint_paths(dim)]
    c = CONSTANTS["dims"][str(dim)]
    return OfficialStyleSampler(dim, centers, maps, states, c["scale"], c["offset"])


@pytest.mark.parametrize("dim", OFFICIAL_DIMS)
def test_potential_and_map_match_pytorch(hd_module, dim):
    pair = pairs.load(f"hd-{dim}")
    ref = reference(hd_module, dim)
    x = pair.sample_source(jax.random.key(11), 2048)
    x_t = torch.tensor(np.asarray(x))
    psi, psi_ref = np.asarray(pair.potential(x)), ref.potential(x_t).numpy()
    t, t_ref = np.asarray(pair.true_map(x)), ref.push(x_t).numpy()
    assert np.abs(psi - psi_ref).max() <= 2e-6 * np.abs(psi_ref).max()
    assert np.linalg.norm(t - t_ref) <= 2e-6 * np.linalg.norm(t_ref)
    assert np.abs(t - t_ref).max() <= 1e-5 * np.abs(t_ref).max()


@pytest.mark.parametrize("dim", OFFICIAL_DIMS)
def test_true_map_is_jax_grad_of_the_potential(dim):
    pair = pairs.load(f"hd-{dim}")
    x = pair.sample_source(jax.random.key(5), 256)
    per_point = jax.vmap(jax.grad(lambda v: pair.potential(v[None])[0]))(x)
    np.testing.assert_allclose(np.asarray(pair.true_map(x)), np.asarray(per_point),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dim", OFFICIAL_DIMS)
def test_true_map_is_monotone(dim):
    """<T(x) - T(y), x - y> >= 0: T is the gradient of a convex function."""
    pair = pairs.load(f"hd-{dim}")
    k1, k2, k3 = jax.random.split(jax.random.key(dim), 3)
    x = pair.sample_source(k1, 4096)
    far = 3.0 * jax.random.normal(k2, x.shape)  # beyond the support too
    near = x + 1e-2 * jax.random.normal(k3, x.shape)
    for y in (pair.sample_source(k2, 4096), far, near):
        inner = jnp.sum((pair.true_map(x) - pair.true_map(y)) * (x - y), axis=1)
        # strong convexity: at least scale * 2 * 1e-2 |x - y|^2 (scale > 0.5 for every dim),
        # up to float32 rounding
        floor = 0.5 * 2e-2 * jnp.sum((x - y) ** 2, axis=1)
        assert bool(jnp.all(inner >= floor - 1e-4)), float(jnp.min(inner - floor))


@pytest.mark.parametrize("dim", (2, 64))
def test_checkpoints_are_convex_networks(hd_module, dim):
    stacked = hd_module.load_potentials(dim)
    for name, w in stacked.items():
        if name.startswith(("convex_layers", "final_layer")):
            assert float(w.min()) >= 0.0, name
