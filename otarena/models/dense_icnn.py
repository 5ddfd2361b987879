"""Korotin et al.'s DenseICNN as a pure JAX function of PyTorch-layout parameters.

    q_l(x)_j = sum_r (x . A_l[:, r, j])^2 + (B_l x + b_l)_j     (rank-r convex quadratic)
    z_0 = q_0(x),   z_l = celu(W_l z_{l-1} + q_l(x)),   l = 1..L-1
    psi(x) = w . z_{L-1} + (s / 2) |x|^2

The first quadratic layer is not activated, as in the official code. psi is convex when
every W_l and w are non-negative (the official checkpoints were clamped while training).
Parameters keep the names and layouts of the official state dicts, so a checkpoint loads
without renaming: ``quadratic_layers.{l}.quadratic_decomposed`` (in, rank, out),
``quadratic_layers.{l}.weight`` (out, in), ``quadratic_layers.{l}.bias`` (out,),
``convex_layers.{l}.weight`` (out, in) and ``final_layer.weight`` (1, last).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

Params = dict[str, jax.Array]

# The ground truth must not lose bits to TF32/bf16 matrix units on GPUs.
EXACT = jax.lax.Precision.HIGHEST


def hidden_sizes(dim: int) -> list[int]:
    """The benchmark's widths: [max(2D, 64), max(2D, 64), max(D, 32)]."""
    return [max(2 * dim, 64), max(2 * dim, 64), max(dim, 32)]


def expected_shapes(dim: int, hidden: list[int], rank: int = 1) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for l, width in enumerate(hidden):
        shapes[f"quadratic_layers.{l}.quadratic_decomposed"] = (dim, rank, width)
        shapes[f"quadratic_layers.{l}.weight"] = (width, dim)
        shapes[f"quadratic_layers.{l}.bias"] = (width,)
    for l, (fan_in, width) in enumerate(zip(hidden[:-1], hidden[1:])):
        shapes[f"convex_layers.{l}.weight"] = (width, fan_in)
    shapes["final_layer.weight"] = (1, hidden[-1])
    return shapes


def shape_mismatch(state: Mapping[str, np.ndarray], dim: int) -> str | None:
    """None if ``state`` is a DenseICNN state dict of dimension ``dim``, else what differs."""
    want = expected_shapes(dim, hidden_sizes(dim))
    if set(state) != set(want):
        missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
        return f"state-dict keys differ (missing {missing[:3]}, unexpected {extra[:3]})"
    for key, shape in want.items():
        if tuple(state[key].shape) != shape:
            return f"{key} has shape {tuple(state[key].shape)}, expected {shape}"
    return None


def num_layers(params: Mapping[str, jax.Array]) -> int:
    return sum(k.endswith(".quadratic_decomposed") for k in params)


def _convex_quadratic(params: Params, l: int, x: jax.Array, precision) -> jax.Array:
    pre = f"quadratic_layers.{l}."
    u = jnp.einsum("nd,dro->nro", x, params[pre + "quadratic_decomposed"], precision=precision)
    linear = jnp.dot(x, params[pre + "weight"].T, precision=precision) + params[pre + "bias"]
    return jnp.sum(u * u, axis=1) + linear


def dense_icnn(params: Params, x: jax.Array, strong_convexity: float,
               precision=EXACT) -> jax.Array:
    """psi at each row of ``x`` (n, dim) -> (n,)."""
    z = _convex_quadratic(params, 0, x, precision)
    for l in range(1, num_layers(params)):
        w = params[f"convex_layers.{l - 1}.weight"]
        z = jax.nn.celu(jnp.dot(z, w.T, precision=precision)
                        + _convex_quadratic(params, l, x, precision))
    out = jnp.dot(z, params["final_layer.weight"].T, precision=precision)[:, 0]
    return out + 0.5 * strong_convexity * jnp.sum(x * x, axis=1)


def stack(*params: Params) -> Params:
    """Parameters of several same-shaped networks on a leading axis (one fused evaluation)."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)


def dense_icnn_sum(stacked: Params, x: jax.Array, strong_convexity: float,
                   precision=EXACT) -> jax.Array:
    """sum_k psi_k(x) for networks stacked by :func:`stack` (batched matmuls, not a loop)."""
    per_net = jax.vmap(dense_icnn, in_axes=(0, None, None, None))(
        stacked, x, strong_convexity, precision)
    return per_net.sum(axis=0)
