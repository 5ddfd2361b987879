"""Meta OT training (the on-device scan loop, OTT's MetaInitializer) and the model cache."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otarena.sinkhorn import artifacts
from otarena.sinkhorn import family as sinkhorn_family
from otarena.sinkhorn import metaot


@pytest.fixture(scope="module")
def family():
    return sinkhorn_family.load_family("mnist")


def _config(family, **changes):
    # The real training code at a small width, so CI trains in seconds.
    base = metaot.TrainConfig(family="mnist", family_provenance=dict(family.provenance),
                              iterations=40, batch=16, hidden=128, layers=3, dtype="float32")
    return dataclasses.replace(base, **changes)


def _held_out_objective(family, trained):
    a, b = jax.jit(family.sample_train, static_argnums=1)(jax.random.key(12345), 64)
    model = trained.model(len(family.x))
    geom = metaot.gibbs_geometry(family.cost_matrix(), family.epsilon)

    @jax.jit
    def objective(params):
        f = jax.vmap(lambda a, b: metaot.predict_f(model, params, a, b))(a, b)
        return jnp.mean(jax.vmap(lambda f, a, b: metaot.dual_objective(geom, f, a, b))(f, a, b))

    return objective


def test_training_raises_the_dual_objective_on_unseen_pairs(family):
    config = _config(family)
    trained = metaot.train(family, config, chunk=10, log=lambda _: None)
    objective = _held_out_objective(family, trained)
    before = metaot.init_params(config, 2 * 784, 784)
    assert objective(trained.params) > objective(before) + 1e-3
    assert [c["iteration"] for c in trained.curve] == [10, 20, 30, 40]


def test_batches_do_not_depend_on_the_chunking(family):
    config = _config(family, iterations=12)
    one = metaot.train(family, config, chunk=6, log=lambda _: None)
    other = metaot.train(family, config, chunk=4, log=lambda _: None)
    for x, y in zip(jax.tree.leaves(one.params), jax.tree.leaves(other.params)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_otts_meta_initializer_trains_on_the_same_batches(family):
    """With no zero weights in b, OTT's loss equals ours up to a constant: same model."""
    config = _config(family, iterations=6, batch=8)
    no_zero_b = dataclasses.replace(family, sample_train=lambda key, n: (
        family.sample_train(key, n)[0], jnp.full((n, 784), 1 / 784, jnp.float32)))
    ours = metaot.train(no_zero_b, config, chunk=3, log=lambda _: None)
    otts = metaot.train(no_zero_b, dataclasses.replace(config, trainer="ott"), log=lambda _: None)
    for x, y in zip(jax.tree.leaves(ours.params), jax.tree.leaves(otts.params)):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-5)


def test_models_are_cached_by_config(family, tmp_path):
    config = _config(family, iterations=5)
    lines = []
    first = artifacts.trained_model(family, config, artifacts=tmp_path, log=lines.append)
    assert not first.cached and (tmp_path / config.key() / "params.msgpack").is_file()
    lines.clear()
    again = artifacts.trained_model(family, config, artifacts=tmp_path, log=lines.append)
    assert again.cached and lines == [f"  using cached model {tmp_path / config.key()}"]
    for x, y in zip(jax.tree.leaves(first.params), jax.tree.leaves(again.params)):
        np.testing.assert_array_equal(x, y)
    assert again.curve == first.curve
    # anything that determines the model changes the key
    for change in ({"seed": 1}, {"iterations": 6}, {"dtype": "float64"}, {"trainer": "ott"},
                   {"family_provenance": {"sha256": ["other"]}}):
        assert dataclasses.replace(config, **change).key() != config.key()
    lines.clear()
    artifacts.trained_model(family, config, artifacts=tmp_path, retrain=True, log=lines.append)
    assert not any("cached" in line for line in lines)


