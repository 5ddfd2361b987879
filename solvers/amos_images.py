"""The Amos 2023 solver matrix on images: the eight "ConvNet" rows of the CelebA64 table.

Potential psi and amortization model H are both Amos' ConvNet potential
(``otarena/models/conv_potential.py``; x_hat = grad H(y)), H starting as a copy of psi
after identity pretraining. Rows: {cycle, objective} without fine-tuning and {cycle,
objective, regression} fine-tuned by L-BFGS or Adam, as for the HD matrix. Training as in
w2ot's ``image_benchmark`` config: AdamW (0.5, 0.5), weight decay 1e-4, learning rate
cosine from 1e-4 to 1e-8 over 50,001 iterations, batch 64 (4 at the smoke budget, for CPU
CI), cycle weight 1e4, identity pretraining with Adam 1e-4 on U[-1, 1]^D (at most 10,001
steps, stop below 1e-6 after 1000).
"""

from otarena import matrix
from otarena.dual import DualSpec, Optimizer, Pretrain, solver

OPTIMIZER = Optimizer("adamw", lr=1e-4, b1=0.5, b2=0.5, weight_decay=1e-4,
                      cosine_final_fraction=1e-4)
PRETRAIN = Pretrain(sampler="uniform", scale=1.0, lr=1e-4, weight_decay=0.0, tolerance=1e-6,
                    min_steps=1001, sum_coordinates=True)
ITERATIONS = {"smoke": 2, "quick": 1000, "paper": 50_000}
PRETRAIN_STEPS = {"smoke": 2, "quick": 1001, "paper": 10_001}
EVAL_EVERY = {"smoke": 2, "quick": 250, "paper": 1000}
BATCH = {"smoke": 4, "quick": 64, "paper": 64}  # smoke: a CPU in CI cannot afford 64
EVAL_SIZE = {"smoke": 4, "quick": 512, "paper": 4096}  # curve evaluations (4096 as the papers)
def spec(loss: str, conjugate: str | None) -> DualSpec:
    return DualSpec(potential="conv-potential", amortizer="conv-potential",
                    amortization=matrix.amortization(loss, conjugate), conjugate_solver=conjugate,
                    inverse_solver=conjugate or matrix.W2OT_DEFAULT_SOLVER, cycle_weight=1e4,
                    optimizer=OPTIMIZER, pretrain=PRETRAIN, iterations=ITERATIONS,
                    pretrain_steps=PRETRAIN_STEPS, eval_every=EVAL_EVERY, batch_size=BATCH,
                    eval_size=EVAL_SIZE)


def row(loss: str, conjugate: str | None):
    label = matrix.row_label(loss, conjugate)
    return solver(matrix.row_name("conv", loss, conjugate), spec(loss, conjugate), label=label,
                  description=f"Amos 2023: ConvNet image potential, {label}")


SOLVERS = [row(loss, conjugate) for loss, conjugate in matrix.PAPER_ROWS + matrix.EXTRA_ROWS]
