"""Korotin et al. 2021 high-dimensional pairs (Mix3toMix10), identical to the official ones.

Source P: the 3-component Gaussian mixture the official code draws right after
``np.random.seed(0)`` (``RandomGaussianMixSampler(dim, num=3)``: spacing 1, std 0.4,
standardized so that E|x|^2 = D). Target Q = T#P with

    T(x) = scale * (grad psi_1(x) + grad psi_2(x) + offset),

psi_1, psi_2 the official DenseICNN checkpoints ``{D}_v1.pt``, ``{D}_v2.pt`` loaded with
strong convexity 1e-2, and (scale, offset) the official standardization. The constants
of dims 2..128 are the official ones (``hd_official_constants.json``); dim 256 has none
published, so they are computed the official way on a larger sample (``provenance``
says so).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from otarena import data
from otarena.errors import DataError
from otarena.models import dense_icnn
from otarena.pairs import Pair, PairFamily, inverse_by_conjugate
from otarena.torch_io import load_state_dict

DIMS = (2, 4, 8, 16, 32, 64, 128, 256)
COMPONENTS = 3
COMPONENT_STD = 0.4
CENTER_SPACING = 1.0
MIXTURE_SEED = 0
STRONG_CONVEXITY = 1e-2  # at load; the potentials were trained with 1e-4
CONSTANTS_FILE = Path(__file__).with_name("hd_official_constants.json")
# Dims without official constants: the official estimators, on 2^16 instead of 2^14 points.
COMPUTED_CONSTANTS_SIZE = 2**16
COMPUTED_CONSTANTS_KEY = 0xC0A57


def mixture_parameters(dim: int, num: int = COMPONENTS, std: float = COMPONENT_STD,
                       spacing: float = CENTER_SPACING, seed: int = MIXTURE_SEED
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Centers (num, dim) and maps (num, dim, dim), float32, of the official mixture.

    The same draws and float32/float64 roundings as the official code run under NumPy 2
    (NEP 50 promotion): per coordinate a permutation of the centers, then unit-norm rows
    of normal matrices, then one common rescaling so that E|x|^2 = dim.
    """
    rng = np.random.RandomState(seed)
    centers = np.zeros((num, dim), dtype=np.float32)
    for d in range(dim):
        centers[:, d] += spacing * rng.permutation(num)
    centers -= spacing * (num - 1) / 2
    maps = rng.normal(size=(num, dim, dim)).astype(np.float32)
    maps /= np.sqrt((maps**2).sum(axis=2, keepdims=True))
    second_moment = (centers**2).sum(axis=1).mean() + np.float32(dim * std**2)
    rescale = np.float64(np.sqrt(np.float32(second_moment))) / np.sqrt(dim)
    centers = (centers / rescale).astype(np.float32)
    maps = (maps / rescale).astype(np.float32)
    return centers, maps


