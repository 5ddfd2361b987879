"""The training engine of the dual-potential solvers (Amos 2023 and Korotin et al. 2021).

A potential psi (forward map grad psi) is trained on the dual

    min_psi  E_x psi(x) + E_y [<x_hat(y), y> - psi(x_hat(y))]

where x_hat(y), the conjugate point argmin_x psi(x) - <x, y>, is detached. x_hat comes from
an amortization model H (x_hat = H(y), or grad H(y) when H is a potential), optionally
fine-tuned by a conjugate solver warm-started at H(y); H learns by an amortization loss
(:mod:`otarena.dual.amortization`). Solvers differ only in their configuration (a
:class:`~otarena.dual.spec.DualSpec`). Two rules follow each paper's code where the papers
differ: when a run stops (w2ot's early exit; Korotin's notebooks never stop) and which
iterate is reported (the final one, or Korotin's best-so-far checkpoint).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from otarena import conjugate, metrics
from otarena.budgets import Budget
from otarena.dual import amortization as strategies
from otarena.dual.programs import Programs
from otarena.dual.spec import DualSpec, Optimizer, Pretrain
from otarena.models import networks
from otarena.pairs import Pair
from otarena.store import canonical


def _sample_pretraining(pre: Pretrain, key, n, dim):
    if pre.sampler == "uniform":
        return jax.random.uniform(key, (n, dim), minval=-pre.scale, maxval=pre.scale)
    if pre.sampler == "centered-cube":  # Korotin's CubeUniformSampler(centered=True) * blow
        return pre.scale * (jax.random.uniform(key, (n, dim)) - 0.5)
    if pre.sampler == "normal":
        return pre.scale * jax.random.normal(key, (n, dim))
    raise ValueError(f"unknown pretraining sampler {pre.sampler!r} "
                     "(uniform | normal | centered-cube)")


def _chunked(fn, x, chunk: int | None):
    """fn over the rows of x in chunks of ``chunk`` rows (one program, bounded memory)."""
    n = x.shape[0]
    if chunk is None or n <= chunk:
        return fn(x)
    whole = n - n % chunk
    out = jax.lax.map(fn, x[:whole].reshape((whole // chunk, chunk) + x.shape[1:]))
    out = out.reshape((whole,) + out.shape[2:])
    return out if whole == n else jnp.concatenate([out, fn(x[whole:])])


def _where(flag, a, b):
    return jax.tree.map(lambda u, v: jnp.where(flag, u, v), a, b)


@dataclass
class Engine(Programs):
    """Everything compiled for one (pair, spec, budget): the losses and steps here, the
    compiled programs over them in :class:`~otarena.dual.programs.Programs`."""

    pair: Pair
    spec: DualSpec
    budget: Budget

    def __post_init__(self):
        spec, dim = self.spec, self.pair.dim
        self.iterations = self.budget.pick(dict(spec.iterations))
        self.eval_every = min(self.budget.eval_every or self.budget.of(spec.eval_every),
                              self.iterations)
        self.pretrain_steps = self.budget.of(spec.pretrain_steps)
        self.batch_size = self.budget.of(spec.batch_size)
        self.amortization = strategies.named(spec.amortization)
        self.start = strategies.start_named(spec.conjugate_start)
        self.psi = networks.build(spec.potential, dim)
        self.h = networks.build(spec.amortizer, dim) if spec.amortizer else None
        self.cycle_weight = float(dim if spec.cycle_weight is None else spec.cycle_weight)
        self.optimizers = {"psi": spec.optimizer, "h": spec.amortizer_optimizer or spec.optimizer}
        self.directions = {name: o.direction() for name, o in self.optimizers.items()}
        self.solver = conjugate.named(spec.conjugate_solver)
        rule = spec.best_iterate
        self.best_size = None if rule is None else self.budget.of(rule.size)
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
        k_h, k_x, k_hat, k_amortization = strategies.keys_of(key, 4)
        prediction = y if self.h is None else self.h.push_train(h_params, y, k_h)
        start = self.start.point(prediction, y, key)
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
        """The amortization strategy's loss (training-mode forwards when a key is given)."""
        return self.amortization.loss(self, psi_params, h_params, prediction, x_hat, x, y,
                                      strategies.Forwards(key))

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


_ENGINES: weakref.WeakKeyDictionary[Pair, dict] = weakref.WeakKeyDictionary()


def engine_for(pair: Pair, spec: DualSpec, budget: Budget) -> Engine:
    """The engine of a configuration, built and compiled once per pair object."""
    engines = _ENGINES.setdefault(pair, {})
    key = (canonical(spec.config()), budget)
    if key not in engines:
        engines[key] = Engine(pair, spec, budget)
    return engines[key]
