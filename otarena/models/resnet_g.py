"""The WGAN-QC ResNet generator of the CelebA64 benchmark, as a pure JAX function.

``ResNet_G(z_dim=128, size=64, nfilter=64, nfilter_max=512, bn=True, res_ratio=0.1)`` of
Wasserstein2Benchmark ``src/resnet2.py`` (from WGAN-QC), loaded with ``load_resnet_G`` and
frozen (eval mode: batch norms use their running statistics):

    h = leaky_relu_0.2(BN1d(W z + b)) viewed as (512, 4, 4)
    then ResNet blocks (512->512, 512->512, up, 512->512, 512->512, up, 512->256, 256->256,
    up, 256->128, 128->128, up, 128->64, 64->64), "up" = nearest 2x upsampling;
    image = tanh(conv3x3(h)) flattened to 3*64*64 in C, H, W order.

A block is leaky_relu_0.2(s(x) + 0.1 BN(conv3x3(leaky_relu_0.2(BN(conv3x3(x)))))), with
s(x) = BN(conv1x1(x)) when the widths differ and x otherwise; its convs have no bias.
Parameters keep the official state-dict names (``fc.weight``, ``bn1d.running_mean``,
``resnet.{i}.conv_0.weight``, ``resnet.{i}.bn2d_s.weight``, ``conv_img.bias``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from otarena.models import torch_layers as tl

Params = dict[str, jax.Array]

Z_DIM = 128
SIZE = 64
NFILTER = 64
NFILTER_MAX = 512
RES_RATIO = 0.1
S0 = 4
DIM = 3 * SIZE * SIZE
EXACT = jax.lax.Precision.HIGHEST


def layout(size: int = SIZE, nf: int = NFILTER, nf_max: int = NFILTER_MAX
           ) -> tuple[int, list[tuple[int, int, int] | None]]:
    """(channels after ``fc``, the ``resnet`` sequence: (index, fin, fout) or None for upsampling)."""
    nlayers = int(np.log2(size / S0))
    nf0 = min(nf_max, nf * 2 ** (nlayers + 1))
    seq: list[tuple[int, int] | None] = []
    for i in range(nlayers, 0, -1):
        a, b = min(nf * 2 ** (i + 1), nf_max), min(nf * 2 ** i, nf_max)
        seq += [(a, b), (b, b), None]
    a, b = min(nf * 2, nf_max), min(nf, nf_max)
    seq += [(a, b), (b, b)]
    return nf0, [None if s is None else (i, s[0], s[1]) for i, s in enumerate(seq)]


def _bn_shapes(prefix: str, width: int) -> dict[str, tuple[int, ...]]:
    return {prefix + k: (width,) for k in ("weight", "bias", "running_mean", "running_var")}


def expected_shapes() -> dict[str, tuple[int, ...]]:
    nf0, seq = layout()
    shapes = {"fc.weight": (nf0 * S0 * S0, Z_DIM), "fc.bias": (nf0 * S0 * S0,),
              **_bn_shapes("bn1d.", nf0 * S0 * S0)}
    for item in seq:
        if item is None:
            continue
        i, fin, fout = item
        hidden = min(fin, fout)
        pre = f"resnet.{i}."
        shapes[pre + "conv_0.weight"] = (hidden, fin, 3, 3)
        shapes.update(_bn_shapes(pre + "bn2d_0.", hidden))
        shapes[pre + "conv_1.weight"] = (fout, hidden, 3, 3)
        shapes.update(_bn_shapes(pre + "bn2d_1.", fout))
        if fin != fout:
            shapes[pre + "conv_s.weight"] = (fout, fin, 1, 1)
            shapes.update(_bn_shapes(pre + "bn2d_s.", fout))
    shapes["conv_img.weight"] = (3, NFILTER, 3, 3)
    shapes["conv_img.bias"] = (3,)
    return shapes


def shape_mismatch(state: Mapping) -> str | None:
    """None if ``state`` is a ResNet_G(128, 64, 64, 512) state dict, else what differs."""
    return tl.shape_problem(state, expected_shapes())


def _block(params, i: int, fin: int, fout: int, x, precision):
    pre = f"resnet.{i}."
    if fin != fout:
        shortcut = tl.batch_norm_eval(
            tl.conv2d(x, params[pre + "conv_s.weight"], precision=precision), params, pre + "bn2d_s.")
    else:
        shortcut = x
    dx = tl.conv2d(x, params[pre + "conv_0.weight"], padding=1, precision=precision)
    dx = tl.leaky_relu(tl.batch_norm_eval(dx, params, pre + "bn2d_0."))
    dx = tl.conv2d(dx, params[pre + "conv_1.weight"], padding=1, precision=precision)
    dx = tl.batch_norm_eval(dx, params, pre + "bn2d_1.")
    return tl.leaky_relu(shortcut + RES_RATIO * dx)


def generate(params: Params, z: jax.Array, precision=EXACT) -> jax.Array:
    """Images G(z) for latents z (n, 128): (n, 12288) in [-1, 1], eval mode."""
    nf0, seq = layout()
    h = tl.linear(z, params["fc.weight"], params["fc.bias"], precision)
    h = tl.leaky_relu(tl.batch_norm_eval(h, params, "bn1d."))
    h = h.reshape(z.shape[0], nf0, S0, S0)
    for item in seq:
        h = tl.upsample_nearest_2x(h) if item is None else _block(params, *item, h, precision)
    img = jnp.tanh(tl.conv2d(h, params["conv_img.weight"], params["conv_img.bias"], padding=1,
                             precision=precision))
    return img.reshape(z.shape[0], DIM)
