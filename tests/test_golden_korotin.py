"""Golden steps: otarena's Korotin solvers against the official code, step for step.

The fixtures (``tests/fixtures/golden/korotin_*.npz``) are numbers recorded while the
training cells of Korotin et al.'s own notebooks ran (``korotin_regenerate.py`` next to
them; provenance in ``korotin_provenance.json`` and ``README_korotin.md``). The same
initial parameters and the same batches go through otarena's engine here, and the losses,
gradients, parameters after every step and [MMv1]'s conjugate solutions must agree.

Roles: otarena writes every solver as a potential psi (the net of the W-loss) and H (the
other net), psi on batch x, H on y. Unreversed, psi is the official ``D`` on ``X``; with
``REVERSED`` psi is ``D_conj`` on ``Y``; the fixture's ``roles`` say which.

Loss conventions. The official W-loss is ``mean D(X) - mean D(x_hat)`` (+ LAMBDA * cycle for
[W2]); otarena's dual adds ``mean <x_hat, y>``, which has no parameter gradient (x_hat is
detached): otarena's dual = W-loss + mean<x_hat, y>. Its amortization term is LAMBDA * cycle
for [W2]; for [MM] it is H's objective ``mean psi(H(y)) - <H(y), y>``, which at the psi step
(H(y) = x_hat) equals ``mean D(x_hat) - mean<x_hat, y>`` and at an inner step is exactly the
official ``conj_loss``. The fixtures hold each term, recomputed by the generator at the
step's parameters.

Tolerances (float32 on both sides; "measured" is the largest difference over all fixtures
between otarena and the official run, "float64" that between the official float32 run and
a float64 run of the same code from the same inits, batches and starts):
- losses: relative 1e-5. A loss is a mean of 64-256 float32 terms of size ~10 (measured
  1.7e-6, float64 5e-7). The cycle loss, a mean of squared residuals
  grad psi(grad H(y)) - y of size ~0.2 between points of size ~1.6, cancels about ten times
  more: relative 1e-4 (measured 1.7e-5, float64 3e-6).
- gradients at the official parameters: every entry within 1e-4 of the network's largest
  gradient entry at that step. An entry is a batch sum whose rounding scales with the
  largest terms, not with the entry (the final layer's gradient is a difference of two
  means of activations of size ~1). Measured 7e-6.
- gradients in a free run (otarena's own parameters, which drift from the official ones by
  rounding, amplified by Adam as below): 3e-4 of the largest entry (measured 1.2e-4 at the
  third step, float64 1.6e-5).
- parameters after otarena's optimizer applied to the official gradients: 2e-6 absolute,
  Adam's own arithmetic only (measured 6e-8).
- parameters of a free run: 2e-4 absolute, a fifth of one Adam step (lr 1e-3). Adam's step
  lr * m/(sqrt(v) + 1e-8) is ill-conditioned where a gradient is at rounding level (its
  rounding decides the step): measured 3.5e-5, float64 2.8e-5, after 3 steps.
- [MMv1] conjugate points: 1e-5 absolute after ~130 Adam steps of lr 0.1 (measured 1.5e-6,
  float64 2e-6); iteration counts exactly (float64 gives the same counts).
- identity pretraining: 1e-6 absolute after 1-3 steps from a random init, where no gradient
  is near rounding level (measured 9e-8, float64 4e-8).

Every test compiles the engine's steps for its solver and dimension (shared through
``compiled``), hence ``slow``.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otarena import conjugate, dual, pairs
from otarena.budgets import Budget

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "solvers"))
import korotin  # noqa: E402  (solvers/ is a plugin folder, not a package)

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
LOSS_RTOL = 1e-5
CYCLE_RTOL = 1e-4
GRAD_TOL = 1e-4
FREE_GRAD_TOL = 3e-4
OPTIMIZER_ATOL = 2e-6
FREE_ATOL = 2e-4
POINT_ATOL = 1e-5
PRETRAIN_ATOL = 1e-6
SPECS = {"W2": korotin.W2, "MM": korotin.MM, "MMv2": korotin.MMV2, "MMv1": korotin.MMV1}
TRAINING = {"W2-d2": "W2", "W2-d8": "W2", "W2R-d8": "W2", "MM-d8": "MM", "MMR-d8": "MM",
            "MMv2-d8": "MMv2", "MMv1-d2": "MMv1", "MMv1-d8": "MMv1"}  # fixture -> solver


def fixture(name):
    path = GOLDEN / f"korotin_{name}.npz"
    if not path.exists():  # committed; absent only in a partial checkout
        pytest.skip(f"{path.name} missing: run korotin_regenerate.py (README_korotin.md)")
    meta = json.loads((GOLDEN / "korotin_provenance.json").read_text())["fixtures"][path.name]
    return np.load(path), meta


def params(z, prefix):
    """The state dict stored under ``prefix`` (official names are otarena's parameter names)."""
    return {k[len(prefix):]: jnp.asarray(z[k]) for k in z.files if k.startswith(prefix)}


class Compiled(NamedTuple):
    engine: dual.Engine
    template: dict  # a state of the engine (its parameters are replaced by each test)
    gradients: Callable  # (state, x, y, key, argnums) -> (loss, aux, grads)
    update: Callable  # (state, x, y, key[, inner_targets]) -> (state, logs)
    apply: Callable  # (state, grads, which) -> state


@functools.cache
def compiled(solver: str, dim: int) -> Compiled:
    """One engine and its compiled steps per solver and dimension, shared by the tests."""
    eng = dual.Engine(pairs.load(f"hd-{dim}"), SPECS[solver], Budget("smoke"))
    return Compiled(eng, eng.init_state(jax.random.key(0), 0),
                    jax.jit(eng.gradients, static_argnums=4), jax.jit(eng.update),
                    jax.jit(eng.apply_gradients, static_argnums=2))


def engine(name, meta) -> Compiled:
    return compiled(TRAINING[name], meta["DIM"])


def start_state(c: Compiled, init):
    """The engine's state with the fixture's initial parameters (H a copy of psi, as the
    notebooks load D's state dict into D_conj) and fresh optimizer states (Adam's moments
    start at zero whatever the parameters)."""
    state = dict(c.template)
    state["psi"] = init
    if "h" in state:
        state["h"] = init
    return state


def check_loss(ours, official, what, rtol=LOSS_RTOL):
    assert float(ours) == pytest.approx(float(official), rel=rtol, abs=1e-6), what


def check_grads(ours, official, what, tol=GRAD_TOL):
    scale = max(float(np.max(np.abs(v))) for v in official.values())
    assert set(ours) == set(official), what
    for k, v in official.items():
        err = float(np.max(np.abs(np.asarray(ours[k]) - np.asarray(v))))
        assert err <= tol * scale, f"{what} {k}: |diff| {err:.3g} > {tol} x {scale:.3g}"


def check_params(ours, official, atol, what):
    assert set(ours) == set(official), what
    for k, v in official.items():
        np.testing.assert_allclose(np.asarray(ours[k]), np.asarray(v), rtol=0, atol=atol,
                                   err_msg=f"{what} {k}")


def batches(z, meta, t):
    r = meta["roles"]
    return jnp.asarray(z[f"step{t}.{r['x']}"]), jnp.asarray(z[f"step{t}.{r['y']}"])


# -- [W2]: both nets on one loss --------------------------------------------------------------
@pytest.mark.parametrize("name", ["W2-d2", "W2-d8", "W2R-d8"])
def test_w2_free_run(name):
    """Three joint steps from the official init on the official batches."""
    z, meta = fixture(name)
    c, r = engine(name, meta), meta["roles"]
    state, key = start_state(c, params(z, "init.")), jax.random.key(0)
    for t in range(meta["MAX_ITER"]):
        x, y = batches(z, meta, t)
        loss, aux, grads = c.gradients(state, x, y, key, (0, 1))
        lam = meta["LAMBDA"]
        check_loss(aux["dual"], z[f"step{t}.loss.psi_x"] - z[f"step{t}.loss.psi_xhat"]
                   + z[f"step{t}.loss.xhat_y"], f"step {t} dual")
        check_loss(aux["amortization"], lam * z[f"step{t}.loss.cycle_loss"], f"step {t} cycle",
                   CYCLE_RTOL)
        check_loss(loss, z[f"step{t}.loss.W_loss"] + z[f"step{t}.loss.xhat_y"], f"step {t} loss")
        state, logs = c.update(state, x, y, key)
        check_loss(logs["loss"], loss, f"step {t} logged loss")
        for net in ("psi", "h"):
            official = r[net]
            check_grads(grads[net], params(z, f"step{t}.grad.{official}."), f"step {t} {net}",
                        FREE_GRAD_TOL)
            check_params(state[net], params(z, f"step{t}.after.{official}."), FREE_ATOL,
                         f"step {t} {net}")


@pytest.mark.parametrize("name", ["W2-d8", "W2R-d8", "MM-d8", "MMR-d8"])
def test_gradients_at_official_parameters(name):
    """Every step from the official parameters before it (no drift to absorb): both nets'
    gradients for [W2]; for [MM] psi's, and H's first inner step after psi's step."""
    z, meta = fixture(name)
    c, r = engine(name, meta), meta["roles"]
    gradients, key = c.gradients, jax.random.key(0)
    state = start_state(c, params(z, "init."))
    for t in range(meta["MAX_ITER"]):
        x, y = batches(z, meta, t)
        if meta["notebook"].endswith("W2_test_hd_benchmark.ipynb"):
            _, _, grads = gradients(state, x, y, key, (0, 1))
            check_grads(grads["h"], params(z, f"step{t}.grad.{r['h']}."), f"step {t} H")
        else:
            _, _, grads = gradients(state, x, y, key, (0,))
            stepped = {**state, "psi": params(z, f"step{t}.after.{r['psi']}.")}
            target = jnp.asarray(z[f"step{t}.inner_targets"][0])
            _, _, inner = gradients(stepped, x, target, key, (1,))
            check_grads(inner["h"], params(z, f"step{t}.inner0.grad.{r['h']}."),
                        f"step {t} inner 0")
        check_grads(grads["psi"], params(z, f"step{t}.grad.{r['psi']}."), f"step {t} psi")
        state = {**state, **{net: params(z, f"step{t}.after.{r[net]}.") for net in ("psi", "h")}}


@pytest.mark.parametrize("name", ["W2-d8", "W2R-d8", "MM-d8", "MMv2-d8", "MMv1-d8"])
def test_optimizer_on_official_gradients(name):
    """otarena's Adam and projection, fed the official gradients, give the official
    parameters: lr, betas, eps, weight decay and the clamp are the notebooks'."""
    z, meta = fixture(name)
    c, r = engine(name, meta), meta["roles"]
    state = start_state(c, params(z, "init."))
    # [MM]'s H takes 15 inner steps per iteration whose gradients are not all stored; its
    # optimizer is the same Optimizer object as psi's.
    nets = ["psi", "h"] if meta["notebook"].endswith("W2_test_hd_benchmark.ipynb") else ["psi"]
    for t in range(meta["MAX_ITER"]):
        grads = {net: params(z, f"step{t}.grad.{r[net]}.") for net in nets}
        state = c.apply(state, grads, tuple(nets))
        for net in nets:
            check_params(state[net], params(z, f"step{t}.after.{r[net]}."), OPTIMIZER_ATOL,
                         f"step {t} {net}")


# -- [MM] / [MMv2]: a psi step, then 15 steps of H alone on fresh targets --------------------
@pytest.mark.parametrize("name", ["MM-d8", "MMR-d8", "MMv2-d8"])
def test_maximin_free_run(name):
    z, meta = fixture(name)
    c, r = engine(name, meta), meta["roles"]
    gradients, update, apply = c.gradients, c.update, c.apply
    state, key = start_state(c, params(z, "init.")), jax.random.key(0)
    for t in range(meta["MAX_ITER"]):
        x, y = batches(z, meta, t)
        targets = jnp.asarray(z[f"step{t}.inner_targets"])
        assert targets.shape[0] == meta["INNER_ITERS"] == c.engine.spec.amortizer_steps
        loss, aux, grads = gradients(state, x, y, key, (0,))
        w_loss, xhat_y = z[f"step{t}.loss.W_loss"], z[f"step{t}.loss.xhat_y"]
        check_loss(aux["dual"], w_loss + xhat_y, f"step {t} dual")
        check_loss(aux["amortization"], z[f"step{t}.loss.psi_xhat"] - xhat_y,
                   f"step {t} H objective")
        check_grads(grads["psi"], params(z, f"step{t}.grad.{r['psi']}."), f"step {t} psi",
                    FREE_GRAD_TOL)
        # The inner steps one by one, through the engine's own pieces.
        inner = apply(state, grads, ("psi",))
        check_params(inner["psi"], params(z, f"step{t}.after.{r['psi']}."), FREE_ATOL,
                     f"step {t} psi")
        for j in range(meta["INNER_ITERS"]):
            _, aux_j, g = gradients(inner, x, targets[j], key, (1,))
            check_loss(aux_j["amortization"], z[f"step{t}.inner_loss"][j], f"step {t} inner {j}")
            norm = np.sqrt(sum(np.sum(np.asarray(v, np.float64) ** 2) for v in g["h"].values()))
            assert norm == pytest.approx(z[f"step{t}.inner_grad_norm"][j], rel=FREE_GRAD_TOL)
            full = f"step{t}.inner{j}.grad.{r['h']}."
            if any(k.startswith(full) for k in z.files):
                check_grads(g["h"], params(z, full), f"step {t} inner {j} H", FREE_GRAD_TOL)
            inner = apply(inner, g, ("h",))
        # The engine's update does the same in one call.
        state, logs = update(state, x, y, key, targets)
        check_loss(logs["loss"], loss, f"step {t} logged loss")
        for net in ("psi", "h"):
            official = params(z, f"step{t}.after.{r[net]}.")
            check_params(inner[net], official, FREE_ATOL, f"step {t} {net} (pieces)")
            check_params(state[net], official, FREE_ATOL, f"step {t} {net} (update)")


# -- [MMv1]: the conjugate solved per batch by Adam from U[0, 1) ------------------------------
def inject_starts(monkeypatch, table):
    """Make the engine's U[0, 1) start draw return the official starts: ``table`` maps the
    key each step is given to the start the official ``torch.rand_like`` drew."""
    keys = jnp.stack([jax.random.key_data(k) for k, _ in table])
    starts = jnp.stack([s for _, s in table])
    original = jax.random.uniform

    def uniform(key, shape=(), dtype=jnp.float32, minval=0.0, maxval=1.0):
        if tuple(shape) != starts.shape[1:]:
            return original(key, shape, dtype, minval, maxval)
        hit = jnp.all(jax.random.key_data(key) == keys, axis=-1)
        # An unknown key gives NaN starts, so a miss cannot pass silently.
        return jnp.where(jnp.any(hit), starts[jnp.argmax(hit)], jnp.nan)

    monkeypatch.setattr(jax.random, "uniform", uniform)


@pytest.mark.parametrize("name", ["MMv1-d2", "MMv1-d8"])
def test_mmv1_conjugate_solutions(name):
    """otarena's batch Adam from the official starts, at the official parameters: the same
    points after the same number of steps."""
    z, meta = fixture(name)
    eng = engine(name, meta).engine
    solver = conjugate.SETTINGS["batch-adam"]
    solve = jax.jit(lambda p, y, x0: solver.solve_batch(eng.psi_batch(p), y, x0))
    for t in range(meta["MAX_ITER"]):
        for net, target in (("D", "Y"), ("D_conj", "X")):
            before = params(z, "init." if t == 0 else f"step{t - 1}.after.{net}.")
            y = jnp.asarray(z[f"step{t}.{target}"])
            sol = solve(before, y, jnp.asarray(z[f"step{t}.start.{net}"]))
            official = int(z[f"step{t}.iterations.{net}"])
            ours = np.asarray(sol.iterations)
            assert np.all(ours == official), f"step {t} {net}: {ours[0]} steps, official {official}"
            np.testing.assert_allclose(np.asarray(sol.x), z[f"step{t}.solution.{net}"], rtol=0,
                                       atol=POINT_ATOL, err_msg=f"step {t} {net}")


@pytest.mark.parametrize("name", ["MMv1-d2", "MMv1-d8"])
def test_mmv1_free_run(name, monkeypatch):
    """The forward potential D (on X -> Y) and the inverse one D_conj (on Y -> X), each an
    otarena MMv1 run from the same init, as the notebook trains both in one loop."""
    z, meta = fixture(name)
    c, key = engine(name, meta), jax.random.key(0)
    steps = meta["MAX_ITER"]
    keys = {(net, t): jax.random.fold_in(key, 2 * t + i)
            for t in range(steps) for i, net in enumerate(("D", "D_conj"))}
    inject_starts(monkeypatch, [(k, jnp.asarray(z[f"step{t}.start.{net}"]))
                                for (net, t), k in keys.items()])
    # Fresh programs: traced under the injected draw (the shared ones may be traced already).
    gradients = jax.jit(lambda *a: c.engine.gradients(*a, (0,)))
    update = jax.jit(lambda *a: c.engine.update(*a))
    for net, (bx, by) in (("D", ("X", "Y")), ("D_conj", ("Y", "X"))):
        state = start_state(c, params(z, "init."))
        for t in range(steps):
            x, y, k = jnp.asarray(z[f"step{t}.{bx}"]), jnp.asarray(z[f"step{t}.{by}"]), keys[net, t]
            loss, aux, grads = gradients(state, x, y, k)
            official = z[f"step{t}.loss.{net}.W_loss"] + z[f"step{t}.loss.{net}.xhat_y"]
            check_loss(loss, official, f"{net} step {t} loss")
            assert float(aux["conjugate_iterations"]) == int(z[f"step{t}.iterations.{net}"])
            check_grads(grads["psi"], params(z, f"step{t}.grad.{net}."), f"{net} step {t}",
                        FREE_GRAD_TOL)
            state, _ = update(state, x, y, k)
            check_params(state["psi"], params(z, f"step{t}.after.{net}."), FREE_ATOL,
                         f"{net} step {t}")


# -- identity pretraining (src/tools.train_identity_map) ---------------------------------------
@pytest.mark.parametrize("name, spec", [("identity-convex-d2", korotin.W2),
                                        ("identity-nonconvex-d2", korotin.MM)])
def test_identity_pretraining(name, spec, monkeypatch):
    """otarena's pretraining (N(0, 9 I) batches, MSE, Adam 1e-3 with L2 1e-10, the clamp for
    the convex net), given the official batches: loss and parameters after 1, 2, 3 steps."""
    z, meta = fixture(name)
    args = meta["arguments"]
    eng = dual.Engine(pairs.load(f"hd-{meta['DIM']}"), spec, Budget("smoke"))
    assert eng.spec.pretrain.scale == args["blow"] and eng.spec.pretrain.lr == args["lr"]
    key = jax.random.key(1)
    table = jnp.stack([jax.random.key_data(jax.random.fold_in(key, i)) for i in range(3)])
    official = jnp.asarray(z["batches"])

    def sample(pre, k, n, dim):  # the pretraining loop's step-i key -> the official batch i
        hit = jnp.all(jax.random.key_data(k) == table, axis=-1)
        return jnp.where(jnp.any(hit), pre.scale * official[jnp.argmax(hit)], jnp.nan)

    monkeypatch.setattr(dual.engine, "_sample_pretraining", sample)
    pretrain = jax.jit(lambda p, steps: eng.pretrain(eng.psi, p, key, steps, args["tol"]))
    for steps in (1, 2, 3):
        out, last_loss, taken = pretrain(params(z, "init."), steps)
        assert int(taken) == steps
        check_loss(last_loss, z[f"step{steps - 1}.loss"], f"step {steps - 1} loss")
        check_params(out, params(z, f"step{steps - 1}.after."), PRETRAIN_ATOL,
                     f"after {steps} steps")
