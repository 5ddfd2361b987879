"""Golden-step equivalence with the official w2ot code (Amos 2023).

The numbers in tests/fixtures/golden/w2ot_*.npz were produced by running w2ot itself
(w2ot_regenerate.py beside them; provenance in README.md there): its ICNN, PotentialNN and
InitNN, its conjugate solvers (SolverLBFGS with the lbfgs and lbfgs_high_precision configs,
SolverAdam with the adam config), DualTrainer's jitted update on fixed batches and its
identity pretraining. otarena, given the same parameters and batches, must give the same
numbers: the same conjugate solutions and iteration counts, the same losses, gradients and
parameters after every step.

Tolerances (float32, eps = 1.2e-7). Both sides run the same float32 arithmetic but through
different JAX/XLA versions, so sums may be reduced in another order: a network output
differs by a few eps times the sum of the magnitudes of its terms (~1e-6 relative), and a
batch-mean loss or gradient by ~1e-6-1e-5 relative. Conjugate points are the end of a
deterministic iteration whose decisions (Armijo tests, stopping) are exact comparisons;
when the decisions agree, the points agree to rounding amplified by a few steps (~1e-5
relative). Any difference in the algorithm shows up far above these tolerances: a missing
or extra iteration moves a point by about the gradient tolerance (1e-3 to 1e-1) and
changes the iteration count, which is compared exactly.
"""

from __future__ import annotations

import dataclasses
from functools import cache
import json
from pathlib import Path
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from otarena import conjugate, pairs
from otarena.budgets import Budget
from otarena.dual import DualSpec, Engine
from otarena.models import networks

GOLDEN = Path(__file__).parent / "fixtures" / "golden"

# -- reading the fixtures -------------------------------------------------------------------


@cache
def _load(name: str) -> dict[str, np.ndarray] | None:
    path = GOLDEN / f"w2ot_{name}.npz"
    if not path.is_file():
        return None
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    # Bitwise-identical arrays are stored once (see w2ot_regenerate.save_deduplicated).
    aliases = json.loads(str(arrays.pop("aliases", "{}")))
    arrays.update({name: arrays[stored] for name, stored in aliases.items()})
    return arrays


def fixture(name: str) -> dict[str, np.ndarray]:
    data = _load(name)
    if data is None:  # only where the committed fixtures were removed
        pytest.skip(f"{GOLDEN}/w2ot_{name}.npz is missing: regenerate it (README.md there)")
    return data


def subtree(data: dict, prefix: str) -> dict[str, np.ndarray]:
    """The entries under ``prefix/``, keyed by the rest of their name (a flax path)."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in data.items() if k.startswith(prefix + "/")}


def unpack(vector: np.ndarray, template: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A packed tree (leaves raveled in the sorted order of their names) as a flat dict
    shaped like ``template``."""
    leaves, start = {}, 0
    for name in sorted(template):
        size = template[name].size
        leaves[name] = vector[start:start + size].reshape(template[name].shape)
        start += size
    assert start == vector.size, "packed tree does not match its template"
    return leaves


# -- w2ot's parameter names -> otarena's ------------------------------------------------------
# w2ot's ICNN names its layers in setup(): w_xs_i are the x-paths (Dense, i = 0..L) and
# w_zs_i the non-negative z-paths (PositiveDense, i = 0..L-1); otarena's compact ICNN
# creates the same layers in the same order under flax's automatic names. ActNorm_i and
# log_alpha are named alike; PotentialNN/MLPPotential and InitNN/ResidualMLP are
# Dense_0..Dense_L on both sides.
_RENAMES = {"icnn": ((r"^w_xs_(\d+)/", r"Dense_\1/"), (r"^w_zs_(\d+)/", r"PositiveDense_\1/"))}
H_MODEL = "residual-mlp"  # w2ot's InitNN


def otarena_name(model: str, name: str) -> str:
    for pattern, replacement in _RENAMES.get(model, ()):
        name = re.sub(pattern, replacement, name)
    return name


