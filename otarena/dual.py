"""The training engine of the dual-potential solvers (Amos 2023 and Korotin et al. 2021).

A potential psi (forward map grad psi) is trained on the dual

    min_psi  E_x psi(x) + E_y [<x_hat(y), y> - psi(x_hat(y))]

where x_hat(y), the conjugate point argmin_x psi(x) - <x, y>, is detached. x_hat comes from
an amortization model H (x_hat = H(y), or grad H(y) when H is a potential), optionally
fine-tuned by a conjugate solver warm-started at H(y). H learns by an amortization loss:

    objective       E_y [psi(H(y)) - <H(y), y>]              psi frozen
    regression      E |H(y) - x_hat_solver(y)|^2              toward the fine-tuned point
    cycle           w E|grad psi(H(y)) - y|^2 + w E|H(grad psi(x)) - x|^2   (W2GN; also trains psi)
    cycle-finetune  w E|grad psi(H(y)) - y|^2                 psi frozen, no x-side term
    none            H stays at its identity pretraining

Squared errors are means over batch and coordinates, as in both papers' code. Solvers
differ only in this configuration (a :class:`DualSpec`). Two rules follow each paper's code
where the papers differ: when a run stops (:class:`StopRule`, w2ot's early exit; Korotin's
notebooks never stop) and which iterate is reported (the final one, or Korotin's
best-so-far checkpoint, :class:`BestIterate`).

One compiled program runs a chunk of iterations (``lax.scan`` over the iteration index,
``vmap`` over seeds inside), sampling on device; the iteration count and the learning-rate
schedule's length are arguments of that program, not constants, so one program serves
every budget and every chunk.
"""

from __future__ import annotations

from collections.abc import Mapping
import math
import time
import weakref
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property, partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from otarena import conjugate, metrics, runtime
from otarena.budgets import Budget
from otarena.models import networks
from otarena.pairs import Pair
from otarena.solver import Fitted, Solver
from otarena.store import canonical, run_id

AMORTIZATIONS = ("objective", "regression", "cycle", "cycle-finetune", "none")


@dataclass(frozen=True)
class Optimizer:
    """Adam or AdamW (decoupled weight decay) with a constant or cosine learning rate.

    The cosine decays from ``lr`` to ``lr * cosine_final_fraction`` over the run (optax's
    ``cosine_decay_schedule``; w2ot's ``decay_steps`` is its ``num_train_iter``, one more
    than the last logged iteration, which is what the engine passes).
    """

    name: str = "adamw"  # adamw | adam (with coupled L2 when weight_decay > 0)
    lr: float = 5e-4
    b1: float = 0.5
    b2: float = 0.5
    weight_decay: float = 1e-4
    cosine_final_fraction: float | None = 1e-4  # None: constant learning rate

    def direction(self) -> optax.GradientTransformation:
        """The update before the learning rate: -lr(t) times this is the step."""
        adam = optax.scale_by_adam(b1=self.b1, b2=self.b2)
        if self.name == "adamw":  # optax.adamw: adam, then + wd * params, then * -lr
            return optax.chain(adam, optax.add_decayed_weights(self.weight_decay))
        if self.weight_decay:  # torch's Adam(weight_decay=...): L2 added to the gradient
            return optax.chain(optax.add_decayed_weights(self.weight_decay), adam)
        return adam

    def learning_rate(self, t, decay_steps):
        """The rate of 0-based step ``t`` (both may be traced)."""
        if self.cosine_final_fraction is None:
            return jnp.asarray(self.lr, jnp.float32)
        fraction = jnp.minimum(t, decay_steps) / decay_steps
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * fraction))
        alpha = self.cosine_final_fraction
        return self.lr * ((1 - alpha) * cosine + alpha)


@dataclass(frozen=True)
class Pretrain:
    """Fit the maps to the identity before training: E|map(x) - x|^2 on a fixed sampler.

    A step is taken, then the run stops if that step's (pre-step) loss was below the
    tolerance and at least ``min_steps`` steps preceded it: w2ot stops when ``i > 1000`` (so
    ``min_steps`` 1001), Korotin's ``train_identity_map`` whenever the loss is below 1e-3.
    """

    sampler: str = "uniform"  # uniform on [-scale, scale)^D | normal (std scale) | centered-cube: scale * U[-1/2, 1/2)^D
    scale: float = 5.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    tolerance: float = 1e-6
    min_steps: int = 1001
    sum_coordinates: bool = True  # Amos: |.|^2 summed over coordinates; Korotin: MSE
    amortizer_tolerance: float | None = None  # the H network's own tolerance (Korotin's UNet)


