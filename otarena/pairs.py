"""Benchmark pairs: a source measure P, a target Q = T#P, and the ground-truth map T.

``load(name, reverse=False)`` returns a :class:`Pair`. Pair families live in the plugin
folder ``datasets/``: each file there may define ``PAIR_FAMILY``, a :class:`PairFamily`.

All sampling and maps are pure JAX, jittable (``n`` must be static) and run on the
default device, so solvers call them inside their own compiled training steps. Two
calls with the same key are coupled (``sample_target(k, n) == true_map(sample_source(k, n))``
for a forward pair): a solver that wants independent batches splits its key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from otarena import plugins
from otarena.errors import UnknownNameError

Sampler = Callable[[jax.Array, int], jax.Array]
Map = Callable[[jax.Array], jax.Array]

# Fixed key for Monte Carlo moment estimates, so every process sees the same pair.
MOMENT_KEY = 0x6D6F6D


def estimate_moments(sample: Sampler, size: int, key: jax.Array, chunk: int = 8192
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of ``size`` samples, accumulated in float64 on the host."""
    chunk = min(chunk, size)
    if size % chunk:
        raise ValueError(f"moment sample size {size} is not a multiple of the chunk {chunk}")
    total, outer = 0.0, 0.0
    for k in jax.random.split(key, size // chunk):
        x = np.asarray(sample(k, chunk), dtype=np.float64)
        total = total + x.sum(axis=0)
        outer = outer + x.T @ x
    mean = total / size
    cov = (outer - size * np.outer(mean, mean)) / (size - 1)
    return mean, cov


@dataclass(eq=False)
class Pair:
    """Source P = ``base``, target Q = T#P, or the reverse when ``reverse`` is set.

    ``source_var`` / ``target_var`` are the total variances (trace of the covariance)
    that divide L2-UVP; ``cost`` is 1/2 E|x - T(x)|^2, used by the cosine metric.
    """

    name: str
    dim: int
    base: Sampler  # P
    forward: Map  # T, P -> Q
    inverse: Map  # T^-1, Q -> P
    base_var: float
    pushed_var: float
    cost: float
    reverse: bool = False
    base_moments: tuple[np.ndarray, np.ndarray] | None = None  # exact (mean, cov) of P
    moment_size: int = 2**16
    potential: Callable[[jax.Array], jax.Array] | None = None  # psi with grad psi = T
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self._sample_base = jax.jit(self.base, static_argnums=1)
        self._forward = jax.jit(self.forward)
        self._inverse = jax.jit(self.inverse)

    @property
    def label(self) -> str:
        return f"{self.name}:R" if self.reverse else self.name

    def reversed(self) -> Pair:
        other = Pair(**{f: getattr(self, f) for f in self.__dataclass_fields__})
        other.reverse = not self.reverse
        other.__dict__.update({k: v for k, v in self.__dict__.items()
                               if k in ("_base_moments_est", "_pushed_moments_est")})
        return other

    # -- sampling -----------------------------------------------------------------------
    def sample_coupled(self, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
        """(x, T*(x)) with x from the source: the ground-truth coupling."""
        p = self._sample_base(key, n)
        q = self._forward(p)
        return (q, p) if self.reverse else (p, q)

    def sample_source(self, key: jax.Array, n: int) -> jax.Array:
        p = self._sample_base(key, n)
        return self._forward(p) if self.reverse else p

    def sample_target(self, key: jax.Array, n: int) -> jax.Array:
        p = self._sample_base(key, n)
        return p if self.reverse else self._forward(p)

    def true_map(self, x: jax.Array) -> jax.Array:
        """The ground-truth map from source to target (T, or T^-1 for a reversed pair)."""
        return self._inverse(x) if self.reverse else self._forward(x)

    # -- the constants of the metrics -----------------------------------------------------
    @property
    def source_var(self) -> float:
        return self.pushed_var if self.reverse else self.base_var

    @property
    def target_var(self) -> float:
        return self.base_var if self.reverse else self.pushed_var

    # -- moments (for the linear baseline) -------------------------------------------------
    @cached_property
    def _base_moments_est(self) -> tuple[np.ndarray, np.ndarray]:
        if self.base_moments is not None:
            return self.base_moments
        return estimate_moments(self._sample_base, self.moment_size, jax.random.key(MOMENT_KEY))

    @cached_property
    def _pushed_moments_est(self) -> tuple[np.ndarray, np.ndarray]:
        return estimate_moments(lambda k, n: self._forward(self._sample_base(k, n)),
                                self.moment_size, jax.random.key(MOMENT_KEY))

    def _moments(self, of_source: bool) -> tuple[np.ndarray, np.ndarray]:
        pushed = of_source == self.reverse
        return self._pushed_moments_est if pushed else self._base_moments_est

    @property
    def source_mean(self) -> np.ndarray:
        return self._moments(True)[0]

    @property
    def source_cov(self) -> np.ndarray:
        return self._moments(True)[1]

    @property
    def target_mean(self) -> np.ndarray:
        return self._moments(False)[0]

    @property
    def target_cov(self) -> np.ndarray:
        return self._moments(False)[1]


@dataclass(frozen=True)
class PairFamily:
    """A named family of pairs provided by a file in ``datasets/``, with what reports need
    to show its pairs: the order of ``names`` is the order of table columns."""

    family: str
    names: tuple[str, ...]
    build: Callable[[str], Pair]  # the forward pair of a name
    data_files: Callable[[str], list[str]]  # manifest paths a name needs
    description: str = ""
    not_ready: Callable[[str], str | None] | None = None  # why a name can't load, beyond data
    # Column titles: in the papers' layouts (LaTeX; e.g. "$n=2$", "Early") and in the family
    # tables (e.g. "2"); a name without a title is shown as is.
    titles: Mapping[str, str] = field(default_factory=dict)
    short_titles: Mapping[str, str] = field(default_factory=dict)
    # A numeric axis for figures against the pairs (label, {name: value}), e.g. the dimension.
    axis: tuple[str, Mapping[str, float]] | None = None

    def title(self, name: str) -> str:
        return self.titles.get(name, name)

    def short_title(self, name: str) -> str:
        return self.short_titles.get(name, name)

    def axis_value(self, name: str) -> float | None:
        return None if self.axis is None else self.axis[1].get(name)


def problem(name: str) -> str | None:
    """Why the pair ``name`` cannot be loaded here (missing data, not built), or None."""
    from otarena import data

    fam = family_of(name)
    unusable = [p for p in fam.data_files(name)
                if data.status(data.entry(p))[0] in data.UNUSABLE]
    if unusable:
        return f"{name}: data not usable ({', '.join(unusable)}); `otarena data fetch {name}`"
    return fam.not_ready(name) if fam.not_ready else None


def families() -> dict[str, PairFamily]:
    return plugins.collect("datasets", "PAIR_FAMILY", lambda family: family.family)


def names() -> list[str]:
    return [n for fam in families().values() for n in fam.names]


def family_of(name: str) -> PairFamily:
    for fam in families().values():
        if name in fam.names:
            return fam
    raise UnknownNameError(f"unknown pair {name!r}; `otarena list pairs` shows the "
                           f"{len(names())} pairs")


@lru_cache(maxsize=None)
def _forward_pair(name: str) -> Pair:
    return family_of(name).build(name)


@lru_cache(maxsize=None)
def _reversed_pair(forward: Pair) -> Pair:
    return forward.reversed()


def load(name: str, reverse: bool = False) -> Pair:
    """The benchmark pair ``name`` (``reverse=True`` swaps source and target).

    Pairs are built once per process: the same name gives the same object.
    """
    pair = _forward_pair(name)
    return _reversed_pair(pair) if reverse else pair


def inverse_by_conjugate(potential: Callable[[jax.Array], jax.Array], tol: float = 1e-3,
                         max_iter: int = 200, newton_steps: int = 4) -> Map:
    """T^-1(y) = argmin_x psi(x) - <x, y> for T = grad psi, psi strongly convex.

    Per point (vmapped): L-BFGS warm-started at y until |grad psi(x) - y|_inf <= tol, then
    a few Newton steps on grad psi(x) = y. The Newton polish is needed in float32: near
    the optimum the objective changes less than its rounding, so the line search stalls.
    """
    import optax

    def solve_one(y):
        def objective(x):
            return potential(x[None])[0] - jnp.dot(x, y)

        opt = optax.lbfgs(memory_size=20)
        value_and_grad = optax.value_and_grad_from_state(objective)

        def step(carry):
            x, state, _ = carry
            value, grad = value_and_grad(x, state=state)
            updates, state = opt.update(grad, state, x, value=value, grad=grad,
                                        value_fn=objective)
            return optax.apply_updates(x, updates), state, jnp.max(jnp.abs(grad))

        def keep_going(carry):
            _, state, gmax = carry
            return (gmax > tol) & (optax.tree.get(state, "count") < max_iter)

        x, _, _ = jax.lax.while_loop(keep_going, step, (y, opt.init(y), jnp.inf))
        residual = jax.grad(objective)
        for _ in range(newton_steps):
            x = x - jnp.linalg.solve(jax.hessian(objective)(x), residual(x))
        return x

    return jax.vmap(solve_one)