def test_artifacts_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv(artifacts.ARTIFACTS_ENV, str(tmp_path / "env"))
    assert artifacts.artifacts_dir() == tmp_path / "env"
    assert artifacts.artifacts_dir(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv(artifacts.ARTIFACTS_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert artifacts.artifacts_dir() == tmp_path / "cache" / "otarena" / "artifacts"


@pytest.mark.parametrize("trainer", ["otarena", "ott"])
def test_a_diverging_training_stops_and_says_so(family, trainer, tmp_path):
    """Weights with a NaN make the loss NaN from some step on: training stops there."""
    def poisoned(key, n):
        a, b = family.sample_train(key, n)
        step_is_late = jax.random.uniform(key) < 0.5  # some steps fine, then a NaN one
        return jnp.where(step_is_late, a * jnp.nan, a), b

    config = _config(family, iterations=30, trainer=trainer)
    sick = dataclasses.replace(family, sample_train=poisoned)
    lines = []
    trained = artifacts.trained_model(sick, config, artifacts=tmp_path, log=lines.append)
    assert trained.diverged_at is not None and 1 <= trained.diverged_at <= 30
    assert any("diverged" in line for line in lines)
    assert artifacts.trained_model(sick, config, artifacts=tmp_path, log=lines.append).diverged_at \
        == trained.diverged_at  # the cache keeps the verdict


def test_paper_plan_keeps_float32_parameters_and_computes_in_float64(family, tmp_path):
    """As the paper's model: nn.Dense(dtype=float64) under flax's default param_dtype float32."""
    from otarena.budgets import Budget

    plan = sinkhorn_family.plan_for(Budget("paper"), "mnist")
    config = _config(family, iterations=3, batch=4, hidden=16, dtype=plan.dtype)
    assert plan.dtype == "float64" and config.param_dtype == "float32"
    trained = artifacts.trained_model(family, config, artifacts=tmp_path, log=lambda _: None)
    again = artifacts.trained_model(family, config, artifacts=tmp_path, log=lambda _: None)
    for params in (trained.params, again.params):  # trained, and as read back from the cache
        assert {p.dtype for p in jax.tree.leaves(params)} == {np.dtype("float32")}
    with jax.enable_x64(True):
        a, b = family.sample_train(jax.random.key(0), 1)
        f = metaot.predict_f(trained.model(784), trained.params, a[0], b[0])
        assert f.dtype == jnp.float64
        # float64 arithmetic on the float32 weights, layer by layer
        z = jnp.concatenate([a[0], b[0]])
        layers = [trained.params[f"Dense_{i}"] for i in range(len(trained.params))]
        for i, layer in enumerate(layers):
            z = z @ layer["kernel"].astype(jnp.float64) + layer["bias"].astype(jnp.float64)
            z = jax.nn.relu(z) if i < len(layers) - 1 else z
        np.testing.assert_allclose(f, z, rtol=1e-12, atol=1e-12)
    assert dataclasses.replace(config, param_dtype="float64").key() != config.key()
    with pytest.raises(ValueError, match="param_dtype"):
        dataclasses.replace(config, param_dtype="float16")


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("trainer", ["otarena", "ott"])
def test_training_resumes_from_its_checkpoint_with_the_same_model(family, tmp_path, trainer):
    """Killed after 20 of 30 iterations, the run resumes from the runner's checkpoint and
    ends with the model of an uninterrupted run (same batches, same optimizer state)."""
    from otarena import runtime

    config = _config(family, iterations=30, batch=4, hidden=32, layers=1, trainer=trainer)
    whole = metaot.train(family, config, chunk=10, log=lambda _: None)

    stop_at = 21 if trainer == "ott" else 20  # OTT's loop reports every 3 iterations here

    def stop_after_20(done, planned):
        if done == stop_at:
            raise Interrupt

    stem = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        with runtime.running(runtime.RunContext(stem, 0.0, stop_after_20)):
            metaot.train(family, config, chunk=10, log=lambda _: None)
    assert len(list(tmp_path.glob("ckpt-*.pkl"))) == 1
    seen = []
    with runtime.running(runtime.RunContext(stem, 0.0, lambda d, p: seen.append(d))):
        resumed = metaot.train(family, config, chunk=10, log=lambda _: None)
    assert seen[0] > 20 and seen[-1] == 30  # only what was left was trained again
    assert [c["iteration"] for c in resumed.curve] == [c["iteration"] for c in whole.curve]
    np.testing.assert_allclose([c["loss"] for c in resumed.curve],
                               [c["loss"] for c in whole.curve], rtol=1e-6)
    for x, y in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(whole.params)):
        np.testing.assert_array_equal(x, y)
    assert resumed.train_seconds > 0
