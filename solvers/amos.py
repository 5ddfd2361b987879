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
from otarena.dual import DualSpec, solver


def row(potential: str, loss: str, conjugate: str | None):
    spec = DualSpec(potential=potential, amortizer="residual-mlp",
                    amortization=matrix.amortization(loss, conjugate), conjugate_solver=conjugate,
                    inverse_solver=conjugate or matrix.W2OT_DEFAULT_SOLVER)
    label = matrix.row_label(loss, conjugate)
    return solver(matrix.row_name(potential, loss, conjugate), spec, label=label,
                  description=f"Amos 2023: {potential.upper()} potential, {label}")


SOLVERS = [row(potential, loss, conjugate) for potential in ("icnn", "mlp")
           for loss, conjugate in matrix.PAPER_ROWS + matrix.EXTRA_ROWS]
