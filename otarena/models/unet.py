"""The UNet map of Korotin et al.'s [MM] image solver, as a pure JAX function.

``FakeUNet64_H`` of Wasserstein2Benchmark is ``UNet(3, 3, base_factor=48, bilinear=True)``
(the milesial Pytorch-UNet variant with a ``base_factor`` argument, vendored as
``src/unet.py``; the notebook reports 9,715,827 parameters, which this layout has):

    x1 = dc(x, 3 -> b)            dc = (conv3x3 -> BN -> ReLU) twice, convs with bias
    x2 = dc(maxpool2(x1), b -> 2b);  x3 = ... 2b -> 4b;  x4 = ... 4b -> 8b;  x5 = ... 8b -> 8b
    u  = dc(cat[x4, up(x5)], 16b -> 4b, mid 8b);  u = dc(cat[x3, up(u)], 8b -> 2b, mid 4b)
    u  = dc(cat[x2, up(u)], 4b -> b, mid 2b);     u = dc(cat[x1, up(u)], 2b -> b, mid b)
    H(x) = conv1x1(u) + bias      (b = 48, up = bilinear 2x with aligned corners)

It outputs the map itself (not a gradient). Batch norms use batch statistics in training
mode and running statistics in eval mode (the official scoring freezes the nets); the
running statistics are parameters here (``*.running_mean``, ``*.running_var``), never
trained by gradients and refreshed by :func:`update_stats` with PyTorch's momentum 0.1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from otarena.models import torch_layers as tl

Params = dict[str, jax.Array]

SIZE = 64
DIM = 3 * SIZE * SIZE
BASE_FACTOR = 48


def double_convs(b: int = BASE_FACTOR, channels: int = 3) -> list[tuple[str, int, int, int]]:
    """(prefix, in, mid, out) of every DoubleConv, in forward order."""
    return [("inc.double_conv.", channels, b, b),
            ("down1.maxpool_conv.1.double_conv.", b, 2 * b, 2 * b),
            ("down2.maxpool_conv.1.double_conv.", 2 * b, 4 * b, 4 * b),
            ("down3.maxpool_conv.1.double_conv.", 4 * b, 8 * b, 8 * b),
            ("down4.maxpool_conv.1.double_conv.", 8 * b, 8 * b, 8 * b),
            ("up1.conv.double_conv.", 16 * b, 8 * b, 4 * b),
            ("up2.conv.double_conv.", 8 * b, 4 * b, 2 * b),
            ("up3.conv.double_conv.", 4 * b, 2 * b, b),
            ("up4.conv.double_conv.", 2 * b, b, b)]


def expected_shapes(b: int = BASE_FACTOR, channels: int = 3) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for pre, cin, mid, cout in double_convs(b, channels):
        for conv, bn, fin, fout in (("0", "1", cin, mid), ("3", "4", mid, cout)):
            shapes[f"{pre}{conv}.weight"] = (fout, fin, 3, 3)
            shapes[f"{pre}{conv}.bias"] = (fout,)
            for k in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{pre}{bn}.{k}"] = (fout,)
    shapes["outc.conv.weight"] = (channels, b, 1, 1)
    shapes["outc.conv.bias"] = (channels,)
    return shapes


def num_trainable(b: int = BASE_FACTOR) -> int:
    return int(sum(np.prod(s) for k, s in expected_shapes(b).items() if "running_" not in k))


def init(key: jax.Array, b: int = BASE_FACTOR) -> Params:
    """PyTorch defaults: convs U(+-1/sqrt(fan_in)), BN weight 1, bias 0, running (0, 1)."""
    shapes = expected_shapes(b)
    keys = jax.random.split(key, len(shapes))
    params = {}
    for k, (name, shape) in zip(keys, sorted(shapes.items())):
        bn = name.rsplit(".", 2)[-2] in ("1", "4")
        if bn:
            fill = 1.0 if name.endswith(("weight", "running_var")) else 0.0
            params[name] = jnp.full(shape, fill, jnp.float32)
        else:
            weight = shapes[name.replace(".bias", ".weight")]
            params[name] = tl.torch_default_init(k, shape, int(np.prod(weight[1:])))
    return params


def _double_conv(params, pre, x, train, stats, precision):
    for conv, bn in (("0", "1"), ("3", "4")):
        x = tl.conv2d(x, params[f"{pre}{conv}.weight"], params[f"{pre}{conv}.bias"], padding=1,
                      precision=precision)
        if train:
            x, stats[f"{pre}{bn}."] = tl.batch_norm_train(x, params, f"{pre}{bn}.")
        else:
            x = tl.batch_norm_eval(x, params, f"{pre}{bn}.")
        x = jax.nn.relu(x)
    return x


def _up(x_low, x_skip, precision):
    x = tl.upsample_bilinear_2x_align_corners(x_low, precision)
    dy, dx = x_skip.shape[2] - x.shape[2], x_skip.shape[3] - x.shape[3]
    if dy or dx:
        x = jnp.pad(x, [(0, 0), (0, 0), (dy // 2, dy - dy // 2), (dx // 2, dx - dx // 2)])
    return jnp.concatenate([x_skip, x], axis=1)


def unet(params: Params, x: jax.Array, train: bool = False, precision=None):
    """H(x) on flattened images (n, 12288) -> (n, 12288).

    With ``train`` the batch norms use batch statistics and the result is
    (H(x), {bn prefix: (batch mean, unbiased batch variance)}).
    """
    convs = double_convs()
    stats: dict = {}
    h = x.reshape(x.shape[0], 3, SIZE, SIZE)
    skips = []
    for i, (pre, *_rest) in enumerate(convs[:5]):
        if i:
            h = tl.max_pool_2x2(h)
        h = _double_conv(params, pre, h, train, stats, precision)
        skips.append(h)
    h = skips.pop()
    for pre, *_rest in convs[5:]:
        h = _double_conv(params, pre, _up(h, skips.pop(), precision), train, stats, precision)
    out = tl.conv2d(h, params["outc.conv.weight"], params["outc.conv.bias"], precision=precision)
    out = out.reshape(x.shape[0], DIM)
    return (out, stats) if train else out


def update_stats(old: Params, new: Params, x: jax.Array, precision=None) -> Params:
    """``new`` with running statistics as PyTorch leaves them after a training-mode forward
    of the batch ``x`` through the network ``old`` (the parameters that forward used)."""
    _, stats = unet(old, x, train=True, precision=precision)
    moved = tl.update_running_stats(old, stats)
    return {k: moved[k] if "running_" in k else v for k, v in new.items()}
