"""What the engine gained for image networks: training-mode forwards with their own keys,
batch-norm running statistics, per-profile batch sizes, chunked evaluation, cube pretraining."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otarena import pairs
from otarena.budgets import Budget
from otarena.dual import DualSpec, Engine, Pretrain
from otarena.dual.engine import _chunked, _sample_pretraining
from otarena.models.networks import Model

# psi(x) = a/2 |x|^2; in training mode a noisy version a/2 |x|^2 + key-dependent offset.
QUADRATIC = Model("quadratic", init=lambda k, x: {"a": jnp.array(2.0)},
                  apply=lambda p, x: 0.5 * p["a"] * jnp.sum(x * x, axis=1), is_potential=True)
NOISY = dataclasses.replace(
    QUADRATIC, name="noisy",
    train_apply=lambda p, x, key: (0.5 * p["a"] * jnp.sum(x * x, axis=1)
                                   + jax.random.normal(key, (x.shape[0],))))


def _record_mean(old, new, x):
    """A stand-in 'running statistic': the mean of the batch the network was trained on."""
    return {**new, "seen": jnp.mean(x, axis=0)}


SCALING = Model("scaling", init=lambda k, x: {"c": jnp.array(0.5), "seen": jnp.zeros(2)},
                apply=lambda p, y: p["c"] * y, is_potential=False, update_stats=_record_mean)


def engine(spec=None, budget=Budget("smoke"), psi=QUADRATIC, h=SCALING):
    spec = spec or DualSpec(potential="icnn", amortizer="residual-mlp", amortization="objective",
                            conjugate_solver=None, batch_size=8)
    e = Engine(pairs.load("hd-2"), spec, budget)
    e.psi, e.h = psi, h
    return e


def test_training_mode_forwards_draw_their_own_keys():
    e = engine(psi=NOISY)
    x = jnp.ones((4, 2))
    psi, h = {"a": jnp.array(1.0)}, {"c": jnp.array(0.5), "seen": jnp.zeros(2)}
    a = e.losses(psi, h, x, x, jax.random.key(0))[1]["dual"]
    b = e.losses(psi, h, x, x, jax.random.key(1))[1]["dual"]
    assert float(a) != float(b)  # the training-mode potential is used, with the step's key
    det = engine()  # deterministic networks: no randomness at all
    assert float(det.losses(psi, h, x, x, jax.random.key(0))[1]["dual"]) == \
        float(det.losses(psi, h, x, x, jax.random.key(1))[1]["dual"])
    # eval-mode maps and scores ignore dropout
    np.testing.assert_array_equal(np.asarray(e.push_forward(psi, x)), np.asarray(x))


def test_running_statistics_follow_the_batches_of_the_amortizer():
    e = engine()
    state = e.init_state(jax.random.key(0), 0)
    new, _ = e.train_step(state, 0)
    _, ky, _ = jax.random.split(jax.random.fold_in(state["key"], 0), 3)
    y = e.pair.sample_target(ky, e.batch_size)
    np.testing.assert_allclose(np.asarray(new["h"]["seen"]), np.asarray(jnp.mean(y, axis=0)),
                               rtol=1e-6)


def test_maximin_inner_steps_refresh_statistics_on_their_own_batches():
    spec = DualSpec(potential="icnn", amortizer="residual-mlp", amortization="objective",
                    conjugate_solver=None, amortizer_steps=3, batch_size=8)
    e = engine(spec)
    state = e.init_state(jax.random.key(0), 0)
    new, _ = e.train_step(state, 0)
    *_, kc = jax.random.split(jax.random.fold_in(state["key"], 0), 3)
    last = jax.random.split(jax.random.fold_in(kc, 0x1A4E), 3)[-1]
    y_last = e.pair.sample_target(last, e.batch_size)
    np.testing.assert_allclose(np.asarray(new["h"]["seen"]), np.asarray(jnp.mean(y_last, axis=0)),
                               rtol=1e-6)


def test_batch_size_per_budget_profile():
    spec = DualSpec(potential="icnn", amortizer="residual-mlp", amortization="objective",
                    conjugate_solver=None, batch_size={"smoke": 4, "quick": 64, "paper": 64})
    assert Engine(pairs.load("hd-2"), spec, Budget("smoke")).batch_size == 4
    assert Engine(pairs.load("hd-2"), spec, Budget("paper")).batch_size == 64
    assert Engine(pairs.load("hd-2"), dataclasses.replace(spec, batch_size=32),
                  Budget("smoke")).batch_size == 32


@pytest.mark.parametrize("n", [7, 8, 21])
def test_chunked_evaluation_equals_one_call(n):
    x = jax.random.normal(jax.random.key(n), (n, 3))
    fn = lambda v: jnp.sin(v) * jnp.sum(v, axis=1, keepdims=True)  # noqa: E731 (row-wise)
    np.testing.assert_allclose(np.asarray(_chunked(fn, x, 4)), np.asarray(fn(x)), rtol=1e-6)


def test_cube_pretraining_sampler_is_korotins_centered_unit_cube_times_blow():
    pre = Pretrain(sampler="centered-cube", scale=4.0)
    x = np.asarray(_sample_pretraining(pre, jax.random.key(0), 4096, 3))
    assert x.min() >= -2.0 and x.max() < 2.0
    assert abs(x.mean()) < 0.05 and abs(x.var() - 16 / 12) < 0.05


def test_an_unknown_pretraining_sampler_is_refused():
    with pytest.raises(ValueError, match="cube"):
        _sample_pretraining(Pretrain(sampler="cube"), jax.random.key(0), 4, 3)
