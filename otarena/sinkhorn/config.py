"""What determines a Sinkhorn cell besides its family and budget: the initializer names,
the solver settings every record carries, and the training configuration of a learned
initializer (hashed into its model's cache key and into the cell's run id).

Light on purpose (no OTT-JAX, no flax): run ids and reports need it, not the solves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from otarena.sinkhorn.family import Plan, ProblemFamily
from otarena.store import run_id

SUITE = "metaot-sinkhorn"  # the suite of the records (their "suite" field)
INITIALIZERS = ("zeros", "gaussian", "meta-ot", "ott-meta")
LEARNED = {"meta-ot": "otarena", "ott-meta": "ott"}  # initializer -> trainer
LABELS = {"zeros": "Zeros", "gaussian": "Gaussian", "meta-ot": "Meta OT",
          "ott-meta": "Meta OT (OTT MetaInitializer)"}
INNER_ITERATIONS = 10  # error checked every 10 iterations, as in the paper
MAX_ITERATIONS = 100_000
TRAINERS = ("otarena", "ott")  # our scan loop, or OTT-JAX's MetaInitializer.update
FLOATS = ("float32", "float64")


def sinkhorn_settings(family: ProblemFamily, plan: Plan) -> dict:
    return {"solver": "ott.solvers.linear.sinkhorn.Sinkhorn", "lse_mode": True,
            "inner_iterations": INNER_ITERATIONS, "max_iterations": MAX_ITERATIONS,
            "norm_error": 1, "error": "L1 marginal error of the coupling's column sums "
            "against b after each full iteration (its row sums match a exactly)",
            "geometry": "ott Geometry on the dense cost matrix, computed once per family",
            "cost": family.cost_name, "epsilon": family.epsilon, "dtype": plan.dtype}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model (hashed into its artifact key)."""

    family: str
    family_provenance: dict  # data files and their sha256: a different grid is a different model
    iterations: int = 50_000
    batch: int = 128
    hidden: int = 1024
    layers: int = 3
    learning_rate: float = 1e-3
    clip_norm: float = 1.0
    seed: int = 0
    dtype: str = "float64"  # the paper trains and solves in float64 ...
    param_dtype: str = "float32"  # ... with float32 parameters (flax's default param_dtype)
    trainer: str = "otarena"

    def __post_init__(self):
        if self.iterations < 1 or self.batch < 1:
            raise ValueError(f"iterations and batch must be positive: {self}")
        if self.trainer not in TRAINERS:
            raise ValueError(f"unknown Meta OT trainer {self.trainer!r}; known: {TRAINERS}")
        if self.dtype not in FLOATS or self.param_dtype not in FLOATS:
            raise ValueError(f"dtype and param_dtype must be one of {FLOATS}: {self}")

    def key(self) -> str:
        return f"metaot-{self.family}-{self.trainer}-{run_id(asdict(self))}"