def to_otarena(model: str, flat: dict[str, np.ndarray]) -> dict:
    return traverse_util.unflatten_dict(
        {tuple(otarena_name(model, k).split("/")): jnp.asarray(v) for k, v in flat.items()})


def flat_tree(tree) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(tree, sep="/").items()}


def tree_gaps(model: str, ours, theirs: dict[str, np.ndarray], rtol: float, atol: float,
              extra: dict[str, float] | None = None) -> list[str]:
    """Leaves of ``ours`` (otarena tree) that differ from ``theirs`` (w2ot flat names) by
    more than atol + rtol |theirs| + ``extra[leaf]``."""
    mine = flat_tree(ours)
    gaps = []
    for name, ref in sorted(theirs.items()):
        got = mine[otarena_name(model, name)]
        if not np.allclose(got, ref, rtol=rtol, atol=atol + (extra or {}).get(name, 0.0)):
            err = np.abs(got - ref)
            gaps.append(f"{name}: max |diff| {err.max():.3g} at {np.unravel_index(err.argmax(), err.shape)}"
                        f" (|ref| max {np.abs(ref).max():.3g})")
    return gaps


# -- architecture -----------------------------------------------------------------------------
TRAIN_DIMS = (2, 8)


@pytest.mark.parametrize("dim", TRAIN_DIMS)
@pytest.mark.parametrize("potential", ["icnn", "mlp"])
def test_networks_match_w2ot(potential, dim):
    """Same parameters -> the same potential, gradient map and H as w2ot's ICNN /
    PotentialNN / InitNN (and the same parameter names and shapes as otarena's own init)."""
    data = fixture("trainer")
    base = f"train/d{dim}/init/{potential}"
    x, y = data[f"train/d{dim}/X"][0], data[f"train/d{dim}/Y"][0]
    for model_name, part, checks in ((potential, "D", ("D_of_X", "grad_D_of_X")),
                                     (H_MODEL, "H", ("H_of_Y",))):
        model = networks.build(model_name, dim)
        params = to_otarena(model_name, subtree(data, f"{base}/{part}"))
        own = model.init(jax.random.key(0), jnp.asarray(x))
        assert ({k: v.shape for k, v in flat_tree(own).items()}
                == {k: v.shape for k, v in flat_tree(params).items()}), model_name
        outputs = {"D_of_X": lambda: model.apply(params, x),
                   "grad_D_of_X": lambda: model.push(params, x),
                   "H_of_Y": lambda: model.apply(params, y)}
        for check in checks:
            # One forward pass: rounding of sums of ~100 terms (see the module docstring).
            np.testing.assert_allclose(outputs[check](), data[f"{base}/{check}"],
                                       rtol=1e-5, atol=1e-5, err_msg=f"{model_name}: {check}")


# -- conjugate solves -------------------------------------------------------------------------
# w2ot's config name -> otarena's named setting.
SETTINGS = {"lbfgs": "lbfgs", "lbfgs_high_precision": "lbfgs-high-precision", "adam": "adam"}
# The conjugate fixture also has lbfgs.yaml with max_iter 3 (solves that hit the cap).
CONJ_SOLVERS = [*SETTINGS, "lbfgs_max_iter_3"]


def otarena_solver(w2ot_config: str):
    if w2ot_config == "lbfgs_max_iter_3":
        return dataclasses.replace(conjugate.SETTINGS["lbfgs"], max_iter=3)
    return conjugate.SETTINGS[SETTINGS[w2ot_config]]
CONJ_CASES = [f"{p}-{v}-d{d}" for p, v in (("icnn", "init"), ("icnn", "hard"), ("icnn", "steep"),
                                           ("mlp", "init"), ("mlp", "wiggly"))
              for d in (2, 16)]
