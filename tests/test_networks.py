"""The trainable networks: convexity where promised, shapes, identity-friendly inits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otarena.models import dense_icnn, networks


def monotone_gap(model, params, dim, key, n=2048):
    """min over random pairs of <grad psi(x) - grad psi(y), x - y> (>= 0 iff monotone)."""
    k1, k2 = jax.random.split(key)
    x = 4 * jax.random.normal(k1, (n, dim))
    y = x + jax.random.normal(k2, (n, dim)) * jnp.exp(jax.random.normal(k2, (n, 1)))
    g = model.push(params, x) - model.push(params, y)
    return float(jnp.min(jnp.sum(g * (x - y), axis=1)))


def perturbed(params, key, scale=1.0):
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [p + scale * jax.random.normal(k, p.shape)
                                     for p, k in zip(leaves, keys)])


@pytest.mark.parametrize("dim", [2, 16])
def test_icnn_is_convex_for_any_parameters(dim):
    model = networks.build("icnn", dim)
    params = model.init(jax.random.key(0), jax.random.normal(jax.random.key(1), (64, dim)))
    assert monotone_gap(model, params, dim, jax.random.key(2)) >= -1e-4
    # convexity holds by construction, not by luck of the initialization
    assert monotone_gap(model, perturbed(params, jax.random.key(3)), dim, jax.random.key(4)) >= -1e-3


def test_dense_icnn_is_convex_after_projection():
    model = networks.build("dense-icnn", 8)
    raw = perturbed(model.init(jax.random.key(0), None), jax.random.key(1), 0.5)
    assert any(float(v.min()) < 0 for k, v in raw.items() if k.startswith("convex_layers"))
    projected = model.project(raw)
    assert all(float(v.min()) >= 0 for k, v in projected.items()
               if k.startswith(("convex_layers", "final_layer")))
    assert monotone_gap(model, projected, 8, jax.random.key(2)) >= -1e-4


def test_non_convex_dense_net_is_not_projected():
    model = networks.build("dense-nn", 8)
    raw = perturbed(model.init(jax.random.key(0), None), jax.random.key(1), 0.5)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), model.project(raw), raw))


def test_mlp_potential_has_a_learnable_quadratic():
    model = networks.build("mlp", 4)
    x = jax.random.normal(jax.random.key(0), (10, 4))
    params = model.init(jax.random.key(1), x)
    assert params["log_alpha"].shape == ()
    assert model.apply(params, x).shape == (10,)


def test_residual_mlp_is_identity_plus_mlp():
    model = networks.build("residual-mlp", 3)
    y = jax.random.normal(jax.random.key(0), (5, 3))
    params = model.init(jax.random.key(1), y)
    zeroed = jax.tree.map(jnp.zeros_like, params)
    np.testing.assert_allclose(np.asarray(model.push(zeroed, y)), np.asarray(y))
    assert not model.is_potential


def test_hidden_sizes_follow_the_papers():
    assert networks.amos_hidden_sizes(2) == [64, 64, 32] == dense_icnn.hidden_sizes(2)
    assert networks.amos_hidden_sizes(128) == [256, 256, 128] == dense_icnn.hidden_sizes(128)


def test_korotin_init_is_normal_with_std_01():
    params = networks.build("dense-icnn", 64).init(jax.random.key(0), None)
    values = np.concatenate([np.ravel(v) for v in params.values()])
    assert abs(values.std() - 0.1) < 0.005 and abs(values.mean()) < 0.005
