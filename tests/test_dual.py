"""The training engine: amortization losses, gradient flow, divergence, vmapped seeds."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from otarena import map_task, pairs, solver
from otarena.reporting import family_tables, map_records
from otarena.budgets import Budget
from otarena.dual import BestIterate, DualSpec, Engine, Optimizer, StopRule, train
from otarena.models.networks import Model
from otarena.store import Store

# psi(x) = a/2 |x|^2 (grad psi = a x) and H(y) = c y: every loss has a closed form.
A, C, W = 3.0, 0.5, 2.0
QUADRATIC = Model("quadratic", init=lambda k, x: {"a": jnp.array(2.0)},
                  apply=lambda p, x: 0.5 * p["a"] * jnp.sum(x * x, axis=1), is_potential=True)
SCALING = Model("scaling", init=lambda k, x: {"c": jnp.array(0.5)},
                apply=lambda p, y: p["c"] * y, is_potential=False)
X = jnp.array([[1.0, 2.0], [-1.0, 0.5]])
Y = jnp.array([[0.5, -1.0], [2.0, 1.0]])
X_HAT = jnp.array([[0.3, -0.4], [0.9, 0.6]])  # a "fine-tuned" conjugate point


def engine(amortization, conjugate=None):
    spec = DualSpec(potential="icnn", amortizer="residual-mlp", amortization=amortization,
                    conjugate_solver=conjugate)
    e = Engine(pairs.load("hd-2"), spec, Budget("smoke"))
    e.psi, e.h, e.cycle_weight = QUADRATIC, SCALING, W
    return e


def amortization(kind):
    e = engine(kind, "lbfgs" if kind in ("regression", "cycle-finetune") else None)
    psi, h = {"a": jnp.array(A)}, {"c": jnp.array(C)}
    value = e.amortization_loss(psi, h, SCALING.apply(h, Y), X_HAT, X, Y)
    grad_psi = jax.grad(lambda p: e.amortization_loss(p, h, SCALING.apply(h, Y), X_HAT, X, Y))(psi)
    return float(value), float(grad_psi["a"])


def test_objective_loss():
    value, grad_psi = amortization("objective")
    hy = C * Y  # E[psi(H(y)) - <H(y), y>] = E[a/2 |c y|^2 - c |y|^2]
    expected = np.mean(0.5 * A * np.sum(hy**2, 1) - np.sum(hy * Y, 1))
    assert value == pytest.approx(float(expected))
    assert grad_psi == 0.0  # psi is frozen in the amortization loss


def test_regression_loss():
    value, grad_psi = amortization("regression")
    assert value == pytest.approx(float(np.mean((C * Y - X_HAT) ** 2)))
    assert grad_psi == 0.0


def test_cycle_loss_trains_psi_too():
    value, grad_psi = amortization("cycle")
    # w (mean|a c y - y|^2 + mean|c a x - x|^2)
    expected = W * (np.mean((A * C * Y - Y) ** 2) + np.mean((C * A * X - X) ** 2))
    assert value == pytest.approx(float(expected))
    assert grad_psi != 0.0


def test_cycle_finetune_loss_is_one_sided_with_psi_frozen():
    value, grad_psi = amortization("cycle-finetune")
    assert value == pytest.approx(W * float(np.mean((A * C * Y - Y) ** 2)))
    assert grad_psi == 0.0


def test_none_loss_is_zero():
    assert amortization("none") == (0.0, 0.0)


def test_dual_loss_detaches_the_conjugate_point():
    e = engine("objective")
    psi, h = {"a": jnp.array(A)}, {"c": jnp.array(C)}
    total, aux = e.losses(psi, h, X, Y, jax.random.key(0))
    hy = C * Y
    dual = np.mean(0.5 * A * np.sum(X**2, 1)) + np.mean(np.sum(hy * Y, 1) - 0.5 * A * np.sum(hy**2, 1))
    assert float(aux["dual"]) == pytest.approx(float(dual))
    # d dual / d a = E|x|^2/2 - E|x_hat|^2/2 with x_hat held fixed
    g = jax.grad(lambda p: e.losses(p, h, X, Y, jax.random.key(0))[1]["dual"])(psi)
    expected = 0.5 * np.mean(np.sum(X**2, 1)) - 0.5 * np.mean(np.sum(hy**2, 1))
    assert float(g["a"]) == pytest.approx(float(expected))


def _exploding(stop, iterations=200, every=20, amortization="cycle"):
    return DualSpec(potential="mlp", amortizer="residual-mlp", amortization=amortization,
                    conjugate_solver=None, optimizer=Optimizer(lr=50.0, cosine_final_fraction=None),
                    iterations={"smoke": iterations}, pretrain_steps={"smoke": 10},
                    eval_every={"smoke": every}, stop=stop)


def test_a_diverging_run_stops_at_a_logged_iteration_as_w2ot(tmp_path):
    """w2ot checks the total loss of the batch at the logged iterations (the first and every
    1000th; every 20th here) and exits there: the run is recorded as diverged, with the
    iterations it ran and the metrics of the parameters it stopped with."""
    spec = _exploding(StopRule(every=20, bound=1e5))
    boom = solver.Solver("boom", lambda p, k, b: train(p, spec, k[None], b)[0], {"lr": 50.0})
    cell = map_task.Cell("hd-2", False, boom, 0, Budget("smoke"), 4096)
    [record] = map_task.run_cells([cell])
    assert record["status"] == "diverged"
    assert record["iterations"] < 200 and record["iterations"] % 20 == 0
    assert record["curve"][-1]["stopped"] and record["curve"][-1]["iteration"] == record["iterations"]
    Store(tmp_path).add(record)
    table = family_tables.table(map_records.frame(Store(tmp_path).records()), "hd", "l2_uvp_fwd")
    assert table.loc["boom", "hd-2"] == ">100 (1 unstable)"


def test_the_stop_rule_reads_the_total_loss_not_its_terms():
    """w2ot exits on the total loss of a logged iteration, never on its terms. With objective
    amortization and no fine-tuning, psi's blow-up enters the dual and the amortization terms
    with opposite signs (~1e23 each here), so the total mostly cancels and w2ot lets such a run
    go on (its UVP enters the seed mean instead). Whether a given iteration's float32 total
    cancels exactly depends on how the CPU splits the reductions (thread count, instruction
    set), so the stop is checked against the total the engine computed, with every iteration
    logged: the run stops at the first total that is NaN or above the bound, and not before,
    while the dual term was already far above the bound."""
    bound = 1e5
    e = Engine(pairs.load("hd-2"), _exploding(StopRule(every=1, bound=bound), amortization="objective"),
               Budget("smoke"))

    def step(state, t):
        new, logs = e.train_step(state, t)
        return new, (logs["loss"], logs["dual"])

    final, (loss, dual) = jax.jit(lambda s: jax.lax.scan(step, s, jnp.arange(200)))(
        e.init_state(jax.random.key(0), 10))
    loss, dual = np.asarray(loss), np.asarray(dual)
    bad = ~np.isfinite(loss) | (np.abs(loss) > bound)
    stopped_at = int(final["stopped_at"])
    assert stopped_at == (int(np.argmax(bad)) + 1 if bad.any() else -1)
    ran = loss[:stopped_at - 1] if stopped_at > 0 else loss  # iterations the rule let pass
    assert len(ran) >= 20 and np.all(np.abs(ran) <= bound)
    assert (np.abs(dual[:len(ran)]) > 1e20).sum() >= 10  # a rule on the dual would have stopped


def test_the_stop_rule_looks_only_at_logged_iterations():
    """Between logged iterations a blown-up loss does not stop the run (w2ot never sees it)."""
    [fitted] = train(pairs.load("hd-2"), _exploding(StopRule(every=1000)), jax.random.key(0)[None],
                     Budget("smoke"))
    assert not fitted.diverged and fitted.iterations == 200
    assert fitted.info["nonfinite_loss_seen"] or fitted.curve[-1]["loss"] > 1e5


def test_without_a_stop_rule_a_run_never_stops():
    [fitted] = train(pairs.load("hd-2"), _exploding(None, every=50), jax.random.key(0)[None],
                     Budget("smoke"))
    assert not fitted.diverged and fitted.iterations == 200


def test_the_best_iterate_is_reported_and_the_final_one_kept_beside_it():
    """Korotin's notebooks keep the checkpoint with the lowest L2-UVP on fresh points."""
    spec = DualSpec(potential="mlp", amortizer="residual-mlp", amortization="cycle",
                    conjugate_solver=None, iterations={"smoke": 300}, pretrain_steps={"smoke": 10},
                    eval_every={"smoke": 100}, stop=None,
                    best_iterate=BestIterate(every=100, size=1024))
    pair = pairs.load("hd-2")
    [fitted] = train(pair, spec, jax.random.key(0)[None], Budget("smoke"))
    assert fitted.reported_iterate == "best" and set(fitted.alternatives) == {"final"}
    best = fitted.info["best_iterate"]
    assert best["forward_at"] in (1, 101, 201)
    from otarena import metrics
    chosen = metrics.evaluate(pair, fitted.forward, size=16384)["l2_uvp_fwd"]
    final = metrics.evaluate(pair, fitted.alternatives["final"][0], size=16384)["l2_uvp_fwd"]
    # the reported maps are the checkpoint scored best on fresh points, not the final ones
    assert chosen == pytest.approx(best["l2_uvp_fwd_fresh"], rel=0.15)
    assert chosen != pytest.approx(final, rel=1e-4)


