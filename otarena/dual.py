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
differ only in this configuration (a :class:`DualSpec`); one compiled program runs a chunk
of iterations (``lax.scan``) for several seeds at once (``vmap``), sampling on device.
"""

from __future__ import annotations

from collections.abc import Mapping
import time
import weakref
from dataclasses import asdict, dataclass, field
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
# A run stops when its loss is NaN or above this in magnitude, as in w2ot. The dual and
# amortization terms are checked too: with objective amortization and no fine-tuning they
# cancel in the total, which then stays small while psi blows up.
DIVERGENCE_BOUND = 1e5


@dataclass(frozen=True)
class Optimizer:
    name: str = "adamw"  # adamw | adam
    lr: float = 5e-4
    b1: float = 0.5
    b2: float = 0.5
    weight_decay: float = 1e-4
    cosine_final_fraction: float | None = 1e-4  # None: constant learning rate

    def build(self, steps: int) -> optax.GradientTransformation:
        lr = (self.lr if self.cosine_final_fraction is None else
              optax.cosine_decay_schedule(self.lr, max(steps, 1), self.cosine_final_fraction))
        if self.name == "adamw":
            return optax.adamw(lr, b1=self.b1, b2=self.b2, weight_decay=self.weight_decay)
        if self.weight_decay:
            return optax.chain(optax.add_decayed_weights(self.weight_decay),
                               optax.adam(lr, b1=self.b1, b2=self.b2))
        return optax.adam(lr, b1=self.b1, b2=self.b2)


@dataclass(frozen=True)
class Pretrain:
    """Fit the maps to the identity before training: E|map(x) - x|^2 on a fixed sampler."""

    sampler: str = "uniform"  # uniform on [-scale, scale]^D | normal with std scale | cube: [0, scale)^D
    scale: float = 5.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    tolerance: float = 1e-6  # stop once the loss is below (after min_steps)
    min_steps: int = 1000
    sum_coordinates: bool = True  # Amos: |.|^2 summed over coordinates; Korotin: MSE


@dataclass(frozen=True)
class DualSpec:
    potential: str  # a model name of otarena.models.networks
    amortizer: str | None  # None: no H
    amortization: str
    conjugate_solver: str | None  # fine-tuning during training: lbfgs | adam | batch-adam
    conjugate_start: str = "amortizer"  # amortizer | target | uniform01
    inverse_solver: str | None = "lbfgs"  # refines H(y) for the inverse map at evaluation
    amortizer_steps: int = 0  # 0: joint update; K: psi step then K H-only steps (Korotin MM)
    cycle_weight: float | None = None  # None: the dimension
    optimizer: Optimizer = Optimizer()
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

    def __post_init__(self):
        if self.amortization not in AMORTIZATIONS:
            raise ValueError(f"unknown amortization {self.amortization!r}")
        if self.amortization == "regression" and self.conjugate_solver is None:
            raise ValueError("regression amortization needs a conjugate solver")
        if self.amortizer is None and self.conjugate_solver is None:
            raise ValueError("without an amortizer the conjugate must be solved")

    def config(self) -> dict:
        config = asdict(self)
        if self.eval_size is None:  # unset: the configurations (and run ids) of before
            del config["eval_size"]
        return config


def _sample_uniform_or_normal(pre: Pretrain, key, n, dim):
    if pre.sampler == "uniform":
        return jax.random.uniform(key, (n, dim), minval=-pre.scale, maxval=pre.scale)
    if pre.sampler == "cube":  # Korotin's CubeUniformSampler (the unit cube) times `blow`
        return pre.scale * jax.random.uniform(key, (n, dim))
    return pre.scale * jax.random.normal(key, (n, dim))


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
        self.opt = spec.optimizer.build(self.iterations)
        self.solver = conjugate.SOLVERS[spec.conjugate_solver] if spec.conjugate_solver else None

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
    def _apply(self, state, grads, which, inputs=None):
        """Optimizer step and projection of the networks in ``which`` ('psi', 'h').

        ``inputs`` (name -> batch) refreshes the batch-norm running statistics of a network
        from the batch its training-mode forward saw, as PyTorch does in that forward.
        """
        new = dict(state)
        for name in which:
            model = self.psi if name == "psi" else self.h
            updates, new[f"opt_{name}"] = self.opt.update(grads[name], state[f"opt_{name}"], state[name])
            new[name] = model.project(optax.apply_updates(state[name], updates))
            if model.update_stats is not None and inputs is not None:
                new[name] = model.update_stats(state[name], new[name], inputs[name])
        return new

    def _grads(self, state, x, y, key, argnums):
        (loss, aux), grads = jax.value_and_grad(self.losses, argnums=argnums, has_aux=True)(
            state["psi"], state.get("h"), x, y, key)
        names = {0: "psi", 1: "h"}
        return loss, aux, {names[a]: g for a, g in zip(argnums, grads)}

    def step(self, state, _):
        key = jax.random.fold_in(state["key"], state["step"])
        kx, ky, kc, kinner = jax.random.split(key, 4)
        x = self.pair.sample_source(kx, self.batch_size)
        y = self.pair.sample_target(ky, self.batch_size)
        inputs = {"psi": x, "h": y}
        if self.h is None:
            loss, aux, grads = self._grads(state, x, y, kc, (0,))
            new = self._apply(state, grads, ("psi",), inputs)
        elif self.spec.amortizer_steps == 0:
            loss, aux, grads = self._grads(state, x, y, kc, (0, 1))
            new = self._apply(state, grads, ("psi", "h"), inputs)
        else:  # Korotin's maximin: a psi step, then K steps of H alone on fresh targets
            loss, aux, grads = self._grads(state, x, y, kc, (0,))
            new = self._apply(state, grads, ("psi",), inputs)

            def inner(s, k):
                yk = self.pair.sample_target(k, self.batch_size)
                _, _, g = self._grads(s, x, yk, k, (1,))
                return self._apply(s, g, ("h",), {"h": yk}), None

            new, _ = jax.lax.scan(inner, new, jax.random.split(kinner, self.spec.amortizer_steps))

        terms = jnp.stack([loss, aux["dual"], aux["amortization"]])
        bad = jnp.any(~jnp.isfinite(terms) | (jnp.abs(terms) > DIVERGENCE_BOUND))
        diverged = state["diverged"] | bad
        # A diverged seed keeps its last good parameters (and stops changing).
        new = jax.tree.map(lambda a, b: jnp.where(diverged, a, b), state, new)
        new["diverged"] = diverged
        new["step"] = state["step"] + 1
        new["key"] = state["key"]
        return new, {"loss": loss, **aux}

    # -- identity pretraining ----------------------------------------------------------------
    def pretrain(self, model, params, key):
        """Fit ``model``'s map to the identity; stops per seed at the tolerance."""
        pre = self.spec.pretrain
        opt = Optimizer("adam", pre.lr, 0.9, 0.999, pre.weight_decay, None).build(1)

        def loss_fn(p, x, k):
            err = (model.push_train(p, x, k) - x) ** 2
            return jnp.mean(jnp.sum(err, axis=1) if pre.sum_coordinates else err)

        def body(carry, i):
            p, s, done = carry
            k = jax.random.fold_in(key, i)
            x = _sample_uniform_or_normal(pre, k, self.batch_size, self.pair.dim)
            loss, g = jax.value_and_grad(loss_fn)(p, x, jax.random.fold_in(k, 1))
            done = done | ((i >= pre.min_steps) & (loss < pre.tolerance))
            updates, s_new = opt.update(g, s, p)
            p_new = model.project(optax.apply_updates(p, updates))
            if model.update_stats is not None:
                p_new = model.update_stats(p, p_new, x)
            keep = lambda a, b: jnp.where(done, a, b)  # noqa: E731
            return (jax.tree.map(keep, p, p_new), jax.tree.map(keep, s, s_new), done), loss

        (params, _, _), losses = jax.lax.scan(
            body, (params, opt.init(params), jnp.zeros((), bool)), jnp.arange(self.pretrain_steps))
        return params, losses[-1]

    def init_state(self, key):
        k_init, k_pre_psi, k_pre_h, k_train = jax.random.split(key, 4)
        pre = self.spec.pretrain
        init_batch = _sample_uniform_or_normal(pre, k_init, self.batch_size, self.pair.dim)
        psi_params = self.psi.init(k_init, init_batch)
        psi_params, pre_loss = self.pretrain(self.psi, psi_params, k_pre_psi)
        state = {"psi": psi_params, "opt_psi": self.opt.init(psi_params),
                 "step": jnp.zeros((), jnp.int32), "key": k_train,
                 "diverged": jnp.zeros((), bool), "pretrain_loss": pre_loss}
        if self.h is not None:
            if self.h.name == self.psi.name:  # both papers start H as a copy of psi
                h_params = psi_params
            else:
                h_params, _ = self.pretrain(self.h, self.h.init(k_init, init_batch), k_pre_h)
            state["h"] = h_params
            state["opt_h"] = self.opt.init(h_params)
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
            if self.spec.inverse_solver is None:
                return start
            solver = conjugate.SOLVERS[self.spec.inverse_solver]
            return solver.solve_batch(self.psi_batch(state["psi"]), v, start).x
        return _chunked(one_chunk, y, self.psi.eval_chunk)


    # -- compiled programs (one set per engine; engines are cached by configuration) ------
    @cached_property
    def init_states(self):
        return jax.jit(jax.vmap(self.init_state))

    @cached_property
    def run_chunk(self):
        """``length`` iterations of every seed, in one program."""
        def one_seed(state, length):
            state, logs = jax.lax.scan(self.step, state, None, length=length)
            return state, jax.tree.map(jnp.mean, logs)
        return jax.jit(jax.vmap(one_seed, in_axes=(0, None)), static_argnums=1)

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


