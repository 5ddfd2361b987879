"""A PyTorch reference of the official HD benchmark sampler, written from its definition.

It does what the official Wasserstein2Benchmark code does for each target batch: draw
the Mix3 source (component index from numpy's global RNG, normal noise from torch), then
push it through the two DenseICNN potentials with ``torch.autograd.grad`` and
standardize. Used (1) by the tests as an independent implementation the JAX port must
agree with, and (2) by the asv suite as the speed baseline.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class ConvexQuadratic(nn.Module):
    """x -> sum_r (x A[:, r, :])^2 + B x + b  (rank-r convex quadratic, per output)."""

    def __init__(self, dim: int, width: int, rank: int = 1):
        super().__init__()
        self.quadratic_decomposed = nn.Parameter(torch.zeros(dim, rank, width))
        self.weight = nn.Parameter(torch.zeros(width, dim))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x):
        u = torch.einsum("nd,dro->nro", x, self.quadratic_decomposed)
        return (u**2).sum(dim=1) + x @ self.weight.T + self.bias


class DenseICNN(nn.Module):
    """Korotin et al.'s fully connected ICNN with quadratic skip connections."""

    def __init__(self, dim: int, hidden: list[int], rank: int = 1,
                 strong_convexity: float = 1e-2):
        super().__init__()
        self.strong_convexity = strong_convexity
        self.quadratic_layers = nn.ModuleList(ConvexQuadratic(dim, h, rank) for h in hidden)
        self.convex_layers = nn.ModuleList(
            nn.Linear(a, b, bias=False) for a, b in zip(hidden[:-1], hidden[1:]))
        self.final_layer = nn.Linear(hidden[-1], 1, bias=False)

    def forward(self, x):
        z = self.quadratic_layers[0](x)
        for quadratic, convex in zip(self.quadratic_layers[1:], self.convex_layers):
            z = torch.celu(convex(z) + quadratic(x))
        return self.final_layer(z)[:, 0] + 0.5 * self.strong_convexity * (x**2).sum(dim=1)


def hidden_sizes(dim: int) -> list[int]:
    return [max(2 * dim, 64), max(2 * dim, 64), max(dim, 32)]


class OfficialStyleSampler:
    """Target batches as the official code makes them: autograd push on every batch."""

    def __init__(self, dim: int, centers: np.ndarray, maps: np.ndarray, states: list[dict],
                 scale: float, offset, std: float = 0.4, device: str = "cpu"):
        self.dim, self.std, self.device = dim, std, device
        self.centers = torch.tensor(centers, device=device)
        self.maps = torch.tensor(maps, device=device)
        self.nets = []
        for state in states:
            net = DenseICNN(dim, hidden_sizes(dim)).to(device)
            net.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
            for p in net.parameters():
                p.requires_grad_(False)
            self.nets.append(net)
        self.scale = scale
        self.offset = torch.as_tensor(np.asarray(offset, np.float32), device=device)

    def sample_source(self, n: int) -> torch.Tensor:
        idx = np.random.randint(0, len(self.centers), size=n)
        z = torch.randn(n, self.dim, device=self.device)
        with torch.no_grad():
            return torch.matmul(self.maps[idx], z[:, :, None])[:, :, 0] * self.std + self.centers[idx]

    def potential(self, x: torch.Tensor) -> torch.Tensor:
        total = sum(net(x) for net in self.nets)
        return self.scale * (total + x @ self.offset)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.potential(x).sum(), x)
        return grad.detach()

    def sample_target(self, n: int) -> torch.Tensor:
        return self.push(self.sample_source(n))
