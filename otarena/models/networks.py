"""Trainable networks of the solvers: potentials (x -> scalar) and maps (x -> x).

Amos 2023 (app. B): the ICNN potential (B.3), the MLP potential (B.4) and the residual
amortization MLP (B.2). Korotin et al. 2021: the DenseICNN, convex (weights clamped after
every step) or not. Every model is a :class:`Model`: ``init(key, x) -> params`` and
``apply(params, x)`` on a batch, so the engine treats them alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import dataclasses
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

from otarena.models import conv_icnn, conv_potential, dense_icnn, resnet_d, unet

IMAGE_DIM = 3 * 64 * 64

fan_in_init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")


def amos_hidden_sizes(dim: int) -> list[int]:
    """[2b, 2b, b] with b = max(D, 32): equal to Korotin's widths."""
    b = max(dim, 32)
    return [2 * b, 2 * b, b]


class PositiveDense(nn.Module):
    """z -> z softplus(K) / fan_in: non-negative weights keep the ICNN convex."""

    features: int

    @nn.compact
    def __call__(self, z):
        kernel = self.param("kernel", fan_in_init, (z.shape[-1], self.features))
        return z @ nn.softplus(kernel) / z.shape[-1]


class ActNorm(nn.Module):
    """Affine normalization initialized from the first batch it sees (the init batch)."""

    @nn.compact
    def __call__(self, z):
        log_scale = self.param("log_scale", lambda _: jnp.log(z.std(axis=0)))
        bias = self.param("bias", lambda _: -z.mean(axis=0))
        return (z + bias) / jnp.exp(log_scale)


def _quadratic(module: nn.Module, x):
    log_alpha = module.param("log_alpha", nn.initializers.zeros, ())
    return 0.5 * jnp.exp(log_alpha) * jnp.sum(x * x, axis=-1)


class ICNN(nn.Module):
    """Amos' ICNN: z_1 = elu(W_0 x), z_{k+1} = elu(ActNorm(W_k^+ z_k + A_k x)),
    psi = elu(w^+ z + a x) + exp(alpha)/2 |x|^2."""

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, x):
        z = nn.elu(nn.Dense(self.hidden[0], kernel_init=fan_in_init)(x))
        for width in self.hidden[1:]:
            z = PositiveDense(width)(z) + nn.Dense(width, kernel_init=fan_in_init)(x)
            z = nn.elu(ActNorm()(z))
        out = PositiveDense(1)(z) + nn.Dense(1, kernel_init=fan_in_init)(x)
        return nn.elu(out)[..., 0] + _quadratic(self, x)


class MLPPotential(nn.Module):
    """A non-convex potential: elu MLP, elu on the scalar output, + exp(alpha)/2 |x|^2."""

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, x):
        z = x
        for width in self.hidden:
            z = nn.elu(nn.Dense(width)(z))
        return nn.elu(nn.Dense(1)(z))[..., 0] + _quadratic(self, x)


class ResidualMLP(nn.Module):
    """The amortization model H(y) = y + MLP(y): starts near the identity."""

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, y):
        z = y
        for width in self.hidden:
            z = nn.elu(nn.Dense(width)(z))
        return y + nn.Dense(y.shape[-1])(z)


@dataclass(frozen=True)
class Model:
    """A network the engine trains. A potential's map is its gradient.

    ``apply`` is the evaluation-mode forward. Networks that behave differently while
    training (dropout, batch norm on batch statistics) also give ``train_apply(params, x,
    key)``; batch-norm running statistics live in ``params`` and are refreshed by
    ``update_stats(old, new, x)`` after each optimizer step on a batch ``x``.
    ``eval_chunk`` bounds how many points one evaluation call pushes at once.
    """

    name: str
    init: Callable[[jax.Array, jax.Array], dict]
    apply: Callable[[dict, jax.Array], jax.Array]
    is_potential: bool
    project: Callable[[dict], dict] = lambda params: params  # after each optimizer step
    train_apply: Callable[[dict, jax.Array, jax.Array], jax.Array] | None = None
    update_stats: Callable[[dict, dict, jax.Array], dict] | None = None
    eval_chunk: int | None = None

    def push(self, params, x):
        """The map of the model on a batch: grad psi for a potential (rows independent)."""
        if self.is_potential:
            return jax.grad(lambda v: self.apply(params, v).sum())(x)
        return self.apply(params, x)

    def apply_train(self, params, x, key):
        """The training-mode forward (the evaluation one for deterministic networks)."""
        if self.train_apply is None:
            return self.apply(params, x)
        return self.train_apply(params, x, key)

    def push_train(self, params, x, key):
        """The training-mode map: gradient of the training-mode potential, or the output."""
        if self.train_apply is None:
            return self.push(params, x)
        if self.is_potential:
            return jax.grad(lambda v: self.train_apply(params, v, key).sum())(x)
        return self.train_apply(params, x, key)


