"""Meta OT for discrete entropic OT (Amos et al., ICML 2023): the model and its training.

An MLP maps the weights (a, b) of an instance of a problem family to the first dual
potential f. The second potential is recovered exactly by one Sinkhorn half-step,

    g(f) = eps log b - eps log(K^T exp(f / eps)),    K = exp(-C / eps),

and the model is trained, without any solved instance, to maximize the entropic dual
objective at (f, g(f)) over fresh batches of instances (objective-based amortization).
Hyperparameters as in the paper: 3 hidden layers of 1024 ReLU units, Adam 1e-3 with
global-norm clipping 1.0, batch 128, 50k iterations (``paper`` budget).

The whole training loop runs on device: batches are drawn by the family's pure-JAX
sampler inside the step, and ``lax.scan`` runs chunks of steps per call. Trained models
are cached (:mod:`otarena.sinkhorn.artifacts`), so the runtime table never retrains a
model it already has; a training run killed before its end resumes from its checkpoint.

OTT-JAX's own ``MetaInitializer`` is trained here too (same model, optimizer and
batches, through its ``update``) as a peer row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from ott.geometry import geometry

from otarena import runtime
from otarena.sinkhorn.config import TrainConfig



class MetaMLP(nn.Module):
    """f = MLP(concat(a, b)): ``layers`` hidden ReLU layers of ``hidden`` units.

    ``dtype`` is the computation's, ``param_dtype`` the parameters'. The paper's model
    (``nn.Dense(dtype=jnp.float64)`` under flax's default ``param_dtype``) keeps float32
    parameters and computes in float64: each layer casts its weights up.
    """

    n_out: int
    hidden: int = 1024
    layers: int = 3
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        for _ in range(self.layers):
            z = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, param_dtype=self.param_dtype)(z))
        return nn.Dense(self.n_out, dtype=self.dtype, param_dtype=self.param_dtype)(z)


def gibbs_geometry(cost: jax.Array, epsilon: float) -> geometry.Geometry:
    return geometry.Geometry(cost_matrix=cost, epsilon=epsilon)


def g_from_f(geom: geometry.Geometry, f: jax.Array, b: jax.Array) -> jax.Array:
    """The exact g-update of log-domain Sinkhorn from f (OTT's own half-step)."""
    return geom.update_potential(f, jnp.zeros_like(b), jnp.log(b), 0, axis=0)


def dual_objective(geom: geometry.Geometry, f: jax.Array, a: jax.Array, b: jax.Array
                   ) -> jax.Array:
    """The entropic dual at (f, g(f)), up to a constant: <f, a> + <g(f), b>.

    The full dual also subtracts eps <exp(f/eps), K exp(g/eps)>; with g = g(f) that term
    is eps * sum(b) whatever f is, so it changes neither the optimum nor the gradient,
    and leaving it out saves one more pass over the n x m kernel. Atoms with b_j = 0 get
    g_j = -inf and contribute nothing.
    """
    g = g_from_f(geom, f, b)
    return jnp.dot(f, a) + jnp.sum(jnp.where(b > 0, g * b, 0.0))


def make_model(config: TrainConfig, n_out: int) -> MetaMLP:
    return MetaMLP(n_out=n_out, hidden=config.hidden, layers=config.layers,
                   dtype=jnp.dtype(config.dtype), param_dtype=jnp.dtype(config.param_dtype))


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(config.clip_norm),
                       optax.adam(config.learning_rate))


def train_keys(config: TrainConfig) -> tuple[jax.Array, jax.Array]:
    """(parameter initialization key, batch key) of a training run."""
    return tuple(jax.random.split(jax.random.key(config.seed)))


def init_params(config: TrainConfig, n_in: int, n_out: int):
    """The model's parameters before training (OTT's MetaInitializer draws the same)."""
    model = make_model(config, n_out)
    return model.init(train_keys(config)[0], jnp.zeros(n_in, model.dtype))["params"]


def predict_f(model: MetaMLP, params, a: jax.Array, b: jax.Array) -> jax.Array:
    return model.apply({"params": params}, jnp.concatenate([a, b], axis=-1))


@dataclass
class Trained:
    config: TrainConfig
    params: Any
    curve: list[dict]  # {"iteration", "loss"}: mean loss over each chunk of steps
    train_seconds: float  # wall clock of the training run, compilation included
    steady_seconds_per_iteration: float | None  # after the first (compiling) chunk
    artifact: str | None = None
    cached: bool = False
    info: dict | None = None
    diverged_at: int | None = None  # the first logged iteration whose loss was not finite

    def model(self, n_out: int) -> MetaMLP:
        return make_model(self.config, n_out)


def step_keys(data_key: jax.Array, start: int, count: int) -> jax.Array:
    """The batch keys of steps start..start+count-1: the same batches whatever the chunking."""
    return jax.vmap(lambda i: jax.random.fold_in(data_key, i))(jnp.arange(start, start + count))


def _chunks(iterations: int, chunk: int) -> list[int]:
    sizes = [chunk] * (iterations // chunk)
    return sizes + ([iterations % chunk] if iterations % chunk else [])


class _Progress:
    """A training run's checkpoints and progress through the runner's runtime context: the
    state is saved every ``checkpoint_every`` seconds (at chunk or report boundaries), and a
    run killed in between resumes from it with the same batches and the same result."""

    def __init__(self, config: TrainConfig):
        self.context = runtime.current()
        stem = self.context.checkpoint
        self.path = stem.with_name(f"{stem.stem}-{config.key()}.pkl") if stem else None
        self.signature, self.planned = config.key(), config.iterations
        self.last_save = time.monotonic()
        self.start = time.perf_counter()

    def resume(self) -> dict | None:
        """The saved run ({done, curve, state, seconds, steady}) or None."""
        return runtime.load_checkpoint(self.path, self.signature, planned=self.planned)

    def step(self, done: int, curve: list[dict], state, seconds: float, steady) -> None:
        if self.path and time.monotonic() - self.last_save >= self.context.checkpoint_every:
            runtime.save_checkpoint(self.path, {
                "signature": self.signature, "done": done, "curve": [curve],
                "state": jax.device_get(state), "seconds": seconds, "steady": steady})
            self.last_save = time.monotonic()
        if self.context.progress:
            self.context.progress(done, self.planned)


def _steady(times: tuple[float, int]) -> float | None:
    """Seconds per iteration after each segment's first (compiling) chunk."""
    return times[0] / times[1] if times[1] else None


def train(family, config: TrainConfig, chunk: int = 100,
          log: Callable[[str], None] = print) -> Trained:
    """Train the Meta OT MLP on the family's instances; the scan loop runs on device.

    Args:
        family: a :class:`~otarena.sinkhorn.family.ProblemFamily` (its sampler draws the
            training batches inside the compiled step).
        config: everything that determines the model (hashed into its artifact key).
        chunk: steps per compiled call; the curve holds each chunk's mean loss.
        log: where progress lines go.

    Returns:
        The trained model; under a runner's runtime context the run is checkpointed and
        resumes where a killed run stopped, with the same result.
    """
    if config.trainer == "ott":
        return train_with_ott(family, config, log=log)
    progress = _Progress(config)
    with jax.enable_x64(config.dtype == "float64"):
        n_a = len(family.x)
        model = make_model(config, n_a)
        opt = make_optimizer(config)
        geom = gibbs_geometry(family.cost_matrix(), family.epsilon)
        init_key, data_key = train_keys(config)
        params = init_params(config, n_a + len(family.y), n_a)
        state = (params, opt.init(params))

        def loss_fn(params, a, b):
            f = jax.vmap(lambda a, b: predict_f(model, params, a, b))(a, b)
            return -jnp.mean(jax.vmap(lambda f, a, b: dual_objective(geom, f, a, b))(f, a, b))

        def step(state, key):
            params, opt_state = state
            a, b = family.sample_train(key, config.batch)
            loss, grads = jax.value_and_grad(loss_fn)(params, a, b)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        @jax.jit
        def run_chunk(state, keys):
            return jax.lax.scan(step, state, keys)

        curve, done, earlier, steady = [], 0, 0.0, (0.0, 0)
        saved = progress.resume()
        if saved is not None:
            state = jax.tree.map(jnp.asarray, saved["state"])
            done, curve, earlier = saved["done"], saved["curve"][0], saved["seconds"]
            steady = tuple(saved["steady"])
            log(f"  [{config.family} meta-ot] resumed at iteration {done}")
        start, steady_start, diverged_at = time.perf_counter(), None, None
        for size in _chunks(config.iterations - done, chunk):
            keys = step_keys(data_key, done, size)
            state, losses = run_chunk(state, keys)
            losses = np.asarray(losses)  # waits for the chunk
            done += size
            curve.append({"iteration": done, "loss": float(losses.mean())})
            if steady_start is None:
                steady_start, steady_from = time.perf_counter(), done
            log(f"  [{config.family} meta-ot] iteration {done}/{config.iterations} "
                f"loss {curve[-1]['loss']:.5g}")
            if not np.isfinite(losses).all():  # stop: a NaN model is kept as diverged
                diverged_at = done - size + 1 + int(np.argmin(np.isfinite(losses)))
                log(f"  [{config.family} meta-ot] training diverged at iteration {diverged_at}")
                break
            now = time.perf_counter()
            progress.step(done, curve, state, earlier + now - start,
                          (steady[0] + now - steady_start, steady[1] + done - steady_from))
        end = time.perf_counter()
        if steady_start is not None and done > steady_from:
            steady = (steady[0] + end - steady_start, steady[1] + done - steady_from)
        params = jax.device_get(state[0])
    return Trained(config, params, curve, earlier + end - start, _steady(steady),
                   diverged_at=diverged_at)


def train_with_ott(family, config: TrainConfig, log: Callable[[str], None] = print) -> Trained:
    """OTT-JAX's ``MetaInitializer`` trained through its ``update`` on the same batches
    (checkpointed at its report points like :func:`train`)."""
    from ott.initializers.neural import meta_initializer

    progress = _Progress(config)
    with jax.enable_x64(config.dtype == "float64"):
        n_a = len(family.x)
        model = make_model(config, n_a)
        geom = gibbs_geometry(family.cost_matrix(), family.epsilon)
        init_key, data_key = train_keys(config)
        initializer = meta_initializer.MetaInitializer(
            geom, meta_model=model, opt=make_optimizer(config), rng=init_key)
        state = initializer.state
        sample = jax.jit(family.sample_train, static_argnums=1)
        curve, done, earlier, steady = [], 0, 0.0, (0.0, 0)
        saved = progress.resume()
        if saved is not None:
            restored = jax.tree.map(jnp.asarray, saved["state"])
            state = state.replace(**restored)
            done, curve, earlier = saved["done"], saved["curve"][0], saved["seconds"]
            steady = tuple(saved["steady"])
            log(f"  [{config.family} ott-meta] resumed at iteration {done}")
        losses, start, steady_start = [], time.perf_counter(), None
        report_every = max(1, min(100, config.iterations // 10))
        diverged_at = None
        for it in range(done, config.iterations):
            a, b = sample(step_keys(data_key, it, 1)[0], config.batch)
            loss, _, state = initializer.update(state, a=a, b=b)
            losses.append(loss)
            if (it + 1) % report_every == 0 or it + 1 == config.iterations:
                mean = float(np.mean(np.asarray(losses)))
                losses = []
                curve.append({"iteration": it + 1, "loss": mean})
                if steady_start is None:
                    steady_start, steady_from = time.perf_counter(), it + 1
                log(f"  [{config.family} ott-meta] iteration {it + 1}/{config.iterations} "
                    f"loss {mean:.5g}")
                if not np.isfinite(mean):  # stop: a NaN model is kept as diverged
                    diverged_at = it + 1
                    log(f"  [{config.family} ott-meta] training diverged by iteration {it + 1}")
                    break
                now = time.perf_counter()
                progress.step(it + 1, curve, {"params": state.params,
                                              "opt_state": state.opt_state, "step": state.step},
                              earlier + now - start,
                              (steady[0] + now - steady_start, steady[1] + it + 1 - steady_from))
            done = it + 1
        end = time.perf_counter()
        done = curve[-1]["iteration"] if curve else done
        if steady_start is not None and done > steady_from:
            steady = (steady[0] + end - steady_start, steady[1] + done - steady_from)
        params = jax.device_get(state.params)
    return Trained(config, params, curve, earlier + end - start, _steady(steady),
                   diverged_at=diverged_at)
