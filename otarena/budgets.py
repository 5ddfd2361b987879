"""Budget profiles: how long a solver trains and how often it is evaluated.

``smoke`` is for CI (seconds), ``quick`` for a CPU in minutes, ``paper`` for the papers'
budgets. Each solver states what a profile means for it (a closed-form baseline ignores
the budget); ``iterations`` and ``eval_every`` override the profile from the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TypeVar, Union

from otarena.errors import UnknownNameError

T = TypeVar("T")
# A setting that may depend on the budget: one value for every profile, or a
# {profile: value} mapping (resolved by Budget.of).
PerProfile = Union[T, Mapping[str, T]]

PROFILES = ("smoke", "quick", "paper")
# Matmul precision per profile: on Ampere and later GPUs JAX's default is TF32; the papers'
# networks ran in full fp32 (pre-Ampere cards), so paper-budget runs ask for fp32. CPUs
# compute fp32 either way.
MATMUL_PRECISION = {"smoke": "default", "quick": "default", "paper": "float32"}
PRECISIONS = ("default", "float32", "tensorfloat32", "bfloat16")


@dataclass(frozen=True)
class Budget:
    profile: str = "smoke"
    iterations: int | None = None  # None: the solver's number for the profile
    eval_every: int | None = None  # None: the solver's number for the profile
    precision: str | None = None  # matmul precision; None: the profile's (MATMUL_PRECISION)

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise UnknownNameError(f"unknown budget {self.profile!r}; choose one of "
                                   f"{', '.join(PROFILES)}")
        for name in ("iterations", "eval_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UnknownNameError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise UnknownNameError(f"unknown matmul precision {self.precision!r}; choose one "
                                   f"of {', '.join(PRECISIONS)}")

    @property
    def matmul_precision(self) -> str:
        return self.precision or MATMUL_PRECISION[self.profile]

    def pick(self, per_profile: PerProfile[int]) -> int:
        """The iteration count for this budget from a solver's ``{profile: iterations}``
        (the ``--iterations`` override when given)."""
        return self.iterations if self.iterations is not None else self.of(per_profile)

    def of(self, value: PerProfile[T]) -> T:
        """A setting at this budget's profile: ``value[profile]`` for a per-profile mapping,
        else ``value`` itself (the same at every profile). No override applies."""
        return value[self.profile] if isinstance(value, Mapping) else value

    def as_dict(self) -> dict:
        """What the run id hashes: an unset precision is the profile's, so it is left out
        (run ids of records made before the field existed stay valid)."""
        found = asdict(self)
        if found["precision"] is None:
            del found["precision"]
        return found