def _stack_seeds(tree, n):
    return jax.tree.map(lambda a: a[n], tree)


def _to_host(states):
    """States as NumPy arrays (PRNG keys as their raw data), for a checkpoint."""
    return jax.device_get({**states, "key": jax.random.key_data(states["key"])})


def _from_host(saved):
    states = jax.tree.map(jnp.asarray, saved)
    return {**states, "key": jax.random.wrap_key_data(states["key"])}


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
    saved = runtime.load_checkpoint(checkpoint, signature)
    if saved is None:
        states, done = engine.init_states(keys), 0
        curve: list[list[dict]] = [[] for _ in range(len(keys))]
    else:
        states, done, curve = _from_host(saved["states"]), saved["done"], saved["curve"]
    x_eval, y_eval = metrics.evaluation_sample(pair, eval_size)
    last_save = time.monotonic()
    while done < engine.iterations and not all(c and c[-1]["diverged"] for c in curve):
        length = min(engine.eval_every, engine.iterations - done)
        states, logs = engine.run_chunk(states, length)
        done += length
        evals = jax.device_get({**engine.scores(states, x_eval, y_eval), **logs})
        diverged = np.asarray(states["diverged"])
        for i in range(len(keys)):
            curve[i].append({"iteration": done, "diverged": bool(diverged[i]),
                             **{k: float(v[i]) for k, v in evals.items()}})
        if checkpoint and time.monotonic() - last_save >= context.checkpoint_every:
            runtime.save_checkpoint(checkpoint, {"signature": signature, "done": done,
                                                 "curve": curve, "states": _to_host(states)})
            last_save = time.monotonic()
        if context.progress:
            context.progress(done, engine.iterations)

    fitted = []
    pretrain_loss = np.asarray(states["pretrain_loss"])
    forward, inverse = engine.forward_map, engine.inverse_map
    for i in range(len(keys)):
        state = _stack_seeds(states, i)
        first_bad = next((p["iteration"] for p in curve[i] if p["diverged"]), None)
        fitted.append(Fitted(
            forward=partial(forward, state["psi"]),
            inverse=partial(inverse, state),
            iterations=done if first_bad is None else first_bad,
            diverged=first_bad is not None,
            curve=tuple(curve[i]),
            info={"pretrain_final_loss": float(pretrain_loss[i]),
                  "pretrain_steps": engine.pretrain_steps,
                  "iterations_planned": engine.iterations, "eval_every": engine.eval_every,
                  "vmapped_seeds": len(keys)}))
    return fitted


def solver(name: str, spec: DualSpec, label: str = "", description: str = "") -> Solver:
    """A :class:`Solver` that trains ``spec`` with the engine (one seed or several vmapped)."""
    def fit_seeds(pair, keys, budget):
        return train(pair, spec, keys, budget)

    def fit(pair, key, budget):
        return fit_seeds(pair, key[None], budget)[0]

    config = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in spec.config().items()}
    return Solver(name=name, fit=fit, config=config, label=label, description=description,
                  fit_seeds=fit_seeds)