def test_cosine_schedule_matches_optax_over_w2ots_decay_steps():
    opt = Optimizer()
    schedule = optax.cosine_decay_schedule(5e-4, 6001, 1e-4)
    for t in (0, 1, 3000, 5999, 6000, 7000):
        assert float(opt.learning_rate(jnp.asarray(t), jnp.asarray(6001))) == pytest.approx(
            float(schedule(t)), rel=1e-6)


def test_vmapped_seeds_match_separate_runs():
    spec = DualSpec(potential="icnn", amortizer="residual-mlp", amortization="objective",
                    conjugate_solver="lbfgs", iterations={"smoke": 40},
                    pretrain_steps={"smoke": 20}, eval_every={"smoke": 20})
    pair = pairs.load("hd-2")
    keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
    both = train(pair, spec, keys, Budget("smoke"))
    alone = train(pair, spec, keys[1:], Budget("smoke"))
    a, b = both[1].curve[-1]["l2_uvp_fwd"], alone[0].curve[-1]["l2_uvp_fwd"]
    assert a == pytest.approx(b, rel=1e-3)
    assert both[0].curve[-1]["l2_uvp_fwd"] != pytest.approx(a, rel=1e-3)  # seeds differ
    x = pair.sample_source(jax.random.key(9), 64)
    np.testing.assert_allclose(np.asarray(both[1].forward(x)), np.asarray(alone[0].forward(x)),
                               rtol=1e-3, atol=1e-4)


def test_paper_budget_runs_in_full_fp32_and_records_it():
    """The papers' networks ran in fp32 on pre-Ampere GPUs; on an H200 JAX's default is
    TF32. A paper-budget cell trains under ``jax.default_matmul_precision('float32')``."""
    seen = {}

    def fit(pair, key, budget):
        seen["precision"] = jax.config.jax_default_matmul_precision
        return solver.Fitted(forward=lambda x: x, inverse=lambda y: y)

    probe = solver.Solver("probe", fit, {})
    for profile, expected in (("paper", "float32"), ("quick", "default")):
        cell = map_task.Cell("hd-2", False, probe, 0, Budget(profile), 4096)
        [record] = map_task.run_cells([cell])
        assert record["numerics"]["matmul_precision"] == expected
        assert seen["precision"] == expected
    assert Budget("paper").as_dict() == {"profile": "paper", "iterations": None, "eval_every": None}