def flax_model(name: str, module: nn.Module, is_potential: bool) -> Model:
    return Model(name=name, init=lambda key, x: module.init(key, x)["params"],
                 apply=lambda params, x: module.apply({"params": params}, x),
                 is_potential=is_potential)


def _dense_icnn_init(dim: int, std: float):
    shapes = dense_icnn.expected_shapes(dim, dense_icnn.hidden_sizes(dim))

    def init(key, x):
        keys = jax.random.split(key, len(shapes))
        return {name: std * jax.random.normal(k, shape)
                for k, (name, shape) in zip(keys, sorted(shapes.items()))}
    return init


def _clamp_convex_weights(params):
    return {k: jnp.maximum(v, 0.0) if k.startswith(("convex_layers", "final_layer")) else v
            for k, v in params.items()}


def korotin_dense_icnn(dim: int, convex: bool, strong_convexity: float = 1e-4,
                       init_std: float = 0.1) -> Model:
    """Korotin's DenseICNN as trained by the benchmark's solvers (CELU, rank 1).

    ``convex=False`` is the same architecture without the clamp: [MM]'s non-convex net.
    """
    def apply(params, x):
        return dense_icnn.dense_icnn(params, x, strong_convexity, precision=None)

    return Model(name="dense-icnn" if convex else "dense-nn",
                 init=_dense_icnn_init(dim, init_std), apply=apply, is_potential=True,
                 project=_clamp_convex_weights if convex else (lambda params: params))


# -- image models (flattened 3x64x64 images) ----------------------------------------------------
IMAGE_EVAL_CHUNK = 256


def amos_conv_potential() -> Model:
    """Amos 2023's ConvNet potential (also the amortization model H of its image rows)."""
    return dataclasses.replace(flax_model("conv-potential", conv_potential.ConvPotential(), True),
                               eval_chunk=IMAGE_EVAL_CHUNK)


def korotin_conv_icnn64() -> Model:
    """Korotin's ConvICNN64 as its solvers train it: N(0, 0.01^2) init, strong convexity
    0.01, rank 4, dropout 0.02 while training, convolution weights clamped after every step."""
    return Model(name="conv-icnn64", init=lambda key, x: conv_icnn.init(key),
                 apply=lambda p, x: conv_icnn.conv_icnn64(p, x, precision=None),
                 train_apply=lambda p, x, key: conv_icnn.conv_icnn64(p, x, key=key, precision=None),
                 is_potential=True, project=conv_icnn.convexify, eval_chunk=IMAGE_EVAL_CHUNK)


def korotin_resnet_potential() -> Model:
    """[MM]'s image potential |x|^2 / 2 - ResNet_D(x) (WGAN-QC discriminator), not convex."""
    return Model(name="resnet-d", init=lambda key, x: resnet_d.init(key),
                 apply=lambda p, x: resnet_d.potential(p, x), is_potential=True,
                 eval_chunk=IMAGE_EVAL_CHUNK)


def korotin_unet() -> Model:
    """[MM]'s map network: UNet(3, 3, base_factor=48), batch norms in training mode."""
    return Model(name="unet", init=lambda key, x: unet.init(key),
                 apply=lambda p, x: unet.unet(p, x),
                 train_apply=lambda p, x, key: unet.unet(p, x, train=True)[0],
                 update_stats=unet.update_stats, is_potential=False,
                 eval_chunk=IMAGE_EVAL_CHUNK)


IMAGE_MODELS = {"conv-potential": amos_conv_potential, "conv-icnn64": korotin_conv_icnn64,
                "resnet-d": korotin_resnet_potential, "unet": korotin_unet}


def build(name: str, dim: int) -> Model:
    """A model by name for inputs of dimension ``dim``."""
    if name in IMAGE_MODELS:
        if dim != IMAGE_DIM:
            raise ValueError(f"model {name!r} takes flattened 3x64x64 images (dim {IMAGE_DIM}), "
                             f"not dim {dim}")
        return IMAGE_MODELS[name]()
    hidden = amos_hidden_sizes(dim)
    if name == "icnn":
        return flax_model(name, ICNN(hidden), is_potential=True)
    if name == "mlp":
        return flax_model(name, MLPPotential(hidden), is_potential=True)
    if name == "residual-mlp":
        return flax_model(name, ResidualMLP(hidden), is_potential=False)
    if name == "dense-icnn":
        return korotin_dense_icnn(dim, convex=True)
    if name == "dense-nn":
        return korotin_dense_icnn(dim, convex=False)
    raise ValueError(f"unknown model {name!r}")
