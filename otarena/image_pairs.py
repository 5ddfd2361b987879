"""Image benchmark pairs built by Korotin et al.'s CelebA64 recipe, and the recipe itself.

A pair of this kind has a source P of flattened 3x64x64 images in [-1, 1] plus pixel noise
N(0, 0.01^2), and the target Q = grad psi # P for psi = (psi_1 + psi_2) / 2, two ConvICNN64
potentials trained by W2GN from P to two target distributions (no standardization). The
official CelebA64 pairs (``datasets/celeba64.py``) are of this kind with P = a WGAN-QC
generator; :mod:`otarena.image_recipe` builds new ones from any image source
(``otarena build-image-pair``).

The constants of such a pair are not published: they are computed the way the official
``CelebA64Benchmark`` computes them (total variances of P and Q on 2^14 samples, the cost
1/2 E|x - T(x)|^2 on one batch of 64) and cached by the sha256 of the files they depend on.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from otarena import conjugate, data
from otarena.models import conv_icnn
from otarena.pairs import Pair

DIM = conv_icnn.DIM
NOISE_STD = 0.01  # NormalNoiseTransformer(std=0.01) of the official pairs
ESTIMATE_SIZE = 2**14  # PotentialMapBenchmark(estimate_size=2**14)
COST_SIZE = 64  # CelebA64Benchmark(batch_size=64): the cost is estimated on one batch
CONSTANTS_KEY = 0xCE1EBA
CHUNK = 256  # rows per device call when pushing or generating many images
CACHE_FILE = "otarena-cache/image-pair-constants.json"
ESTIMATOR = "official-celeba64-v1"  # bump if the estimators below change

Sampler = Callable[[jax.Array, int], jax.Array]


def chunked(fn: Callable[[jax.Array], jax.Array], x: jax.Array, chunk: int = CHUNK) -> jax.Array:
    """fn over the rows of x in chunks of ``chunk`` rows (bounded device memory)."""
    n = x.shape[0]
    if n <= chunk:
        return fn(x)
    whole = n - n % chunk
    out = jax.lax.map(fn, x[:whole].reshape((whole // chunk, chunk) + x.shape[1:]))
    out = out.reshape((whole,) + out.shape[2:])
    return out if whole == n else jnp.concatenate([out, fn(x[whole:])])


def noisy(sample_clean: Sampler, std: float = NOISE_STD) -> Sampler:
    """x + std * N(0, I) for x from ``sample_clean``; the key splits as (clean, noise)."""
    def sample(key, n):
        k_clean, k_noise = jax.random.split(key)
        x = sample_clean(k_clean, n)
        return x + std * jax.random.normal(k_noise, x.shape, x.dtype)
    return sample


def averaged_potential(stacked: conv_icnn.Params) -> Callable[[jax.Array], jax.Array]:
    """psi = mean of the stacked ConvICNN64s (eval mode, strong convexity 0.01, HIGHEST)."""
    return lambda x: conv_icnn.mean_conv_icnn64(stacked, x)


def gradient_map(potential: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """x -> grad psi(x), row by row, in chunks."""
    grad = jax.grad(lambda v: potential(v).sum())
    return lambda x: chunked(grad, x)


def conjugate_inverse(potential: Callable[[jax.Array], jax.Array], gtol: float = 1e-4,
                      max_iter: int = 1000) -> Callable[[jax.Array], jax.Array]:
    """T^-1(y) = argmin_x psi(x) - <x, y> by L-BFGS from y (psi is strongly convex).

    Never needed by the metrics (they use the coupling (x, T(x))); it makes ``true_map`` of a
    reversed image pair available, at the price of a per-point solve in dimension 12288.
    """
    solver = conjugate.LBFGS(max_iter=max_iter, gtol=gtol)
    return lambda y: chunked(lambda v: solver.solve_batch(potential, v, v).x, y)


# -- constants ----------------------------------------------------------------------------------
def compute_constants(sample_clean: Sampler, forward: Callable[[jax.Array], jax.Array],
                      noise_std: float = NOISE_STD, estimate_size: int = ESTIMATE_SIZE,
                      cost_size: int = COST_SIZE, key: int = CONSTANTS_KEY,
                      chunk: int = CHUNK) -> dict:
    """The official CelebA64 estimators, accumulated in float64.

    in_var  = total variance of ``estimate_size`` clean samples + D noise_std^2
              (PushforwardTransformer.fit, then NormalNoiseTransformer.var)
    out_var = total variance of T(x) on ``estimate_size`` noisy samples (PotentialTransformer.fit)
    cost    = 1/2 mean |x - T(x)|^2 on one batch of ``cost_size`` noisy samples (_estimate_cost)
    """
    chunk = min(chunk, estimate_size)
    if estimate_size % chunk:
        raise ValueError(f"estimate size {estimate_size} is not a multiple of {chunk}")
    k_in, k_out, k_cost = jax.random.split(jax.random.key(key), 3)
    draw = jax.jit(sample_clean, static_argnums=1)
    draw_noisy = jax.jit(noisy(sample_clean, noise_std), static_argnums=1)
    push = jax.jit(forward)

    def total_variance(rows):
        s, ss, n = 0.0, 0.0, 0
        for k in jax.random.split(k_in if rows is None else k_out, estimate_size // chunk):
            v = np.asarray(draw(k, chunk) if rows is None else push(draw_noisy(k, chunk)), np.float64)
            s, ss, n = s + v.sum(0), ss + (v * v).sum(0), n + len(v)
        mean = s / n
        return float(np.sum(ss / n - mean * mean))

    x = draw_noisy(k_cost, cost_size)
    t = np.asarray(push(x), np.float64)
    cost = 0.5 * float(np.mean(np.sum((np.asarray(x, np.float64) - t) ** 2, axis=1)))
    return {"in_var": total_variance(None) + DIM * noise_std**2, "out_var": total_variance(True),
            "cost": cost}


def _cache_path() -> Path:
    return data.data_dir() / CACHE_FILE


def cached_constants(identity: Mapping, compute: Callable[[], dict]) -> tuple[dict, str]:
    """Constants of ``identity`` (files' sha256 and estimator settings) from the cache in the
    data directory, computed and stored there on first use. Returns (constants, where)."""
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
    path = _cache_path()
    try:
        cache = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        cache = {}
    if key in cache and cache[key].get("identity") == identity:
        return cache[key]["constants"], f"cached in {path} (key {key})"
    constants = compute()
    cache[key] = {"identity": dict(identity), "constants": constants}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".constants.", suffix=".part")
        with os.fdopen(fd, "w") as f:
            json.dump(cache, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
        where = f"cached in {path} (key {key})"
    except OSError as e:
        warnings.warn(f"could not cache the image-pair constants in {path}: {e}")
        where = "not cached (data directory not writable)"
    return constants, where


def potential_pair(name: str, sample_clean: Sampler, stacked: conv_icnn.Params,
                   constants: Mapping, provenance: Mapping, noise_std: float = NOISE_STD) -> Pair:
    """The pair P = sample_clean + noise, T = grad of the mean of the stacked ConvICNN64s."""
    potential = averaged_potential(stacked)
    return Pair(name=name, dim=DIM, base=noisy(sample_clean, noise_std),
                forward=gradient_map(potential), inverse=conjugate_inverse(potential),
                base_var=float(constants["in_var"]), pushed_var=float(constants["out_var"]),
                cost=float(constants["cost"]), potential=potential, moment_size=2**14,
                provenance=dict(provenance))


def stack_states(states: list[Mapping[str, np.ndarray]]) -> conv_icnn.Params:
    return conv_icnn.stack(*[{k: jnp.asarray(v, jnp.float32) for k, v in s.items()}
                             for s in states])


def constants_note(estimate_size: int, cost_size: int, where: str) -> str:
    return (f"computed by otarena with the official CelebA64Benchmark estimators (total "
            f"variances on {estimate_size} samples, cost on one batch of {cost_size}; key "
            f"{CONSTANTS_KEY:#x}); no official values are published; {where}")


def chunk_sampler(sample: Sampler) -> Sampler:
    """A sampler drawing large batches chunk by chunk (same values as one call per chunk)."""
    def draw(key, n):
        if n <= CHUNK:
            return sample(key, n)
        whole = n - n % CHUNK
        keys = jax.random.split(key, whole // CHUNK + 1)
        out = jax.lax.map(lambda k: sample(k, CHUNK), keys[:-1]).reshape(whole, -1)
        return out if whole == n else jnp.concatenate([out, sample(keys[-1], n - whole)])
    return draw
