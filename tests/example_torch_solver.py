"""A user's solver in PyTorch: the Gaussian OT map estimated from samples.

Samples are drawn by otarena in JAX and cross to PyTorch by DLPack; the fitted map runs in
PyTorch and its outputs cross back the same way.
"""

import jax
import torch

from otarena.solver import Fitted, Solver


def to_torch(x):
    return torch.from_dlpack(x)


def to_jax(t):
    return jax.dlpack.from_dlpack(t.contiguous())


def sqrtm(a):
    w, v = torch.linalg.eigh(0.5 * (a + a.T))
    return (v * w.clamp(min=0).sqrt()) @ v.T


def gaussian_map(x, y):
    mx, my = x.mean(0), y.mean(0)
    cx, cy = torch.cov(x.T), torch.cov(y.T)
    root = sqrtm(cx)
    inv_root = torch.linalg.inv(root)
    w = inv_root @ sqrtm(root @ cy @ root) @ inv_root
    return w, my - w @ mx


def fit(pair, key, budget):
    n = budget.pick({"smoke": 8192, "quick": 65536, "paper": 262144})
    kx, ky = jax.random.split(key)
    x = to_torch(pair.sample_source(kx, n)).double()
    y = to_torch(pair.sample_target(ky, n)).double()
    w, b = gaussian_map(x, y)
    wi, bi = gaussian_map(y, x)

    def forward(x):
        return to_jax((to_torch(x).double() @ w.T + b).float())

    def inverse(y):
        return to_jax((to_torch(y).double() @ wi.T + bi).float())

    return Fitted(forward=forward, inverse=inverse, iterations=1)


SOLVERS = [Solver("torch-gaussian", fit, config={"samples": "8192/65536/262144"},
                  label="[torch]", description="Gaussian OT map from samples, in PyTorch")]
