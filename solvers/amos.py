"""The Amos 2023 solver matrix on the HD pairs: amortization loss x conjugate solver x
potential model (ICNN, MLP); the rows are ``otarena.matrix``'s.

Amortization model H(y) = y + MLP(y). Training as in w2ot: AdamW (0.5, 0.5), weight decay
1e-4, learning rate cosine from 5e-4 to 5e-8, batch 1024, identity pretraining on
U[-5, 5]^D; "cycle" rows without fine-tuning are W2GN (the cycle loss also trains psi),
fine-tuned cycle rows train H alone on the forward cycle. A run stops as w2ot's does
(total loss NaN or above 1e5 at a logged iteration) and reports its final iterate. The
conjugate solver of a row also refines its inverse map at evaluation, as w2ot's
``push_inv`` does; rows without fine-tuning use w2ot's default there.
"""

from otarena import matrix
from otarena.dual import DualSpec, Optimizer, Pretrain, StopRule, solver

# w2ot's config/train.yaml and its HD benchmark settings
OPTIMIZER = Optimizer("adamw", lr=5e-4, b1=0.5, b2=0.5, weight_decay=1e-4,
                      cosine_final_fraction=1e-4)
PRETRAIN = Pretrain(sampler="uniform", scale=5.0, lr=1e-3, weight_decay=0.0, tolerance=1e-6,
                    min_steps=1001, sum_coordinates=True)
ITERATIONS = {"smoke": 100, "quick": 6000, "paper": 250_000}
PRETRAIN_STEPS = {"smoke": 100, "quick": 2001, "paper": 10_001}
EVAL_EVERY = {"smoke": 50, "quick": 500, "paper": 1000}
BATCH = 1024
STOP = StopRule(every=1000, bound=1e5)


def row(potential: str, loss: str, conjugate: str | None):
    spec = DualSpec(potential=potential, amortizer="residual-mlp",
                    amortization=matrix.amortization(loss, conjugate), conjugate_solver=conjugate,
                    inverse_solver=conjugate or matrix.W2OT_DEFAULT_SOLVER, optimizer=OPTIMIZER,
                    pretrain=PRETRAIN, iterations=ITERATIONS, pretrain_steps=PRETRAIN_STEPS,
                    eval_every=EVAL_EVERY, batch_size=BATCH, stop=STOP)
    label = matrix.row_label(loss, conjugate)
    return solver(matrix.row_name(potential, loss, conjugate), spec, label=label,
                  description=f"Amos 2023: {potential.upper()} potential, {label}")


SOLVERS = [row(potential, loss, conjugate) for potential in ("icnn", "mlp")
           for loss, conjugate in matrix.PAPER_ROWS + matrix.EXTRA_ROWS]
