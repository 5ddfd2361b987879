"""Amos 2023's image potential (the "ConvNet" rows of the CelebA table).

As described for w2ot's image benchmark (``ConvPotential``): flattened images in [-1, 1]
viewed as (3, 64, 64) are mapped to [0, 1] and normalized with the ImageNet channel mean
and std, then

    five 4x4 stride-2 'SAME' convolutions with 128, 128, 256, 512, 1024 channels, ELU,
    a 2x2 'VALID' convolution to one channel, ELU,
    psi(x) = that scalar + exp(alpha) / 2 |x|^2      (alpha learnable, initialized at 0)

Flax's default initializers (LeCun-normal kernels, zero biases), as in the original.
The amortization model H of these rows is a second ConvPotential whose gradient is the map.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHANNELS = (128, 128, 256, 512, 1024)


class ConvPotential(nn.Module):
    @nn.compact
    def __call__(self, x):
        flat = x
        y = x.reshape(x.shape[0], 3, 64, 64).transpose(0, 2, 3, 1)  # NHWC for flax
        y = ((y + 1.0) / 2.0 - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
        for width in CHANNELS:
            y = nn.elu(nn.Conv(width, kernel_size=(4, 4), strides=2)(y))
        y = nn.elu(nn.Conv(1, kernel_size=(2, 2), strides=1, padding="VALID")(y))
        log_alpha = self.param("log_alpha", nn.initializers.zeros, ())
        return y.reshape(x.shape[0]) + 0.5 * jnp.exp(log_alpha) * jnp.sum(flat * flat, axis=1)
