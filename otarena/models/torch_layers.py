"""PyTorch layer semantics as pure JAX functions, on PyTorch layouts (NCHW, OIHW).

The image networks of the benchmark (ConvICNN64, the WGAN-QC ResNets, the UNet) are ported
as functions of their official state dicts; these helpers reproduce the PyTorch layers they
are built from, so a state dict is used as it is, without transposes or renaming.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

BN_EPS = 1e-5  # nn.BatchNorm default
BN_MOMENTUM = 0.1  # nn.BatchNorm default: running = (1 - m) running + m batch


def conv2d(x, weight, bias=None, stride: int = 1, padding: int = 0, precision=None):
    """``nn.Conv2d``: x (N, C, H, W), weight (O, C, kh, kw), symmetric zero padding."""
    y = jax.lax.conv_general_dilated(
        x, weight, window_strides=(stride, stride), padding=[(padding, padding)] * 2,
        dimension_numbers=("NCHW", "OIHW", "NCHW"), precision=precision)
    return y if bias is None else y + bias[None, :, None, None]


def linear(x, weight, bias=None, precision=None):
    """``nn.Linear``: weight (out, in)."""
    y = jnp.dot(x, weight.T, precision=precision)
    return y if bias is None else y + bias


def leaky_relu(x, slope: float = 0.2):
    return jnp.where(x >= 0, x, slope * x)


def celu(x, alpha: float = 1.0):
    """``torch.celu``: max(0, x) + min(0, alpha (exp(x / alpha) - 1))."""
    return jax.nn.celu(x, alpha)


def _channel_shape(x):
    return (1, -1) + (1,) * (x.ndim - 2)


def batch_norm_eval(x, params, prefix: str, eps: float = BN_EPS):
    """``nn.BatchNorm1d/2d`` in eval mode: normalize by the running statistics."""
    shape = _channel_shape(x)
    mean = params[prefix + "running_mean"].reshape(shape)
    var = params[prefix + "running_var"].reshape(shape)
    scale = params[prefix + "weight"].reshape(shape) * jax.lax.rsqrt(var + eps)
    return (x - mean) * scale + params[prefix + "bias"].reshape(shape)


def batch_norm_train(x, params, prefix: str, eps: float = BN_EPS):
    """``nn.BatchNorm`` in training mode: normalize by the batch statistics.

    Returns the output and (batch mean, unbiased batch variance): PyTorch normalizes with
    the biased variance and feeds the unbiased one to the running average.
    """
    axes = (0,) + tuple(range(2, x.ndim))
    count = x.size // x.shape[1]
    mean = jnp.mean(x, axis=axes)
    var = jnp.mean(jnp.square(x - mean.reshape(_channel_shape(x))), axis=axes)
    shape = _channel_shape(x)
    scale = params[prefix + "weight"].reshape(shape) * jax.lax.rsqrt(var.reshape(shape) + eps)
    y = (x - mean.reshape(shape)) * scale + params[prefix + "bias"].reshape(shape)
    return y, (mean, var * count / max(count - 1, 1))


def update_running_stats(params, stats, momentum: float = BN_MOMENTUM):
    """Parameters with every ``{prefix}running_mean/var`` moved toward the batch statistics."""
    new = dict(params)
    for prefix, (mean, var) in stats.items():
        new[prefix + "running_mean"] = ((1 - momentum) * params[prefix + "running_mean"]
                                        + momentum * jax.lax.stop_gradient(mean))
        new[prefix + "running_var"] = ((1 - momentum) * params[prefix + "running_var"]
                                       + momentum * jax.lax.stop_gradient(var))
    return new


def avg_pool_3x3_s2_p1(x):
    """``nn.AvgPool2d(3, stride=2, padding=1)`` (count_include_pad: always divide by 9)."""
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 1, 3, 3), (1, 1, 2, 2),
                                  [(0, 0), (0, 0), (1, 1), (1, 1)])
    return total / 9.0


def max_pool_2x2(x):
    """``nn.MaxPool2d(2)``."""
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def upsample_nearest_2x(x):
    """``nn.Upsample(scale_factor=2)`` (mode 'nearest')."""
    return jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)


def _align_corners_matrix(size_in: int, size_out: int) -> np.ndarray:
    """Rows: linear interpolation weights of output pixels, corners aligned."""
    m = np.zeros((size_out, size_in), np.float64)
    if size_in == 1:
        m[:, 0] = 1.0
        return m
    pos = np.arange(size_out) * (size_in - 1) / (size_out - 1)
    lo = np.minimum(np.floor(pos).astype(int), size_in - 2)
    frac = pos - lo
    m[np.arange(size_out), lo] = 1.0 - frac
    m[np.arange(size_out), lo + 1] += frac
    return m


def upsample_bilinear_2x_align_corners(x, precision=None):
    """``nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True)``."""
    h, w = x.shape[2], x.shape[3]
    rows = jnp.asarray(_align_corners_matrix(h, 2 * h), x.dtype)
    cols = jnp.asarray(_align_corners_matrix(w, 2 * w), x.dtype)
    return jnp.einsum("ih,nchw,jw->ncij", rows, x, cols, precision=precision)


def dropout(x, rate: float, key):
    """``nn.Dropout`` in training mode: zero each entry with probability ``rate``, rescale."""
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def dropout2d(x, rate: float, key):
    """``F.dropout2d`` in training mode: zero whole channels of each sample, rescale."""
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape[:2] + (1, 1))
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def torch_default_init(key, shape: tuple[int, ...], fan_in: int) -> jax.Array:
    """PyTorch's default Conv/Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    (kaiming_uniform with a = sqrt(5) for weights gives the same bound as the bias rule.)
    """
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def shape_problem(state, want: dict[str, tuple[int, ...]], optional=("num_batches_tracked",)
                  ) -> str | None:
    """None if ``state`` has exactly the keys and shapes of ``want``, else what differs.

    Keys ending in one of ``optional`` (BatchNorm's step counters) may be present or not.
    """
    keys = {k for k in state if not k.endswith(optional)}
    if keys != set(want):
        missing, extra = sorted(set(want) - keys), sorted(keys - set(want))
        return f"state-dict keys differ (missing {missing[:3]}, unexpected {extra[:3]})"
    for key, shape in want.items():
        if tuple(state[key].shape) != tuple(shape):
            return f"{key} has shape {tuple(state[key].shape)}, expected {tuple(shape)}"
    return None
