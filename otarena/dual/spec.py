"""What configures a dual-potential solver: optimizers, identity pretraining, the stop
rule, the reported iterate, and :class:`DualSpec`, which holds them all.

``DualSpec.config()`` is the configuration as data; it is hashed into every run id, so
its output must not change for an existing solver (``tests/test_identity_pins.py``).
Values that depend on the budget are :data:`otarena.budgets.PerProfile` values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import jax.numpy as jnp
import optax

from otarena import conjugate
from otarena.budgets import PerProfile
from otarena.dual import amortization
from otarena.dual.amortization import Amortization, Start

@dataclass(frozen=True)
class Optimizer:
    """Adam or AdamW (decoupled weight decay) with a constant or cosine learning rate.

    The cosine decays from ``lr`` to ``lr * cosine_final_fraction`` over the run (optax's
    ``cosine_decay_schedule``; w2ot's ``decay_steps`` is its ``num_train_iter``, one more
    than the last logged iteration, which is what the engine passes).
    """

    name: str = "adamw"  # adamw | adam (with coupled L2 when weight_decay > 0)
    lr: float = 5e-4
    b1: float = 0.5
    b2: float = 0.5
    weight_decay: float = 1e-4
    cosine_final_fraction: float | None = 1e-4  # None: constant learning rate

    def direction(self) -> optax.GradientTransformation:
        """The update before the learning rate: -lr(t) times this is the step."""
        adam = optax.scale_by_adam(b1=self.b1, b2=self.b2)
        if self.name == "adamw":  # optax.adamw: adam, then + wd * params, then * -lr
            return optax.chain(adam, optax.add_decayed_weights(self.weight_decay))
        if self.weight_decay:  # torch's Adam(weight_decay=...): L2 added to the gradient
            return optax.chain(optax.add_decayed_weights(self.weight_decay), adam)
        return adam

    def learning_rate(self, t, decay_steps):
        """The rate of 0-based step ``t`` (both may be traced)."""
        if self.cosine_final_fraction is None:
            return jnp.asarray(self.lr, jnp.float32)
        fraction = jnp.minimum(t, decay_steps) / decay_steps
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * fraction))
        alpha = self.cosine_final_fraction
        return self.lr * ((1 - alpha) * cosine + alpha)


@dataclass(frozen=True)
class Pretrain:
    """Fit the maps to the identity before training: E|map(x) - x|^2 on a fixed sampler.

    A step is taken, then the run stops if that step's (pre-step) loss was below the
    tolerance and at least ``min_steps`` steps preceded it: w2ot stops when ``i > 1000`` (so
    ``min_steps`` 1001), Korotin's ``train_identity_map`` whenever the loss is below 1e-3.
    """

    sampler: str = "uniform"  # uniform on [-scale, scale)^D | normal (std scale) | centered-cube: scale * U[-1/2, 1/2)^D
    scale: float = 5.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    tolerance: float = 1e-6
    min_steps: int = 1001
    sum_coordinates: bool = True  # Amos: |.|^2 summed over coordinates; Korotin: MSE
    amortizer_tolerance: float | None = None  # the H network's own tolerance (Korotin's UNet)


@dataclass(frozen=True)
class StopRule:
    """w2ot's early exit (``run_train.py``): at the logged iterations (the first and every
    ``every``-th) a run whose total loss on that iteration's batch is NaN or above
    ``bound`` in magnitude stops there; its parameters at that point are its result."""

    every: int = 1000
    bound: float = 1e5


@dataclass(frozen=True)
class BestIterate:
    """Korotin's notebooks: after iterations 1, 1 + every, 1 + 2 every, ... score both maps
    on ``size`` fresh points and keep the potential with the lowest forward L2-UVP and the
    conjugate network with the lowest inverse L2-UVP (their saved checkpoints)."""

    every: int = 100
    size: PerProfile[int] = 4096


@dataclass(frozen=True)
class DualSpec:
    potential: str  # a model name of otarena.models.networks
    amortizer: str | None  # None: no H
    amortization: str | Amortization  # a name of AMORTIZATIONS or a strategy
    # fine-tuning during training: a conjugate.SETTINGS name or a solver
    conjugate_solver: str | conjugate.Solver | None
    conjugate_start: str | Start = "amortizer"  # a name of STARTS or a start
    inverse_solver: str | conjugate.Solver | None = "lbfgs"  # refines H(y) for the inverse map
    amortizer_steps: int = 0  # 0: joint update; K: psi step then K H-only steps (Korotin MM)
    cycle_weight: float | None = None  # None: the dimension
    optimizer: Optimizer = Optimizer()
    amortizer_optimizer: Optimizer | None = None  # None: the same settings as psi's
    pretrain: Pretrain = Pretrain()
    iterations: Mapping[str, int] = field(default_factory=lambda: {
        "smoke": 100, "quick": 6000, "paper": 250_000})
    pretrain_steps: Mapping[str, int] = field(default_factory=lambda: {
        "smoke": 100, "quick": 2001, "paper": 10_001})
    eval_every: Mapping[str, int] = field(default_factory=lambda: {
        "smoke": 50, "quick": 500, "paper": 1000})
    batch_size: PerProfile[int] = 1024
    # Points of the evaluations during training (per profile); None: metrics' default.
    eval_size: Mapping[str, int] | None = None
    stop: StopRule | None = StopRule()  # None: never stop (Korotin's notebooks)
    best_iterate: BestIterate | None = None  # None: the final iterate is reported

    def __post_init__(self):
        if amortization.named(self.amortization).needs_solver and self.conjugate_solver is None:
            raise ValueError(f"{amortization.named(self.amortization).name} amortization "
                             "needs a conjugate solver")
        if self.amortizer is None and self.conjugate_solver is None:
            raise ValueError("without an amortizer the conjugate must be solved")
        amortization.start_named(self.conjugate_start)
        conjugate.named(self.conjugate_solver), conjugate.named(self.inverse_solver)

    def config(self) -> dict:
        """Everything that determines a run, as data (the conjugate solvers with their
        algorithm and settings, so a changed solver makes new run ids; a strategy by its
        name)."""
        config = asdict(self)
        config["amortization"] = amortization.named(self.amortization).name
        config["conjugate_start"] = amortization.start_named(self.conjugate_start).name
        config["conjugate_solver"] = conjugate.describe(conjugate.named(self.conjugate_solver))
        config["inverse_solver"] = conjugate.describe(conjugate.named(self.inverse_solver))
        for optional in ("eval_size", "amortizer_optimizer", "best_iterate"):
            if config[optional] is None:
                del config[optional]
        return config