STARTS = ("near", "target", "far")
# A point "matches" when its iteration count is the same and its solution agrees to
# 3e-5 (1 + |x|_inf): same decisions, rounding amplified by up to ~20 quasi-Newton steps
# on the hard (weakly convex, alpha = 0.05) potential, where 1e-5 is seen.
X_RTOL = 3e-5
# Points may also differ where float32 cannot decide. Close to gtol the solvers compare
# numbers that differ by less than their rounding (Armijo's sufficient decrease, the ftol
# stop): w2ot itself changes its result on such points when y or x0 moves by one ulp or
# the potential by a constant (the fixture's "probes"). So at most as many points as the
# probes moved may differ, plus 2 that the 8 probes missed (seen: a point stable under all
# probes flipped by otarena's J differing from w2ot's by one ulp at the same x) ...
EXTRA_UNDECIDABLE = 2
# ... and a differing point the probes did not move must be an equally good solution in
# float32: J(x) equal to 16 units of rounding of its terms, eps (|psi(x)| + |<x, y>|).
# Seen: up to 6; a genuine difference in the algorithm (a step not taken, a shorter first
# step) leaves J higher by |grad J|^2 / 2 ~ 1e-4..1e-2, hundreds of such units. (Points the
# probes moved are exempt: on the non-convex "wiggly" MLP a flip early in a 30-step solve
# may end at another stationary point, as w2ot's own probes do.)
J_ROUNDING_UNITS = 16


def conjugate_problems(x, iterations, value, scale, ref, n_points) -> list[str]:
    """What differs between otarena's solves and w2ot's beyond float32's indecision."""
    x, iterations = np.asarray(x), np.asarray(iterations)
    tol = X_RTOL * (1 + np.abs(ref["x"]).max(axis=1))
    differ = (iterations != ref["num_iter"]) | (np.abs(x - ref["x"]).max(axis=1) > tol)
    undecidable = ((ref["probe_iter_min"] != ref["probe_iter_max"])
                   | (ref["probe_x_spread"] > tol))
    problems = []
    if differ.sum() > undecidable.sum() + EXTRA_UNDECIDABLE:
        i = np.flatnonzero(differ)[0]
        problems.append(
            f"{differ.sum()}/{n_points} points differ, w2ot's own probes move only "
            f"{undecidable.sum()} (e.g. point {i}: iterations otarena {iterations[i]}, w2ot "
            f"{ref['num_iter'][i]}, |x diff| {np.abs(x[i] - ref['x'][i]).max():.3g}; mean "
            f"iterations otarena {iterations.mean():.2f}, w2ot {ref['num_iter'].mean():.2f})")
    gap = np.abs(value["ours"] - value["theirs"]) / (np.finfo(np.float32).eps * scale)
    unexplained = differ & ~undecidable
    if unexplained.any() and gap[unexplained].max() > J_ROUNDING_UNITS:
        i = np.flatnonzero(unexplained)[np.argmax(gap[unexplained])]
        problems.append(f"point {i}: J(x) otarena {value['ours'][i]:.9g}, at w2ot's x "
                        f"{value['theirs'][i]:.9g} ({gap[i]:.0f} rounding units apart)")
    return problems


@pytest.mark.parametrize("solver_name", CONJ_SOLVERS)
@pytest.mark.parametrize("case", CONJ_CASES)
def test_conjugate_solve_matches_w2ot(case, solver_name):
    """Same potential, targets and warm starts -> w2ot's iteration counts and solutions."""
    data = fixture("conjugate")
    base = f"conj/{case}"
    potential, dim = case.split("-")[0], int(case.rsplit("-d", 1)[1])
    model = networks.build(potential, dim)
    params = to_otarena(potential, subtree(data, f"{base}/params"))
    solver = otarena_solver(solver_name)
    y = jnp.asarray(data[f"{base}/y"])

    def objective_terms(x):  # J(x) = psi(x) - <x, y> per row, and the size of its terms
        psi, dot = model.apply(params, x), jnp.sum(x * y, axis=1)
        return psi - dot, jnp.abs(psi) + jnp.abs(dot)

    @jax.jit
    def solve(x0, x_theirs):
        solution = solver.solve_batch(lambda x: model.apply(params, x), y, x0)
        (ours, _), (theirs, scale) = objective_terms(solution.x), objective_terms(x_theirs)
        return solution, {"ours": ours, "theirs": theirs}, scale

    problems = []
    for start in STARTS:
        ref = subtree(data, f"{base}/{solver_name}/{start}")
        (x, iterations), value, scale = solve(jnp.asarray(data[f"{base}/x0/{start}"]),
                                              jnp.asarray(ref["x"]))
        value = {k: np.asarray(v) for k, v in value.items()}
        problems += [f"{start}: {p}" for p in
                     conjugate_problems(x, iterations, value, np.asarray(scale), ref, len(y))]
    assert not problems, f"{case}, {solver_name}:\n  " + "\n  ".join(problems)


