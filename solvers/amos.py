"""The Amos 2023 solver matrix: amortization loss x conjugate solver x potential model.

Rows of the HD tables (ICNN and MLP potentials, amortization model H(y) = y + MLP(y)):
{cycle, objective} without fine-tuning, and {cycle, objective, regression} fine-tuned by
L-BFGS or Adam. Training as in w2ot: AdamW (0.5, 0.5), weight decay 1e-4, learning rate
cosine from 5e-4 to 5e-8, batch 1024, identity pretraining on U[-5, 5]^D; "cycle" rows
without fine-tuning are W2GN (the cycle loss also trains psi), fine-tuned cycle rows train
H alone on the forward cycle.
"""

from otarena.dual import DualSpec, solver

LOSS_NAMES = {"cycle": "Cycle", "objective": "Objective", "regression": "Regression"}
SOLVER_NAMES = {None: "None", "lbfgs": "L-BFGS", "adam": "Adam"}


def row(potential: str, loss: str, conjugate: str | None):
    amortization = "cycle-finetune" if (loss == "cycle" and conjugate) else loss
    spec = DualSpec(potential=potential, amortizer="residual-mlp", amortization=amortization,
                    conjugate_solver=conjugate)
    name = "-".join([potential, loss] + ([conjugate] if conjugate else []))
    label = f"{LOSS_NAMES[loss]} / {SOLVER_NAMES[conjugate]}"
    return solver(name, spec, label=label,
                  description=f"Amos 2023: {potential.upper()} potential, {label}")


SOLVERS = [row(potential, loss, conjugate)
           for potential in ("icnn", "mlp")
           for loss, conjugate in [("cycle", None), ("objective", None),
                                   ("cycle", "lbfgs"), ("objective", "lbfgs"), ("regression", "lbfgs"),
                                   ("cycle", "adam"), ("objective", "adam"), ("regression", "adam")]]
