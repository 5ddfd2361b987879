"""Korotin et al.'s ConvICNN64 as a pure JAX function of its PyTorch state dict.

The convex potential of the CelebA64 benchmark (``src/icnn.py`` of Wasserstein2Benchmark),
on flattened images x in R^12288 viewed as (3, 64, 64):

    q_k(x)  = sum_r (A_k * x)[:, r]^2 + B_k * x     convex-quadratic convolutions, rank 4
              (q_0: 3 -> 128 channels, 4x4 stride 2 pad 1; q_1: 3 -> 256, 7x7 stride 4 pad 2)
    z       = celu(W_0 * q_0(x) + b_0 + q_1(x))     W_0: 128 -> 256, 4x4 stride 2 pad 1
    z       = celu_0.2(W_1 * z + b_1)               256 -> 512, 4x4 stride 2 pad 1
    z       = celu_0.2(W_2 * z + b_2)               512 -> 1024, 4x4 stride 2 pad 1
    psi(x)  = W_3 * z + b_3 + (s / 2) |x|^2         1024 -> 1, 4x4 valid; s = 0.01

(* is a convolution.) psi is convex when W_0..W_3 are non-negative (``convexify`` clamps
them after every step). In training mode the official network also applies
``F.dropout2d(p=0.02)`` after the first CELU and ``nn.Dropout(0.02)`` before each of the
last three convolutions; at evaluation (``freeze``: eval mode) there is no dropout.
The rank-r squared outputs of q_k are grouped as channel ``o * r + j`` -> output ``o``.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from otarena.models import torch_layers as tl

Params = dict[str, jax.Array]

DIM = 3 * 64 * 64
RANK = 4
STRONG_CONVEXITY = 0.01
DROPOUT = 0.02
INIT_STD = 0.01
EXACT = jax.lax.Precision.HIGHEST

# (name, stride, padding) of the convolutions after the quadratic layers.
_POSITIVE = (("convex_layers.0", 2, 1), ("pos_features.1", 2, 1),
             ("pos_features.4", 2, 1), ("pos_features.7", 1, 0))
CONVEX_WEIGHTS = tuple(f"{name}.weight" for name, _, _ in _POSITIVE)


def expected_shapes(rank: int = RANK) -> dict[str, tuple[int, ...]]:
    return {
        "quadratic_layers.0.quadratic_decomposed.weight": (128 * rank, 3, 4, 4),
        "quadratic_layers.0.linear.weight": (128, 3, 4, 4),
        "quadratic_layers.1.quadratic_decomposed.weight": (256 * rank, 3, 7, 7),
        "quadratic_layers.1.linear.weight": (256, 3, 7, 7),
        "convex_layers.0.weight": (256, 128, 4, 4), "convex_layers.0.bias": (256,),
        "pos_features.1.weight": (512, 256, 4, 4), "pos_features.1.bias": (512,),
        "pos_features.4.weight": (1024, 512, 4, 4), "pos_features.4.bias": (1024,),
        "pos_features.7.weight": (1, 1024, 4, 4), "pos_features.7.bias": (1,),
    }


def shape_mismatch(state: Mapping) -> str | None:
    """None if ``state`` is a ConvICNN64 state dict (rank 4), else what differs."""
    return tl.shape_problem(state, expected_shapes())


def _quadratic(params, k: int, x, stride: int, padding: int, precision):
    pre = f"quadratic_layers.{k}."
    a = params[pre + "quadratic_decomposed.weight"]
    out = params[pre + "linear.weight"].shape[0]
    sq = tl.conv2d(x, a, stride=stride, padding=padding, precision=precision) ** 2
    n, _, h, w = sq.shape
    sq = sq.reshape(n, out, a.shape[0] // out, h, w).sum(axis=2)
    return sq + tl.conv2d(x, params[pre + "linear.weight"], stride=stride, padding=padding,
                          precision=precision)


def conv_icnn64(params: Params, x: jax.Array, strong_convexity: float = STRONG_CONVEXITY,
                key: jax.Array | None = None, dropout: float = DROPOUT,
                precision=EXACT) -> jax.Array:
    """psi at each row of ``x`` (n, 12288) -> (n,); training-mode dropout when ``key`` is given."""
    img = x.reshape(x.shape[0], 3, 64, 64)
    keys = [None] * 4 if key is None else list(jax.random.split(key, 4))
    z = _quadratic(params, 0, img, 2, 1, precision)
    z = tl.conv2d(z, params["convex_layers.0.weight"], params["convex_layers.0.bias"], 2, 1,
                  precision) + _quadratic(params, 1, img, 4, 2, precision)
    z = tl.celu(z)
    if key is not None:
        z = tl.dropout2d(z, dropout, keys[0])
    for i, (name, stride, padding) in enumerate(_POSITIVE[1:]):
        if key is not None:
            z = tl.dropout(z, dropout, keys[i + 1])
        z = tl.conv2d(z, params[name + ".weight"], params[name + ".bias"], stride, padding,
                      precision)
        if name != "pos_features.7":
            z = tl.celu(z, 0.2)
    return z.reshape(x.shape[0]) + 0.5 * strong_convexity * jnp.sum(x * x, axis=1)


def stack(*params: Params) -> Params:
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)


def mean_conv_icnn64(stacked: Params, x: jax.Array, strong_convexity: float = STRONG_CONVEXITY,
                     precision=EXACT) -> jax.Array:
    """(1/k) sum_k psi_k(x), eval mode, for networks stacked by :func:`stack`."""
    per_net = jax.vmap(lambda p: conv_icnn64(p, x, strong_convexity, precision=precision))(stacked)
    return per_net.mean(axis=0)


def init(key: jax.Array, std: float = INIT_STD) -> Params:
    """The official initialization: every parameter N(0, std^2) (``weights_init_std=0.01``)."""
    shapes = expected_shapes()
    keys = jax.random.split(key, len(shapes))
    return {name: std * jax.random.normal(k, shape, jnp.float32)
            for k, (name, shape) in zip(keys, sorted(shapes.items()))}


def convexify(params: Params) -> Params:
    """The official ``convexify``: clamp the weights (not biases) after the quadratic layers."""
    return {k: jnp.maximum(v, 0.0) if k in CONVEX_WEIGHTS else v for k, v in params.items()}