# -- trainer steps ----------------------------------------------------------------------------
# w2ot's amortization config -> (otarena's amortization, fine-tuned by the conjugate solver?)
AMORTIZATIONS = {"objective": ("objective", False), "objective_finetune": ("objective", True),
                 "regression": ("regression", True), "w2gn": ("cycle", False),
                 "w2gn_finetune": ("cycle-finetune", True)}
TRAIN_CASES = {
    "icnn": [("objective", "lbfgs"), ("objective_finetune", "lbfgs"), ("regression", "lbfgs"),
             ("w2gn", "lbfgs"), ("w2gn_finetune", "lbfgs"),
             ("objective_finetune", "adam"), ("regression", "adam"), ("w2gn_finetune", "adam"),
             ("regression", "lbfgs_high_precision")],
    "mlp": [("objective", "lbfgs"), ("objective_finetune", "lbfgs"), ("regression", "lbfgs"),
            ("w2gn", "lbfgs"), ("w2gn_finetune", "lbfgs")],
}
# Every configuration at d2 in make test; at d8 (the same programs on wider inputs) one per
# potential and conjugate solver there, the rest in make test-long (each case compiles its
# own step, ~10 s on a CPU).
D8_IN_MAKE_TEST = ("icnn-regression-lbfgs_high_precision", "icnn-objective-lbfgs",
                   "icnn-w2gn_finetune-adam", "mlp-regression-lbfgs")
TRAIN_CASE_NAMES = [f"{p}-{a}-{s}" for p, cases in TRAIN_CASES.items() for a, s in cases]
assert set(D8_IN_MAKE_TEST) <= set(TRAIN_CASE_NAMES)
TRAIN_CONFIGS = [pytest.param(f"d{d}/{name}", marks=() if d == 2 or name in D8_IN_MAKE_TEST
                              else pytest.mark.long)
                 for d in TRAIN_DIMS for name in TRAIN_CASE_NAMES]
NUM_TRAIN_ITER = 250001  # w2ot's cosine schedule length (dual_trainer/*_hd_benchmark.yaml)
# Batch means over 256 points of network outputs and gradients: ~1e-6 relative rounding,
# compounded over 4 optimizer steps (see the module docstring).
LOSS_RTOL, LOSS_ATOL = 1e-5, 1e-5
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-6
# Adam with b2 = 0.5 moves every coordinate by about lr = 5e-4 per step whatever the
# gradient's size, so parameters after 4 steps agree to that step's rounding (~1e-7
# absolute for |params| ~ 1) unless a gradient coordinate's sign differs.
# (Measured: loss 3e-7 relative, step-1 gradients 5e-6 of each leaf's largest entry,
# parameters 1.2e-7 absolute. Not resolvable at 4 steps: AdamW's weight decay, 1e-4 x lr,
# moves a parameter by under 5e-7; an engine without it would pass.)
PARAM_RTOL, PARAM_ATOL = 1e-5, 1e-6
# Where the conjugate solves make decisions that float32 cannot resolve (w2ot's
# lbfgs_high_precision stops at |grad J| < 1e-3, where Armijo and ftol compare differences
# below J's rounding), a point's iteration count and solution depend on rounding. The
# fixture records how far w2ot's own numbers move when Y or H's parameters move by one ulp
# ("envelope", per quantity); otarena may be four times that far beyond the tolerances
# above. The envelope is the largest move over four one-ulp probes, a sample of the spread,
# while another instruction set rounds every reduction differently at once: measured on an
# AMD EPYC with AVX-512, d8/icnn-regression-lbfgs_high_precision's step-2 |grad D
# w_xs_3/bias| is 2.3 envelopes beyond the tolerances (every other quantity within 1), where
# the fixture's machine stayed within 2. Where nothing is undecidable the envelope is ~1e-7
# relative and the mean iteration count's envelope is 0, so iteration counts must then
# agree exactly; a missing or extra iteration moves points by 1e-3 to 1e-1, far beyond.
ENVELOPE_FACTOR = 4.0


