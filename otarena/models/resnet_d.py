"""The WGAN-QC ResNet discriminator and Korotin's [MM] image potential built on it.

``ResNet_D(size=64, nfilter=64, nfilter_max=512, res_ratio=0.1)`` of Wasserstein2Benchmark
``src/resnet2.py`` (no batch norm; convolutions with bias):

    h = leaky_relu_0.2(conv3x3(x))                         3 -> 64 channels, 64x64
    ResNet blocks 64->64, 64->128, then four times: avgpool(3, stride 2, pad 1), a block
    keeping the width and a block doubling it (capped at 512): 128->256, 256->512,
    512->512, 512->512; spatial 64 -> 4
    D(x) = W vec(h) + b                                    512*4*4 -> 1

A block is leaky_relu_0.2(s(x) + 0.1 conv3x3(leaky_relu_0.2(conv3x3(x)))), s(x) = conv1x1(x)
(no bias) when the widths differ. ``FakeResNet64_D`` turns it into a potential
f(x) = |x|^2 / 2 - D(x) on flattened images, so grad f = x - grad D: 22,933,441 parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from otarena.models import torch_layers as tl
# the generator's family: the same defaults (size, filters, residual ratio, 4x4 bottom)
from otarena.models.resnet_g import NFILTER, NFILTER_MAX, RES_RATIO, S0, SIZE

Params = dict[str, jax.Array]


def layout(size: int = SIZE, nf: int = NFILTER, nf_max: int = NFILTER_MAX
           ) -> tuple[int, list[tuple[int, int, int] | None]]:
    """(channels entering ``fc``, the ``resnet`` sequence: (index, fin, fout) or None for a pool)."""
    nlayers = int(np.log2(size / S0))
    seq: list[tuple[int, int] | None] = [(nf, nf), (nf, min(nf * 2, nf_max))]
    for i in range(1, nlayers + 1):
        a, b = min(nf * 2 ** i, nf_max), min(nf * 2 ** (i + 1), nf_max)
        seq += [None, (a, a), (a, b)]
    return (min(nf_max, nf * 2 ** nlayers),
            [None if s is None else (i, s[0], s[1]) for i, s in enumerate(seq)])


def expected_shapes() -> dict[str, tuple[int, ...]]:
    nf0, seq = layout()
    shapes = {"conv_img.weight": (NFILTER, 3, 3, 3), "conv_img.bias": (NFILTER,)}
    for item in seq:
        if item is None:
            continue
        i, fin, fout = item
        hidden = min(fin, fout)
        pre = f"resnet.{i}."
        shapes.update({pre + "conv_0.weight": (hidden, fin, 3, 3), pre + "conv_0.bias": (hidden,),
                       pre + "conv_1.weight": (fout, hidden, 3, 3), pre + "conv_1.bias": (fout,)})
        if fin != fout:
            shapes[pre + "conv_s.weight"] = (fout, fin, 1, 1)
    shapes.update({"fc.weight": (1, nf0 * S0 * S0), "fc.bias": (1,)})
    return shapes


def _fan_in(name: str, shape: tuple[int, ...], shapes: dict) -> int:
    weight = shapes[name.replace(".bias", ".weight")]
    return int(np.prod(weight[1:]))


def init(key: jax.Array) -> Params:
    """PyTorch's default initialization of every layer (the notebooks re-initialize nothing)."""
    shapes = expected_shapes()
    keys = jax.random.split(key, len(shapes))
    return {name: tl.torch_default_init(k, shape, _fan_in(name, shape, shapes))
            for k, (name, shape) in zip(keys, sorted(shapes.items()))}


def _block(params, i, fin, fout, x, precision):
    pre = f"resnet.{i}."
    shortcut = (tl.conv2d(x, params[pre + "conv_s.weight"], precision=precision)
                if fin != fout else x)
    dx = tl.leaky_relu(tl.conv2d(x, params[pre + "conv_0.weight"], params[pre + "conv_0.bias"],
                                 padding=1, precision=precision))
    dx = tl.conv2d(dx, params[pre + "conv_1.weight"], params[pre + "conv_1.bias"], padding=1,
                   precision=precision)
    return tl.leaky_relu(shortcut + RES_RATIO * dx)


def discriminator(params: Params, x: jax.Array, precision=None) -> jax.Array:
    """D at each row of ``x`` (n, 12288) -> (n,)."""
    nf0, seq = layout()
    h = x.reshape(x.shape[0], 3, SIZE, SIZE)
    h = tl.leaky_relu(tl.conv2d(h, params["conv_img.weight"], params["conv_img.bias"], padding=1,
                                precision=precision))
    for item in seq:
        h = tl.avg_pool_3x3_s2_p1(h) if item is None else _block(params, *item, h, precision)
    out = tl.linear(h.reshape(x.shape[0], nf0 * S0 * S0), params["fc.weight"], params["fc.bias"],
                    precision)
    return out[:, 0]


def potential(params: Params, x: jax.Array, precision=None) -> jax.Array:
    """``FakeResNet64_D``: |x|^2 / 2 - D(x)."""
    return 0.5 * jnp.sum(x * x, axis=1) - discriminator(params, x, precision)