@dataclass(frozen=True)
class StopRule:
    """w2ot's early exit (``run_train.py``): at the logged iterations (the first and every
    ``every``-th) a run whose total loss on that iteration's batch is NaN or above
    ``bound`` in magnitude stops there; its parameters at that point are its result."""

    every: int = 1000
    bound: float = 1e5


@dataclass(frozen=True)
class BestIterate:
    """Korotin's notebooks: after iterations 1, 1 + every, 1 + 2 every, ... score both maps
    on ``size`` fresh points and keep the potential with the lowest forward L2-UVP and the
    conjugate network with the lowest inverse L2-UVP (their saved checkpoints)."""

    every: int = 100
    size: int | Mapping[str, int] = 4096  # or per budget profile


@dataclass(frozen=True)
class DualSpec:
    potential: str  # a model name of otarena.models.networks
    amortizer: str | None  # None: no H
    amortization: str
    # fine-tuning during training: a conjugate.SETTINGS name or a solver
    conjugate_solver: str | conjugate.Solver | None
    conjugate_start: str = "amortizer"  # amortizer | target | uniform01
    inverse_solver: str | conjugate.Solver | None = "lbfgs"  # refines H(y) for the inverse map
    amortizer_steps: int = 0  # 0: joint update; K: psi step then K H-only steps (Korotin MM)
    cycle_weight: float | None = None  # None: the dimension
    optimizer: Optimizer = Optimizer()
    amortizer_optimizer: Optimizer | None = None  # None: the same settings as psi's
    pretrain: Pretrain = Pretrain()
    iterations: Mapping[str, int] = field(default_factory=lambda: {
        "smoke": 100, "quick": 6000, "paper": 250_000})
    pretrain_steps: Mapping[str, int] = field(default_factory=lambda: {
        "smoke": 100, "quick": 2001, "paper": 10_001})
    eval_every: Mapping[str, int] = field(default_factory=lambda: {
        "smoke": 50, "quick": 500, "paper": 1000})
    batch_size: int | Mapping[str, int] = 1024  # or per budget profile
    # Points of the evaluations during training (per profile); None: metrics' default.
    eval_size: Mapping[str, int] | None = None
    stop: StopRule | None = StopRule()  # None: never stop (Korotin's notebooks)
    best_iterate: BestIterate | None = None  # None: the final iterate is reported

    def __post_init__(self):
        if self.amortization not in AMORTIZATIONS:
            raise ValueError(f"unknown amortization {self.amortization!r}")
        if self.amortization == "regression" and self.conjugate_solver is None:
            raise ValueError("regression amortization needs a conjugate solver")
        if self.amortizer is None and self.conjugate_solver is None:
            raise ValueError("without an amortizer the conjugate must be solved")
        conjugate.named(self.conjugate_solver), conjugate.named(self.inverse_solver)

    def config(self) -> dict:
        """Everything that determines a run, as data (the conjugate solvers with their
        algorithm and settings, so a changed solver makes new run ids)."""
        config = asdict(self)
        config["conjugate_solver"] = conjugate.describe(conjugate.named(self.conjugate_solver))
        config["inverse_solver"] = conjugate.describe(conjugate.named(self.inverse_solver))
        for optional in ("eval_size", "amortizer_optimizer", "best_iterate"):
            if config[optional] is None:
                del config[optional]
        return config


def _sample_pretraining(pre: Pretrain, key, n, dim):
    if pre.sampler == "uniform":
        return jax.random.uniform(key, (n, dim), minval=-pre.scale, maxval=pre.scale)
    if pre.sampler == "centered-cube":  # Korotin's CubeUniformSampler(centered=True) * blow
        return pre.scale * (jax.random.uniform(key, (n, dim)) - 0.5)
    return pre.scale * jax.random.normal(key, (n, dim))


_sample_uniform_or_normal = _sample_pretraining  # the name older code and tests use