def engine_for(config: str) -> Engine:
    dim, rest = config.split("/")
    potential, *amortization, solver = rest.split("-")
    amortization, finetune = AMORTIZATIONS["-".join(amortization)]
    spec = DualSpec(potential=potential, amortizer=H_MODEL, amortization=amortization,
                    conjugate_solver=SETTINGS[solver] if finetune else None)
    # The engine's cosine runs over iterations + 1 steps: w2ot's num_train_iter.
    budget = Budget("paper", iterations=NUM_TRAIN_ITER - 1)
    return Engine(pairs.load(f"hd-{dim[1:]}"), spec, budget)


def initial_state(engine: Engine, data: dict, dim: int, potential: str) -> dict:
    """The engine's state without pretraining, holding w2ot's initial parameters."""
    assert engine.decay_steps == NUM_TRAIN_ITER
    psi = to_otarena(potential, subtree(data, f"train/d{dim}/init/{potential}/D"))
    h = to_otarena(H_MODEL, subtree(data, f"train/d{dim}/init/{potential}/H"))
    state = engine.init_state(jax.random.key(0), 0)
    return {**state, "psi": psi, "h": h, "opt_psi": engine.directions["psi"].init(psi),
            "opt_h": engine.directions["h"].init(h)}


@pytest.mark.slow
@pytest.mark.parametrize("config", TRAIN_CONFIGS)
def test_trainer_steps_match_w2ot(config):
    data = fixture("trainer")
    dim = int(config.split("/")[0][1:])
    potential = config.split("/")[1].split("-")[0]
    engine = engine_for(config)
    ref = subtree(data, f"train/{config}")
    xs, ys = data[f"train/d{dim}/X"], data[f"train/d{dim}/Y"]
    state = initial_state(engine, data, dim, potential)
    templates = {who: subtree(data, f"train/d{dim}/init/{potential}/{who}") for who in "DH"}
    key = jax.random.key(0)  # the networks are deterministic: the key is not used

    @jax.jit  # one program per configuration (compiling dominates the test's time)
    def one_step(s, x, y):
        loss, aux, grads = engine.gradients(s, x, y, key)
        new, logs = engine.update(s, x, y, key)
        return jnp.mean(engine.psi.apply(s["psi"], x)), loss, aux, grads, new, logs

    envelope = subtree(ref, "envelope")
    problems = []

    def close(what, got, want, rtol, atol, spread):
        if abs(float(got) - float(want)) > atol + rtol * abs(float(want)) + ENVELOPE_FACTOR * spread:
            problems.append(f"{what}: otarena {float(got):.7g}, w2ot {float(want):.7g} "
                            f"(w2ot's rounding envelope {float(spread):.2g})")

    def per_leaf(who, kind):  # the envelope of a full tree: one number per leaf
        return {leaf: ENVELOPE_FACTOR * float(e)
                for leaf, e in zip(sorted(templates[who]), envelope[f"{kind}_{who}"])}

    for step in range(len(xs)):
        x, y = jnp.asarray(xs[step]), jnp.asarray(ys[step])
        at = f"step {step + 1}"

        def scalar(what, got, metric, rtol=LOSS_RTOL, atol=LOSS_ATOL):
            close(f"{at} {what}", got, ref[metric][step], rtol, atol, envelope[metric][step])

        mean_psi, loss, aux, grads, new_state, logs = one_step(state, x, y)
        scalar("mean psi(X)", mean_psi, "metrics/mean_x_potential")
        scalar("loss", loss, "loss")
        scalar("dual", aux["dual"], "metrics/dual_loss")
        if "metrics/amor_loss" in ref:
            scalar("amortization", aux["amortization"], "metrics/amor_loss")
        # Iteration counts are integers: their batch means agree exactly (up to the envelope).
        scalar("mean conjugate iterations", aux["conjugate_iterations"], "metrics/num_opt_iter",
               0.0, 0.0)
        for who, name, model in (("D", "psi", potential), ("H", "h", H_MODEL)):
            flat = flat_tree(grads[name])
            for i, leaf in enumerate(sorted(templates[who])):
                close(f"{at} |grad {who} {leaf}|", np.linalg.norm(flat[otarena_name(model, leaf)]),
                      ref[f"grad_norms_{who}"][step][i], GRAD_RTOL, GRAD_ATOL,
                      envelope[f"grad_norms_{who}"][step][i])
            if step == 0:
                gaps = tree_gaps(model, grads[name], unpack(ref[f"step1/grads_{who}"], templates[who]),
                                 GRAD_RTOL, GRAD_ATOL, per_leaf(who, "step1/grads"))
                problems += [f"{at} grad {who} {g}" for g in gaps]
        scalar("update's loss", logs["loss"], "loss")
        state = new_state
    for who, name, model in (("D", "psi", potential), ("H", "h", H_MODEL)):
        gaps = tree_gaps(model, state[name], unpack(ref[f"final/params_{who}"], templates[who]),
                         PARAM_RTOL, PARAM_ATOL, per_leaf(who, "final/params"))
        problems += [f"params {who} after step {len(xs)}: {g}" for g in gaps]
    assert not problems, f"{config}:\n  " + "\n  ".join(problems)


