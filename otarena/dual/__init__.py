"""The training engine of the dual-potential solvers (Amos 2023 and Korotin et al. 2021).

- :mod:`~otarena.dual.spec`: what configures a solver (:class:`DualSpec`, optimizers,
  pretraining, stop rule, reported iterate);
- :mod:`~otarena.dual.amortization`: amortization strategies and conjugate starts;
- :mod:`~otarena.dual.engine`: the losses, one training iteration, pretraining, evaluation;
- :mod:`~otarena.dual.programs`: the compiled programs over them;
- :mod:`~otarena.dual.train`: the training loop with checkpoints, and :func:`solver`.
"""

from otarena.dual.amortization import AMORTIZATIONS, STARTS
from otarena.dual.engine import Engine, engine_for
from otarena.dual.spec import BestIterate, DualSpec, Optimizer, Pretrain, StopRule
from otarena.dual.train import solver, train

__all__ = ["AMORTIZATIONS", "STARTS", "BestIterate", "DualSpec", "Engine", "Optimizer",
           "Pretrain", "StopRule", "engine_for", "solver", "train"]