def _chunked(fn, x, chunk: int | None):
    """fn over the rows of x in chunks of ``chunk`` rows (one program, bounded memory)."""
    n = x.shape[0]
    if chunk is None or n <= chunk:
        return fn(x)
    whole = n - n % chunk
    out = jax.lax.map(fn, x[:whole].reshape((whole // chunk, chunk) + x.shape[1:]))
    out = out.reshape((whole,) + out.shape[2:])
    return out if whole == n else jnp.concatenate([out, fn(x[whole:])])


def _keys(key, count):
    """Independent keys for the training-mode forwards of one loss (dropout masks)."""
    return [jax.random.fold_in(key, i) for i in range(1, count + 1)]


def _where(flag, a, b):
    return jax.tree.map(lambda u, v: jnp.where(flag, u, v), a, b)


LOGGED = ("loss", "dual", "amortization", "conjugate_iterations")


@dataclass
class Engine:
    """Everything compiled for one (pair, spec, budget)."""

    pair: Pair
    spec: DualSpec
    budget: Budget

    def __post_init__(self):
        spec, dim = self.spec, self.pair.dim
        self.iterations = self.budget.pick(dict(spec.iterations))
        self.eval_every = min(self.budget.eval_every or spec.eval_every[self.budget.profile],
                              self.iterations)
        self.pretrain_steps = spec.pretrain_steps[self.budget.profile]
        self.batch_size = (spec.batch_size if isinstance(spec.batch_size, int)
                           else spec.batch_size[self.budget.profile])
        self.psi = networks.build(spec.potential, dim)
        self.h = networks.build(spec.amortizer, dim) if spec.amortizer else None
        self.cycle_weight = float(dim if spec.cycle_weight is None else spec.cycle_weight)
        self.optimizers = {"psi": spec.optimizer, "h": spec.amortizer_optimizer or spec.optimizer}
        self.directions = {name: o.direction() for name, o in self.optimizers.items()}
        self.solver = conjugate.named(spec.conjugate_solver)
        rule = spec.best_iterate
        self.best_size = (None if rule is None else rule.size if isinstance(rule.size, int)
                          else rule.size[self.budget.profile])
        self.inverse_solver = conjugate.named(spec.inverse_solver)

    @property
    def decay_steps(self) -> int:
        """The cosine schedule's length: w2ot's num_train_iter (the last logged iteration
        is num_train_iter - 1, which is what the engine runs and reports)."""
        return self.iterations + 1

    # -- maps ---------------------------------------------------------------------------
    def psi_batch(self, params):
        return lambda x: self.psi.apply(params, x)

    def predict(self, state, y):
        """H(y): the amortized conjugate point (a start for the solver)."""
        if self.h is None:
            return y
        return self.h.push(state["h"], y)

    # -- losses ---------------------------------------------------------------------------
    # Every network call of a training loss is a training-mode forward with its own key
    # (dropout masks, batch statistics), as the official PyTorch loops run their networks
    # in train mode; deterministic networks ignore the keys. Solvers see eval-mode psi.
    def losses(self, psi_params, h_params, x, y, key):
        """(total loss, metrics) of one batch; grads w.r.t. both parameter sets are used."""
        k_h, k_x, k_hat, k_amortization = _keys(key, 4)
        prediction = y if self.h is None else self.h.push_train(h_params, y, k_h)
        start = {"amortizer": prediction, "target": y,
                 "uniform01": jax.random.uniform(key, y.shape)}[self.spec.conjugate_start]
        x_hat, iterations = jax.lax.stop_gradient(start), jnp.zeros(y.shape[:1], jnp.int32)
        if self.solver is not None:
            frozen = jax.lax.stop_gradient(psi_params)
            x_hat, iterations = self.solver.solve_batch(self.psi_batch(frozen), y, x_hat)
        x_hat = jax.lax.stop_gradient(x_hat)
        dual = (jnp.mean(self.psi.apply_train(psi_params, x, k_x))
                + jnp.mean(jnp.sum(x_hat * y, axis=1) - self.psi.apply_train(psi_params, x_hat, k_hat)))
        amortization = self.amortization_loss(psi_params, h_params, prediction, x_hat, x, y,
                                              k_amortization)
        return dual + amortization, {"dual": dual, "amortization": amortization,
                                     "conjugate_iterations": jnp.mean(iterations)}

    def amortization_loss(self, psi_params, h_params, prediction, x_hat, x, y, key=None):
        kind = self.spec.amortization
        frozen = jax.lax.stop_gradient(psi_params)
        k1, k2, k3 = _keys(jax.random.key(0) if key is None else key, 3)
        train = key is not None

        def psi_value(params, v, k):
            return self.psi.apply_train(params, v, k) if train else self.psi.apply(params, v)

        def push(model, params, v, k):
            return model.push_train(params, v, k) if train else model.push(params, v)

        if kind == "none":
            return jnp.zeros(())
        if kind == "objective":
            return jnp.mean(psi_value(frozen, prediction, k1) - jnp.sum(prediction * y, axis=1))
        if kind == "regression":
            return jnp.mean((prediction - x_hat) ** 2)
        if kind == "cycle":
            back = push(self.psi, psi_params, prediction, k1)
            there = push(self.h, h_params, push(self.psi, psi_params, x, k2), k3)
            return self.cycle_weight * (jnp.mean((back - y) ** 2) + jnp.mean((there - x) ** 2))
        back = push(self.psi, frozen, prediction, k1)  # cycle-finetune
        return self.cycle_weight * jnp.mean((back - y) ** 2)

    # -- one training iteration ---------------------------------------------------------------
    def apply_gradients(self, state, grads, which, inputs=None):
        """Optimizer step and projection of the networks in ``which`` ('psi', 'h').

        The learning rate is that of the state's step. ``inputs`` (name -> batch) refreshes
        the batch-norm running statistics of a network from the batch its training-mode
        forward saw, as PyTorch does in that forward.
        """
        new = dict(state)
        for name in which:
            model = self.psi if name == "psi" else self.h
            direction, new[f"opt_{name}"] = self.directions[name].update(
                grads[name], state[f"opt_{name}"], state[name])
            rate = self.optimizers[name].learning_rate(state["step"], state["decay_steps"])
            updates = jax.tree.map(lambda u: -rate * u, direction)
            new[name] = model.project(optax.apply_updates(state[name], updates))
            if model.update_stats is not None and inputs is not None:
                new[name] = model.update_stats(state[name], new[name], inputs[name])
        return new

    def gradients(self, state, x, y, key, argnums=(0, 1)):
        """(loss, metrics, {'psi': grads, 'h': grads}) of one batch."""
        if self.h is None:
            argnums = (0,)
        (loss, aux), grads = jax.value_and_grad(self.losses, argnums=argnums, has_aux=True)(
            state["psi"], state.get("h"), x, y, key)
        names = {0: "psi", 1: "h"}
        return loss, aux, {names[a]: g for a, g in zip(argnums, grads)}

    def update(self, state, x, y, key, inner_targets=None):
        """One iteration on the batches ``x``, ``y``: (new state, logs).

        For Korotin's maximin (``amortizer_steps`` K > 0), a psi step, then K steps of H
        alone on the fresh targets ``inner_targets`` (K, n, D), drawn here if not given.
        """
        inputs = {"psi": x, "h": y}
        if self.h is None:
            loss, aux, grads = self.gradients(state, x, y, key)
            new = self.apply_gradients(state, grads, ("psi",), inputs)
        elif self.spec.amortizer_steps == 0:
            loss, aux, grads = self.gradients(state, x, y, key)
            new = self.apply_gradients(state, grads, ("psi", "h"), inputs)
        else:  # Korotin's maximin: a psi step, then K steps of H alone on fresh targets
            loss, aux, grads = self.gradients(state, x, y, key, (0,))
            new = self.apply_gradients(state, grads, ("psi",), inputs)
            keys = jax.random.split(jax.random.fold_in(key, 0x1A4E), self.spec.amortizer_steps)
            if inner_targets is None:
                inner_targets = jax.vmap(lambda k: self.pair.sample_target(k, y.shape[0]))(keys)

            def inner(s, target_and_key):
                yk, k = target_and_key
                _, _, g = self.gradients(s, x, yk, k, (1,))
                return self.apply_gradients(s, g, ("h",), {"h": yk}), None

            new, _ = jax.lax.scan(inner, new, (inner_targets, keys))
        new["step"] = state["step"] + 1
        return new, {"loss": loss, **aux}

    def train_step(self, state, t):
        """Iteration ``t`` (0-based) of one seed, with the paper's stopping rule."""
        key = jax.random.fold_in(state["key"], t)
        kx, ky, kc = jax.random.split(key, 3)
        x = self.pair.sample_source(kx, self.batch_size)
        y = self.pair.sample_target(ky, self.batch_size)
        new, logs = self.update(state, x, y, kc)
        loss = logs["loss"]
        new["nonfinite"] = state["nonfinite"] | ~jnp.isfinite(loss)
        rule = self.spec.stop
        if rule is not None:
            logged = (t == 0) | ((t + 1) % rule.every == 0)
            bad = logged & (~jnp.isfinite(loss) | (jnp.abs(loss) > rule.bound))
            new["stopped_at"] = jnp.where(bad & (state["stopped_at"] < 0), t + 1,
                                          state["stopped_at"])
            new = _where(state["stopped_at"] >= 0, state, new)  # stopped: frozen from then on
        return new, logs

    # -- Korotin's best iterate ----------------------------------------------------------------
    def fresh_scores(self, psi_params, state, key, size):
        """Forward and inverse L2-UVP on ``size`` fresh points (the notebooks' evaluation)."""
        x, y = self.pair.sample_coupled(key, size)
        forward = self.push_forward(psi_params, x)
        inverse = self.inverse(state, y)
        return (100.0 * jnp.mean(jnp.sum((forward - y) ** 2, 1)) / self.pair.target_var,
                100.0 * jnp.mean(jnp.sum((inverse - x) ** 2, 1)) / self.pair.source_var)

    def track_best(self, state, t):
        rule = self.spec.best_iterate
        key = jax.random.fold_in(jax.random.fold_in(state["key"], t), 0xBE57)
        fwd, inv = self.fresh_scores(state["psi"], state, key, self.best_size)
        best = dict(state["best"])
        better_fwd, better_inv = fwd < best["fwd"], inv < best["inv"]  # NaN is never better
        best["psi"] = _where(better_fwd, state["psi"], best["psi"])
        best["fwd"], best["fwd_at"] = (jnp.where(better_fwd, fwd, best["fwd"]),
                                       jnp.where(better_fwd, t + 1, best["fwd_at"]))
        if self.h is not None:
            best["h"] = _where(better_inv, state["h"], best["h"])
        best["inv"], best["inv_at"] = (jnp.where(better_inv, inv, best["inv"]),
                                       jnp.where(better_inv, t + 1, best["inv_at"]))
        return {**state, "best": best}

    # -- identity pretraining ----------------------------------------------------------------
    def pretrain(self, model, params, key, steps, tolerance):
        """Fit ``model``'s map to the identity for at most ``steps`` steps (may be traced)."""
        pre = self.spec.pretrain
        opt = Optimizer("adam", pre.lr, 0.9, 0.999, pre.weight_decay, None)
        direction = opt.direction()

        def loss_fn(p, x, k):
            err = (model.push_train(p, x, k) - x) ** 2
            return jnp.mean(jnp.sum(err, axis=1) if pre.sum_coordinates else err)

        def keep_going(carry):
            i, _, _, done, _ = carry
            return (i < steps) & ~done

        def body(carry):
            i, p, s, _, _ = carry
            k = jax.random.fold_in(key, i)
            x = _sample_pretraining(pre, k, self.batch_size, self.pair.dim)
            loss, g = jax.value_and_grad(loss_fn)(p, x, jax.random.fold_in(k, 1))
            d, s = direction.update(g, s, p)
            p_new = model.project(optax.apply_updates(p, jax.tree.map(lambda u: -pre.lr * u, d)))
            if model.update_stats is not None:
                p_new = model.update_stats(p, p_new, x)
            done = (i >= pre.min_steps) & (loss < tolerance)  # after this step, as both papers
            return i + 1, p_new, s, done, loss

        init = (jnp.zeros((), jnp.int32), params, direction.init(params), jnp.zeros((), bool),
                jnp.full((), jnp.inf, jnp.float32))
        steps_taken, params, _, _, last = jax.lax.while_loop(keep_going, body, init)
        return params, last, steps_taken

    def init_state(self, key, pretrain_steps):
        k_init, k_pre_psi, k_pre_h, k_train = jax.random.split(key, 4)
        pre = self.spec.pretrain
        init_batch = _sample_pretraining(pre, k_init, self.batch_size, self.pair.dim)
        psi_params = self.psi.init(k_init, init_batch)
        psi_params, pre_loss, pre_steps = self.pretrain(self.psi, psi_params, k_pre_psi,
                                                        pretrain_steps, pre.tolerance)
        state = {"psi": psi_params, "opt_psi": self.directions["psi"].init(psi_params),
                 "step": jnp.zeros((), jnp.int32),
                 "decay_steps": jnp.asarray(self.decay_steps, jnp.int32),
                 "key": k_train, "nonfinite": jnp.zeros((), bool),
                 "stopped_at": jnp.full((), -1, jnp.int32),
                 "pretrain_loss": pre_loss, "pretrain_steps": pre_steps}
        if self.h is not None:
            if self.h.name == self.psi.name:  # both papers start H as a copy of psi
                h_params = psi_params
            else:
                h_params, _, _ = self.pretrain(self.h, self.h.init(k_init, init_batch), k_pre_h,
                                               pretrain_steps,
                                               pre.amortizer_tolerance or pre.tolerance)
            state["h"] = h_params
            state["opt_h"] = self.directions["h"].init(h_params)
        if self.spec.best_iterate is not None:
            never = jnp.full((), jnp.inf, jnp.float32)
            state["best"] = {"psi": psi_params, "fwd": never, "inv": never,
                             "fwd_at": jnp.zeros((), jnp.int32), "inv_at": jnp.zeros((), jnp.int32)}
            if self.h is not None:
                state["best"]["h"] = state["h"]
        return state

    # -- evaluation ---------------------------------------------------------------------------
    def push_forward(self, psi_params, x):
        """grad psi on a batch of any size, in chunks of the model's ``eval_chunk`` rows."""
        return _chunked(lambda v: self.psi.push(psi_params, v), x, self.psi.eval_chunk)

    def forward_scores(self, state, x, y):
        """Forward L2-UVP and cosine of grad psi on the fixed evaluation sample."""
        sums = metrics.displacement_sums(x, y, self.push_forward(state["psi"], x)) / x.shape[0]
        uvp, cos = metrics.scores(sums, self.pair.target_var, self.pair.cost)
        return {"l2_uvp_fwd": uvp, "cos_fwd": cos}

    def inverse(self, state, y):
        """H(y) refined by the inverse solver (the engine's inverse map at evaluation)."""
        def one_chunk(v):
            start = self.predict(state, v)
            if self.inverse_solver is None:
                return start
            return self.inverse_solver.solve_batch(self.psi_batch(state["psi"]), v, start).x
        return _chunked(one_chunk, y, self.psi.eval_chunk)

    # -- compiled programs (one set per engine; engines are cached by configuration) ------
    @cached_property
    def init_states(self):
        """(keys, pretraining steps) -> states of every seed."""
        return jax.jit(jax.vmap(self.init_state, in_axes=(0, None)))

    @cached_property
    def run_chunk(self):
        """(states, first iteration, total iterations) -> (states, mean logs per seed).

        Runs iterations first .. first + eval_every - 1 of every seed; iterations at or past
        ``total`` are skipped, so the last, shorter chunk is the same program.
        """
        length = self.eval_every
        best = self.spec.best_iterate

        def run(states, first, total):
            states = {**states, "decay_steps": jnp.broadcast_to(
                jnp.asarray(total + 1, jnp.int32), states["decay_steps"].shape)}
            zeros = {k: jnp.zeros(states["step"].shape, jnp.float32) for k in LOGGED}

            def body(carry, t):
                states, sums = carry

                def active(states):
                    new, logs = jax.vmap(self.train_step, in_axes=(0, None))(states, t)
                    return new, {k: logs[k].astype(jnp.float32) for k in LOGGED}

                states, logs = jax.lax.cond(t < total, active, lambda s: (s, zeros), states)
                if best is not None:
                    states = jax.lax.cond((t < total) & (t % best.every == 0),
                                          jax.vmap(self.track_best, in_axes=(0, None)),
                                          lambda s, _: s, states, t)
                return (states, {k: sums[k] + logs[k] for k in LOGGED}), None

            steps = first + jnp.arange(length, dtype=jnp.int32)
            (states, sums), _ = jax.lax.scan(body, (states, zeros), steps)
            count = jnp.maximum(jnp.minimum(total - first, length), 1).astype(jnp.float32)
            return states, {k: v / count for k, v in sums.items()}

        return jax.jit(run)

    @cached_property
    def scores(self):
        return jax.jit(jax.vmap(self.forward_scores, in_axes=(0, None, None)))

    @cached_property
    def forward_map(self):
        return jax.jit(self.push_forward)

    @cached_property
    def inverse_map(self):
        return jax.jit(self.inverse)


_ENGINES: weakref.WeakKeyDictionary[Pair, dict] = weakref.WeakKeyDictionary()


def engine_for(pair: Pair, spec: DualSpec, budget: Budget) -> Engine:
    """The engine of a configuration, built and compiled once per pair object."""
    engines = _ENGINES.setdefault(pair, {})
    key = (canonical(spec.config()), budget)
    if key not in engines:
        engines[key] = Engine(pair, spec, budget)
    return engines[key]


def _seed(tree, n):
    return jax.tree.map(lambda a: a[n], tree)


def _to_host(states):
    """States as NumPy arrays (PRNG keys as their raw data), for a checkpoint."""
    return jax.device_get({**states, "key": jax.random.key_data(states["key"])})


def _from_host(saved):
    states = jax.tree.map(jnp.asarray, saved)
    return {**states, "key": jax.random.wrap_key_data(states["key"])}


class _Clock:
    """Seconds spent per phase (compile, pretraining, training, evaluation)."""

    def __init__(self, spent: Mapping[str, float] | None = None):
        self.spent = dict(spent or {})

    def time(self, phase, fn, *args):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        self.spent[phase] = self.spent.get(phase, 0.0) + time.perf_counter() - start
        return out

    def compiled(self, engine: Engine, name: str, *args):
        """The engine's program ``name`` compiled ahead of time for arguments shaped like
        ``args`` (once per engine and shapes); compiling is a phase of its own."""
        shapes = tuple((np.shape(a), str(getattr(a, "dtype", type(a))))
                       for a in jax.tree.leaves(args))
        cache = engine.__dict__.setdefault("_compiled", {})
        if (name, shapes) not in cache:
            cache[name, shapes] = self.time(
                "compile", lambda: getattr(engine, name).lower(*args).compile())
        return cache[name, shapes]


def train(pair: Pair, spec: DualSpec, keys: jax.Array, budget: Budget,
          eval_size: int = metrics.DEFAULT_EVAL_SIZE) -> list[Fitted]:
    """Train one run per key (vmapped) and return one :class:`Fitted` per key.

    Under a :mod:`otarena.runtime` context the state is checkpointed every few minutes and
    a killed run resumes from its last checkpoint, giving the same result.
    """
    engine = engine_for(pair, spec, budget)
    if spec.eval_size is not None:
        eval_size = spec.eval_size[budget.profile]
    context = runtime.current()
    signature = run_id({"pair": pair.label, "spec": spec.config(), "budget": budget.as_dict(),
                        "keys": np.asarray(jax.random.key_data(keys)).tolist(),
                        "eval_size": eval_size})
    checkpoint = (context.checkpoint.with_name(f"{context.checkpoint.stem}-{signature}.pkl")
                  if context.checkpoint else None)
    saved = runtime.load_checkpoint(checkpoint, signature, planned=engine.iterations)
    total, steps = engine.iterations, engine.pretrain_steps
    x_eval, y_eval = metrics.evaluation_sample(pair, eval_size)
    if saved is None:
        clock = _Clock()
        init = clock.compiled(engine, "init_states", keys, steps)
        states, done = clock.time("pretrain", init, keys, steps), 0
        curve: list[list[dict]] = [[] for _ in range(len(keys))]
    else:
        clock = _Clock(saved.get("seconds"))
        states, done, curve = _from_host(saved["states"]), saved["done"], saved["curve"]
    run_chunk = clock.compiled(engine, "run_chunk", states, done, total)
    scores = clock.compiled(engine, "scores", states, x_eval, y_eval)
    last_save = time.monotonic()
    while done < total and not bool(np.all(np.asarray(states["stopped_at"]) >= 0)):
        states, logs = clock.time("train", run_chunk, states, done, total)
        done = min(done + engine.eval_every, total)
        evals = jax.device_get({**clock.time("evaluate", scores, states, x_eval, y_eval),
                                **logs})
        stopped = np.asarray(states["stopped_at"])
        for i in range(len(keys)):
            if curve[i] and curve[i][-1].get("stopped"):
                continue  # a stopped seed's curve ends at its last logged evaluation
            curve[i].append({"iteration": int(stopped[i]) if stopped[i] >= 0 else done,
                             "stopped": bool(stopped[i] >= 0),
                             **{k: float(v[i]) for k, v in evals.items()}})
        if checkpoint and time.monotonic() - last_save >= context.checkpoint_every:
            runtime.save_checkpoint(checkpoint, {"signature": signature, "done": done,
                                                 "curve": curve, "seconds": clock.spent,
                                                 "states": _to_host(states)})
            last_save = time.monotonic()
        if context.progress:
            context.progress(done, total)

    host = jax.device_get({k: states[k] for k in ("pretrain_loss", "pretrain_steps",
                                                  "stopped_at", "nonfinite")})
    timing = {"compile_seconds": clock.spent.get("compile", 0.0),
              "pretrain_seconds": clock.spent.get("pretrain", 0.0),
              "train_seconds": clock.spent.get("train", 0.0),
              "curve_eval_seconds": clock.spent.get("evaluate", 0.0),
              "iterations_timed": done, "seeds_in_program": len(keys)}
    timing["seconds_per_iteration"] = timing["train_seconds"] / done if done else None
    forward, inverse = engine.forward_map, engine.inverse_map
    best_host = jax.device_get(states["best"]) if spec.best_iterate is not None else None
    fitted = []
    for i in range(len(keys)):
        state = _seed(states, i)
        stopped_at = int(host["stopped_at"][i])
        info = {"pretrain_final_loss": float(host["pretrain_loss"][i]),
                "pretrain_steps": int(host["pretrain_steps"][i]),
                "pretrain_steps_planned": steps,
                "iterations_planned": total, "eval_every": engine.eval_every,
                "nonfinite_loss_seen": bool(host["nonfinite"][i]),
                "stop_rule": None if spec.stop is None else asdict(spec.stop),
                "timing": timing}
        alternatives = {}
        if best_host is not None:
            best = state["best"]
            info["best_iterate"] = {
                "rule": {"every": spec.best_iterate.every, "size": engine.best_size},
                "forward_at": int(best_host["fwd_at"][i]),
                "inverse_at": int(best_host["inv_at"][i]),
                "l2_uvp_fwd_fresh": float(best_host["fwd"][i]),
                "l2_uvp_inv_fresh": float(best_host["inv"][i])}
            best_state = {**state, "psi": best["psi"], **({"h": best["h"]} if "h" in best else {})}
            alternatives["final"] = (partial(forward, state["psi"]), partial(inverse, state))
            chosen = (partial(forward, best["psi"]), partial(inverse, best_state))
        else:
            chosen = (partial(forward, state["psi"]), partial(inverse, state))
        fitted.append(Fitted(
            forward=chosen[0], inverse=chosen[1],
            iterations=stopped_at if stopped_at >= 0 else done,
            diverged=stopped_at >= 0,
            curve=tuple(curve[i]), info=info,
            reported_iterate="best" if best_host is not None else "final",
            alternatives=alternatives))
    return fitted


def solver(name: str, spec: DualSpec, label: str = "", description: str = "") -> Solver:
    """A :class:`Solver` that trains ``spec`` with the engine (one seed or several vmapped)."""
    def fit_seeds(pair, keys, budget):
        return train(pair, spec, keys, budget)

    def fit(pair, key, budget):
        return fit_seeds(pair, key[None], budget)[0]

    config = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in spec.config().items()}
    return Solver(name=name, fit=fit, config=config, label=label, description=description,
                  fit_seeds=fit_seeds, engine_spec=spec)