# -- identity pretraining ---------------------------------------------------------------------


@pytest.mark.parametrize("who,model_name", [("D", "icnn"), ("H", H_MODEL)])
def test_identity_pretraining_matches_w2ot(who, model_name, monkeypatch):
    """otarena's pretraining loop (Adam 1e-3, |map(x) - x|^2 summed over coordinates) on
    w2ot's batches gives w2ot's loss and parameters after each of 3 steps."""
    from otarena import dual

    data = fixture("pretrain")
    batches = jnp.asarray(data["pretrain/d2/X"])
    engine = engine_for("d2/icnn-regression-lbfgs")
    model = engine.psi if who == "D" else engine.h
    params = to_otarena(model_name, subtree(data, f"pretrain/d2/{who}/init"))
    key = jax.random.key(7)
    # Inject w2ot's batches: the loop draws step i's batch from fold_in(key, i).
    step_keys = jnp.stack([jax.random.key_data(jax.random.fold_in(key, i))
                           for i in range(len(batches))])

    def sampler(pre, k, n, dim):
        match = jnp.all(step_keys == jax.random.key_data(k), axis=1)
        # No match (the loop's key schedule changed): NaN makes the test fail loudly.
        return jnp.where(match.any(), batches[jnp.argmax(match)], jnp.nan)

    monkeypatch.setattr(dual.engine, "_sample_pretraining", sampler)
    losses = data[f"pretrain/d2/{who}/loss"]
    pretrain = jax.jit(lambda p, steps: engine.pretrain(model, p, key, steps, 1e-6))
    problems = []
    for steps in range(1, len(batches) + 1):
        got, loss, taken = pretrain(params, steps)
        assert int(taken) == steps
        if not np.isclose(loss, losses[steps - 1], rtol=LOSS_RTOL, atol=LOSS_ATOL):
            problems.append(f"step {steps} loss: otarena {float(loss):.7g}, w2ot {losses[steps - 1]:.7g}")
        gaps = tree_gaps(model_name, got, subtree(data, f"pretrain/d2/{who}/step{steps}/params"),
                         PARAM_RTOL, PARAM_ATOL)
        problems += [f"params after step {steps}: {g}" for g in gaps]
    assert not problems, "\n  ".join(problems)