def mixture_moments(centers: np.ndarray, maps: np.ndarray, std: float = COMPONENT_STD
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and covariance of the equal-weight mixture, in float64."""
    c, a = centers.astype(np.float64), maps.astype(np.float64)
    mean = c.mean(axis=0)
    second = (std**2 * np.einsum("kij,klj->kil", a, a) + np.einsum("ki,kl->kil", c, c)).mean(0)
    return mean, second - np.outer(mean, mean)


def sample_mixture(centers: jax.Array, maps: jax.Array, std: float,
                   key: jax.Array, n: int) -> jax.Array:
    """n points: component k uniform, x = std * A_k z + c_k with z ~ N(0, I)."""
    k_component, k_noise = jax.random.split(key)
    component = jax.random.randint(k_component, (n,), 0, centers.shape[0])
    z = jax.random.normal(k_noise, (n, centers.shape[1]), dtype=jnp.float32)
    # All components on all points (3 dense matmuls) beats gathering n matrices.
    every = jnp.einsum("nj,kij->nki", z, maps, precision=dense_icnn.EXACT)
    chosen = jnp.take_along_axis(every, component[:, None, None], axis=1)[:, 0]
    return std * chosen + centers[component]


def checkpoint_paths(dim: int) -> list[str]:
    return [f"w2-benchmark/Mix3toMix10/{dim}_{v}.pt" for v in ("v1", "v2")]


def load_potentials(dim: int) -> dense_icnn.Params:
    """Both official potentials of ``dim``, stacked for one fused evaluation."""
    nets = []
    for relpath in checkpoint_paths(dim):
        path = data.require(relpath)
        state = load_state_dict(path, data.entry(relpath))
        problem = dense_icnn.shape_mismatch(state, dim)
        if problem:
            raise DataError(data.describe_problem(
                data.entry(relpath), f"not a DenseICNN checkpoint of dimension {dim} ({problem})"))
        nets.append({k: jnp.asarray(v, dtype=jnp.float32) for k, v in state.items()})
    return dense_icnn.stack(*nets)


def _official_constants(dim: int) -> dict | None:
    return json.loads(CONSTANTS_FILE.read_text())["dims"].get(str(dim))


def fuse(stacked: dense_icnn.Params) -> dict:
    """Both potentials' weights laid out for one evaluation of psi_1 + psi_2 in plain 2-D
    matmuls, the two networks side by side in the columns (network-major).

    Every quadratic layer of both networks reads x, so all their projections of x (rank
    and linear parts) are one matmul ``x @ x_weights``; a convex layer of both networks
    is one matmul with a block-diagonal weight, the final layers one matrix-vector product.
    On a GPU a batch of the ground truth costs about a kernel per small matmul and per
    transpose, so this removes most of its time. The sums of products are those of
    :func:`otarena.models.dense_icnn.dense_icnn` (rounding aside).
    """
    nets, _, rank, _ = stacked["quadratic_layers.0.quadratic_decomposed"].shape
    columns, layout, start = [], [], 0
    for l in range(dense_icnn.num_layers(stacked)):
        a = stacked[f"quadratic_layers.{l}.quadratic_decomposed"]  # (nets, D, rank, width)
        w = stacked[f"quadratic_layers.{l}.weight"]  # (nets, width, D)
        width = a.shape[-1]
        columns += [jnp.moveaxis(a, 0, 1).reshape(a.shape[1], -1),  # columns (net, rank, out)
                    jnp.moveaxis(w, 2, 0).reshape(w.shape[2], -1)]  # columns (net, out)
        layout.append((start, start + nets * rank * width, start + nets * (rank + 1) * width,
                       width))
        start = layout[-1][2]

    def block_diagonal(w):  # (nets, out, in) -> (nets * in, nets * out): z @ it per network
        return jax.scipy.linalg.block_diag(*[w[k].T for k in range(nets)])

    return {"x_weights": jnp.concatenate(columns, axis=1), "layout": tuple(layout),
            "nets": nets, "rank": rank,
            "bias": [stacked[f"quadratic_layers.{l}.bias"].reshape(-1) for l in range(len(layout))],
            "convex": [block_diagonal(stacked[f"convex_layers.{l}.weight"])
                       for l in range(len(layout) - 1)],
            "final": stacked["final_layer.weight"].reshape(-1)}  # (nets * last,)


def summed_potential(fused: dict, x):
    """psi_1(x) + psi_2(x) for the weights of :func:`fuse`, each row of x (n, D) -> (n,)."""
    exact = dense_icnn.EXACT
    n, nets, rank = x.shape[0], fused["nets"], fused["rank"]
    projected = jnp.dot(x, fused["x_weights"], precision=exact)
    z = None
    for l, (start, mid, stop, width) in enumerate(fused["layout"]):
        u = projected[:, start:mid]
        if rank > 1:
            u = u.reshape(n, nets, rank, width)
        squares = (jnp.sum(u * u, axis=2) if rank > 1 else u * u).reshape(n, nets * width)
        quadratic = squares + projected[:, mid:stop] + fused["bias"][l]  # (n, nets * width)
        z = quadratic if z is None else jax.nn.celu(
            jnp.dot(z, fused["convex"][l - 1], precision=exact) + quadratic)
    return (jnp.dot(z, fused["final"], precision=exact)
            + nets * 0.5 * STRONG_CONVEXITY * jnp.sum(x * x, axis=1))


def gradient_of(potential):
    """Row-wise gradients of a batched potential (rows are independent: grad of the sum)."""
    return jax.grad(lambda x: potential(x).sum())


def compute_constants(stacked, sample, size: int = COMPUTED_CONSTANTS_SIZE,
                      key: int = COMPUTED_CONSTANTS_KEY, chunk: int = 4096) -> dict:
    """The official estimators of scale, offset, in_var, out_var and cost, on ``size`` points.

    As the official code: offset = -mean of grad(psi_1 + psi_2) over P, scale = 1/sqrt of
    the mean per-coordinate variance of it, in/out_var the total variances of P and of
    T#P, cost = 1/2 E|x - T(x)|^2. Sums are accumulated in float64.
    """
    raw_map = jax.jit(gradient_of(partial(summed_potential, fuse(stacked))))
    draw = jax.jit(sample, static_argnums=1)
    xs, ys = [], []
    for k in jax.random.split(jax.random.key(key), size // chunk):
        x = draw(k, chunk)
        xs.append(np.asarray(x, np.float64))
        ys.append(np.asarray(raw_map(x), np.float64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    mean = y.mean(axis=0)
    scale = 1.0 / np.sqrt((y - mean).var(axis=0).mean())
    t = scale * (y - mean)
    return {"scale": float(scale), "offset": (-mean).tolist(),
            "in_var": float(x.var(axis=0).sum()), "out_var": float(t.var(axis=0).sum()),
            "cost": float(0.5 * ((x - t) ** 2).sum(axis=1).mean())}


def build(name: str) -> Pair:
    dim = int(name.split("-")[1])
    centers, maps = mixture_parameters(dim)
    base = partial(sample_mixture, jnp.asarray(centers), jnp.asarray(maps), COMPONENT_STD)
    stacked = load_potentials(dim)
    fused = fuse(stacked)

    constants = _official_constants(dim)
    if constants is not None:
        origin = ("official: Wasserstein2Benchmark Mix3ToMix10Benchmark constants "
                  "(datasets/hd_official_constants.json)")
    else:
        constants = compute_constants(stacked, base)
        origin = (f"computed by otarena with the official estimators on "
                  f"{COMPUTED_CONSTANTS_SIZE} points (key {COMPUTED_CONSTANTS_KEY:#x}); "
                  "no official constants are published for this dimension")
    scale = float(constants["scale"])
    offset = jnp.asarray(constants["offset"], dtype=jnp.float32)

    def potential(x):
        return scale * (summed_potential(fused, x) + x @ offset)

    return Pair(
        name=name, dim=dim, base=base, forward=gradient_of(potential),
        inverse=inverse_by_conjugate(potential),
        base_var=float(constants["in_var"]), pushed_var=float(constants["out_var"]),
        cost=float(constants["cost"]),
        base_moments=mixture_moments(centers, maps),
        potential=potential,
        provenance={"family": "hd", "source": "Mix3 (official recipe, numpy seed 0)",
                    "checkpoints": checkpoint_paths(dim),
                    "sha256": [data.entry(p).sha256 for p in checkpoint_paths(dim)],
                    "constants": origin},
    )


PAIR_FAMILY = PairFamily(
    family="hd",
    names=tuple(f"hd-{d}" for d in DIMS),
    build=build,
    data_files=lambda name: checkpoint_paths(int(name.split("-")[1])),
    description="Korotin et al. 2021 Mix3toMix10: 3-Gaussian mixture -> pushforward by the "
                "gradient of two official DenseICNN potentials (Table 2 of the paper)",
    titles={f"hd-{d}": f"$n={d}$" for d in DIMS},
    short_titles={f"hd-{d}": str(d) for d in DIMS},
    axis=("dimension n", {f"hd-{d}": d for d in DIMS}),
)
