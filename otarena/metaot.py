"""Meta OT for discrete entropic OT (Amos et al., ICML 2023): model, training, cache.

An MLP maps the weights (a, b) of an instance of a problem family to the first dual
potential f. The second potential is recovered exactly by one Sinkhorn half-step,

    g(f) = eps log b - eps log(K^T exp(f / eps)),    K = exp(-C / eps),

and the model is trained, without any solved instance, to maximize the entropic dual
objective at (f, g(f)) over fresh batches of instances (objective-based amortization).
Hyperparameters as in the paper: 3 hidden layers of 1024 ReLU units, Adam 1e-3 with
global-norm clipping 1.0, batch 128, 50k iterations (``paper`` budget).

The whole training loop runs on device: batches are drawn by the family's pure-JAX
sampler inside the step, and ``lax.scan`` runs chunks of steps per call. Trained models
are cached as artifacts keyed by a hash of everything that determines them, so the
runtime table never retrains a model it already has.

OTT-JAX's own ``MetaInitializer`` is trained here too (same model, optimizer and
batches, through its ``update``) as a peer row.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
from ott.geometry import geometry

from otarena.provenance import timestamp
from otarena.store import run_id

TRAINERS = ("otarena", "ott")  # our scan loop, or OTT-JAX's MetaInitializer.update
FLOATS = ("float32", "float64")
ARTIFACTS_ENV = "OTARENA_ARTIFACTS"


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


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model (hashed into its artifact key)."""

    family: str
    family_provenance: dict  # data files and their sha256: a different grid is a different model
    iterations: int = 50_000
    batch: int = 128
    hidden: int = 1024
    layers: int = 3
    learning_rate: float = 1e-3
    clip_norm: float = 1.0
    seed: int = 0
    dtype: str = "float64"  # the paper trains and solves in float64 ...
    param_dtype: str = "float32"  # ... with float32 parameters (flax's default param_dtype)
    trainer: str = "otarena"

    def __post_init__(self):
        if self.iterations < 1 or self.batch < 1:
            raise ValueError(f"iterations and batch must be positive: {self}")
        if self.trainer not in TRAINERS:
            raise ValueError(f"unknown Meta OT trainer {self.trainer!r}; known: {TRAINERS}")
        if self.dtype not in FLOATS or self.param_dtype not in FLOATS:
            raise ValueError(f"dtype and param_dtype must be one of {FLOATS}: {self}")

    def key(self) -> str:
        return f"metaot-{self.family}-{self.trainer}-{run_id(asdict(self))}"


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


def train(family, config: TrainConfig, chunk: int = 100,
          log: Callable[[str], None] = print) -> Trained:
    """Train the Meta OT MLP on the family's instances; the scan loop runs on device."""
    if config.trainer == "ott":
        return train_with_ott(family, config, log=log)
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

        curve, done, start, steady_start = [], 0, time.perf_counter(), None
        for size in _chunks(config.iterations, chunk):
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
        else:
            diverged_at = None
        end = time.perf_counter()
        steady = (end - steady_start) / (done - steady_from) if done > steady_from else None
        params = jax.device_get(state[0])
    return Trained(config, params, curve, end - start, steady, diverged_at=diverged_at)


def train_with_ott(family, config: TrainConfig, log: Callable[[str], None] = print) -> Trained:
    """OTT-JAX's ``MetaInitializer`` trained through its ``update`` on the same batches."""
    from ott.initializers.neural import meta_initializer

    with jax.enable_x64(config.dtype == "float64"):
        n_a = len(family.x)
        model = make_model(config, n_a)
        geom = gibbs_geometry(family.cost_matrix(), family.epsilon)
        init_key, data_key = train_keys(config)
        initializer = meta_initializer.MetaInitializer(
            geom, meta_model=model, opt=make_optimizer(config), rng=init_key)
        state = initializer.state
        sample = jax.jit(family.sample_train, static_argnums=1)
        curve, losses, start, steady_start = [], [], time.perf_counter(), None
        report_every = max(1, min(100, config.iterations // 10))
        diverged_at = None
        for it in range(config.iterations):
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
        end = time.perf_counter()
        done = it + 1
        steady = (end - steady_start) / (done - steady_from) if done > steady_from else None
        params = jax.device_get(state.params)
    return Trained(config, params, curve, end - start, steady, diverged_at=diverged_at)


# -- artifacts --------------------------------------------------------------------------------

def artifacts_dir(explicit: str | Path | None = None) -> Path:
    """``explicit``, else ``$OTARENA_ARTIFACTS``, else ``$XDG_CACHE_HOME/otarena/artifacts``."""
    if explicit is not None:
        return Path(explicit).expanduser().resolve()
    if os.environ.get(ARTIFACTS_ENV):
        return Path(os.environ[ARTIFACTS_ENV]).expanduser().resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return (cache / "otarena" / "artifacts").resolve()


def save(trained: Trained, root: Path, info: dict) -> Path:
    """Write params (flax msgpack) and meta.json atomically under ``root/<config key>``."""
    folder = root / trained.config.key()
    tmp = root / f".{trained.config.key()}.{os.getpid()}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "params.msgpack").write_bytes(flax.serialization.to_bytes(trained.params))
    meta = {"config": asdict(trained.config), "curve": trained.curve,
            "diverged_at": trained.diverged_at,
            "train_seconds": trained.train_seconds,
            "steady_seconds_per_iteration": trained.steady_seconds_per_iteration,
            "created": timestamp(),
            **info}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
    if folder.exists():  # another process finished first: keep its copy
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    else:
        os.replace(tmp, folder)
    return folder


def load(config: TrainConfig, n_in: int, n_out: int, root: Path) -> Trained | None:
    """The cached model of ``config``, or None."""
    folder = root / config.key()
    if not (folder / "params.msgpack").is_file() or not (folder / "meta.json").is_file():
        return None
    meta = json.loads((folder / "meta.json").read_text())
    if meta["config"] != json.loads(json.dumps(asdict(config), default=str)):
        return None  # a hash collision or a hand-edited folder: do not trust it
    with jax.enable_x64(config.dtype == "float64"):
        model = make_model(config, n_out)
        template = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                                     jnp.zeros(n_in, model.dtype)))["params"]
        template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template)
        params = flax.serialization.from_bytes(template, (folder / "params.msgpack").read_bytes())
    diverged_at = meta.get("diverged_at")
    if diverged_at is None and not all(np.isfinite(p).all() for p in jax.tree.leaves(params)):
        # saved without a verdict (an older otarena): NaN parameters still mean divergence
        diverged_at = next((c["iteration"] for c in meta["curve"] if not np.isfinite(c["loss"])),
                           config.iterations)
    return Trained(config, params, meta["curve"], meta["train_seconds"],
                   meta.get("steady_seconds_per_iteration"), artifact=str(folder), cached=True,
                   info={k: meta[k] for k in ("device", "versions", "git", "created") if k in meta},
                   diverged_at=diverged_at)


def trained_model(family, config: TrainConfig, artifacts: str | Path | None = None,
                  retrain: bool = False, info: dict | None = None,
                  log: Callable[[str], None] = print) -> Trained:
    """The cached model for ``config`` if there is one, else train it and cache it."""
    root = artifacts_dir(artifacts)
    n_in, n_out = len(family.x) + len(family.y), len(family.x)
    if not retrain:
        found = load(config, n_in, n_out, root)
        if found is not None:
            log(f"  using cached model {found.artifact}")
            return found
    trained = train(family, config, log=log)
    trained.info = info or {}
    trained.artifact = str(save(trained, root, trained.info))
    return trained
