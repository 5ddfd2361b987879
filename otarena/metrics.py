"""L2-UVP and cosine similarity of fitted maps, as defined by Korotin et al. 2021.

With (x, y = T*(x)) drawn from the ground-truth coupling of a pair:

    L2-UVP fwd = 100 * E|T(x) - y|^2 / Var(Q)        Var = total variance of the target
    L2-UVP inv = 100 * E|S(y) - x|^2 / Var(P)
    cos fwd    = E<y - x, T(x) - x> / sqrt(2 C * E|T(x) - x|^2),   C = 1/2 E|x - T*(x)|^2
    cos inv    = E<x - y, S(y) - y> / sqrt(2 C * E|S(y) - y|^2)

Var and C are the pair's fixed constants (the official ones for the HD pairs). Unlike the
official code, which draws fresh points at each evaluation, the points come from a fixed
key, so two solvers are scored on the same sample.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from otarena.pairs import Pair

# The metrics of a map record, and their titles in the tables.
NAMES = {"l2_uvp_fwd": "L2-UVP fwd (%)", "cos_fwd": "cos fwd", "l2_uvp_inv": "L2-UVP inv (%)",
         "cos_inv": "cos inv"}
DEFAULT_EVAL_SIZE = 4096
EVAL_SEED = 0xE7A1
CHUNK = 4096


def evaluation_key(seed: int = EVAL_SEED) -> jax.Array:
    return jax.random.key(seed)


def displacement_sums(start, truth, fitted):
    """Sums over points of |fitted - truth|^2, <truth - start, fitted - start>, |fitted - start|^2."""
    move = fitted - start
    return jnp.stack([jnp.sum((fitted - truth) ** 2), jnp.sum((truth - start) * move),
                      jnp.sum(move * move)])


def scores(mean_sums, var, cost):
    """(L2-UVP, cosine) from the per-point means of :func:`displacement_sums`.

    A map that moves no point (the identity) has no direction: its cosine is 0, as in the
    official code. A map with NaN output has no cosine either: NaN, not 0.
    """
    err, inner, move = mean_sums[0], mean_sums[1], mean_sums[2]
    cos = jnp.where(move > 0, inner / jnp.sqrt(2.0 * cost * jnp.where(move > 0, move, 1.0)),
                    jnp.where(move == 0, 0.0, jnp.nan))
    return 100.0 * err / var, cos


class MapError(ValueError):
    """A fitted map that does not return one point per input point, of the same dimension."""


def _sums_and_bad(start, truth, fitted):
    return displacement_sums(start, truth, fitted), jnp.sum(~jnp.isfinite(fitted))


_chunk_sums = jax.jit(_sums_and_bad)


def _direction(start, truth, fitted_map, var, cost, chunk, name):
    totals, bad = np.zeros(3), 0
    for i in range(0, len(start), chunk):
        s, t = start[i:i + chunk], truth[i:i + chunk]
        out = fitted_map(s)
        if jnp.shape(out) != s.shape:  # broadcasting would score it anyway
            raise MapError(f"the {name} map returned shape {tuple(jnp.shape(out))} for points "
                           f"of shape {tuple(s.shape)}; a map takes (n, dim) and returns (n, dim)")
        sums, nonfinite = _chunk_sums(s, t, out)
        totals += np.asarray(sums, dtype=np.float64)
        bad += int(nonfinite)
    if bad:  # NaN or infinite points: no score (the runner records a divergence)
        return float("nan"), float("nan")
    uvp, cos = scores(totals / len(start), var, cost)
    return float(uvp), float(cos)


def eval_size_problem(size: int, chunk: int = CHUNK) -> str | None:
    """Why ``size`` evaluation points cannot be drawn (points come in chunks), or None."""
    if size < 1:
        return f"{size} evaluation points: the number must be positive"
    if size > chunk and size % chunk:
        return (f"{size} evaluation points: above {chunk} the number must be a multiple of {chunk} "
                f"(e.g. {chunk * (size // chunk)} or {chunk * (size // chunk + 1)})")
    return None


def evaluation_sample(pair: Pair, size: int = DEFAULT_EVAL_SIZE, key: jax.Array | None = None,
                      chunk: int = CHUNK) -> tuple[jax.Array, jax.Array]:
    """The fixed points (x, T*(x)) every solver is scored on, drawn in chunks."""
    problem = eval_size_problem(size, chunk)
    if problem:
        raise ValueError(problem)
    key = evaluation_key() if key is None else key
    drawn = [pair.sample_coupled(k, min(chunk, size))
             for k in jax.random.split(key, max(1, size // chunk))]
    return jnp.concatenate([d[0] for d in drawn]), jnp.concatenate([d[1] for d in drawn])


def evaluate(pair: Pair, forward: Callable | None, inverse: Callable | None = None,
             size: int = DEFAULT_EVAL_SIZE, key: jax.Array | None = None,
             chunk: int = CHUNK) -> dict[str, float]:
    """The four metrics of a forward map (source -> target) and an inverse map."""
    x, y = evaluation_sample(pair, size, key, chunk)
    metrics = {}
    if forward is not None:
        metrics["l2_uvp_fwd"], metrics["cos_fwd"] = _direction(
            x, y, forward, pair.target_var, pair.cost, chunk, "forward")
    if inverse is not None:
        metrics["l2_uvp_inv"], metrics["cos_inv"] = _direction(
            y, x, inverse, pair.source_var, pair.cost, chunk, "inverse")
    return metrics
