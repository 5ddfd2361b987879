"""Budget profiles: how long a solver trains and how often it is evaluated.

``smoke`` is for CI (seconds), ``quick`` for a CPU in minutes, ``paper`` for the papers'
budgets. Each solver states what a profile means for it (a closed-form baseline ignores
the budget); ``iterations`` and ``eval_every`` override the profile from the CLI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from otarena.errors import UnknownNameError

PROFILES = ("smoke", "quick", "paper")


@dataclass(frozen=True)
class Budget:
    profile: str = "smoke"
    iterations: int | None = None  # None: the solver's number for the profile
    eval_every: int | None = None  # None: the solver's number for the profile

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise UnknownNameError(f"unknown budget {self.profile!r}; choose one of "
                                   f"{', '.join(PROFILES)}")
        for name in ("iterations", "eval_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UnknownNameError(f"--{name.replace('_', '-')} must be positive, got {value}")

    def pick(self, per_profile: dict[str, int]) -> int:
        """The iteration count for this budget from a solver's ``{profile: iterations}``."""
        return self.iterations if self.iterations is not None else per_profile[self.profile]

    def as_dict(self) -> dict:
        return asdict(self)
