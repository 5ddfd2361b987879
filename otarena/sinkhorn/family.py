"""Sinkhorn problem families: what an instance set is, how it is registered, its budgets.

A file in ``datasets/`` defines ``SINKHORN_FAMILY``, a :class:`SinkhornFamily`: its name,
its title in reports, the builder of its :class:`ProblemFamily` (which takes the family's
options, e.g. MNIST's ``grid``) and what each budget profile means for it (a
:class:`Plan`). Adding a family is adding that one file; the ``metaot-sinkhorn`` suite
runs every registered family.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from otarena import plugins
from otarena.errors import UnknownNameError

THRESHOLDS = (1e-2, 1e-3, 1e-4, 1e-5)  # Table 1's marginal error and the appendix sweep


@dataclass(eq=False)
class ProblemFamily:
    """Instances (a, b) on fixed atoms x (for a) and y (for b) with a fixed cost and eps."""

    name: str
    epsilon: float
    x: np.ndarray
    y: np.ndarray
    cost: Callable[[jax.Array, jax.Array], jax.Array]  # pairwise cost matrix, jittable
    cost_name: str
    sample_train: Callable[[jax.Array, int], tuple[jax.Array, jax.Array]]  # pure JAX
    test_instances: Callable[[int], tuple[jax.Array, jax.Array, dict]]
    curve_iterations: int  # the paper's x-axis for the error curves
    provenance: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # resolved: rebuilds this family
    variant: str | None = None  # short label of a non-default instance set, for reports

    def points(self) -> tuple[jax.Array, jax.Array]:
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
        return jnp.asarray(self.x, dtype), jnp.asarray(self.y, dtype)

    def cost_matrix(self) -> jax.Array:
        return self.cost(*self.points())


# The JAX that drew the paper's test instances in 2022 ran with x64 on (train_discrete.py)
# and the non-partitionable threefry PRNG (jax_threefry_partitionable was added later and
# became True by default in JAX 0.5.0). Under today's default, PRNGKey(0) draws other MNIST
# digits and other spherical weights.
PAPER_DRAWS = "PRNGKey(0), x64, jax_threefry_partitionable=False (the JAX the paper ran)"


@contextlib.contextmanager
def paper_draws() -> Iterator[None]:
    """Random draws inside this block are the ones the paper's 2022 JAX made (thread-local)."""
    with jax.enable_x64(True), jax.threefry_partitionable(False):
        yield


@dataclass(frozen=True)
class Plan:
    """What one budget means for one family (every field is recorded and hashed)."""

    train_iterations: int
    batch: int
    test_instances: int
    thresholds: tuple[float, ...]
    repeats: int  # timed calls per instance; the instance's time is their median
    curve_iterations: int
    dtype: str
    batched: bool = True  # also time all test instances in one vmapped call
    cost_iterations: tuple[int, ...] = (10, 20, 40, 80, 160)  # fixed-length solves, see cost_model

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class SinkhornFamily:
    """A registered family: ``SINKHORN_FAMILY`` of a file in ``datasets/``."""

    name: str
    title: str  # in report section titles, e.g. "MNIST"
    build: Callable[..., ProblemFamily]  # (**options) -> the family's instances
    plans: Mapping[str, Plan]  # per budget profile
    description: str = ""


def registered() -> dict[str, SinkhornFamily]:
    """Every ``SINKHORN_FAMILY`` of ``datasets/``, in the order of their files."""
    return plugins.collect("datasets", "SINKHORN_FAMILY", lambda family: family.name)


def get(name: str) -> SinkhornFamily:
    families = registered()
    if name not in families:
        raise UnknownNameError(f"unknown family {name!r} (Sinkhorn problem families: "
                               f"{', '.join(families)})")
    return families[name]


def load_family(name: str, **options) -> ProblemFamily:
    """The family ``name`` built with ``options`` (its data read afresh)."""
    return get(name).build(**options)


def plan_for(budget, family: str, **overrides) -> Plan:
    """The family's plan at ``budget`` (an ``otarena.budgets.Budget``), with overrides."""
    plan = budget.of(get(family).plans)
    changes = {k: v for k, v in overrides.items() if v is not None}
    if budget.iterations is not None:
        changes["train_iterations"] = budget.iterations
    return Plan(**{**plan.__dict__, **changes})
