"""The rows of Amos 2023's solver matrix, in the paper's order: one table for the HD and
image solvers, the suites and the reports.

A row is (amortization loss, conjugate solver setting of ``otarena.conjugate.SETTINGS``).
The paper's "L-BFGS" rows are w2ot's default configuration ``lbfgs_high_precision``: the
README's sweep does not override ``conjugate_solver`` and the analysis script labels runs
without an override "L-BFGS". w2ot's other configuration (``lbfgs``, gtol 0.1, parallel
line search) is kept as extra rows to compare.
"""

from __future__ import annotations

POTENTIALS = ("icnn", "mlp", "conv")  # the HD rows' two potentials and the image rows'
LOSS_NAMES = {"cycle": "Cycle", "objective": "Objective", "regression": "Regression"}
SOLVER_NAMES = {None: "None", "lbfgs": "L-BFGS (gtol 0.1)", "lbfgs-high-precision": "L-BFGS",
                "adam": "Adam"}
W2OT_DEFAULT_SOLVER = "lbfgs-high-precision"  # w2ot's config/train.yaml
PAPER_ROWS: list[tuple[str, str | None]] = [
    ("cycle", None), ("objective", None),
    ("cycle", "lbfgs-high-precision"), ("objective", "lbfgs-high-precision"),
    ("regression", "lbfgs-high-precision"),
    ("cycle", "adam"), ("objective", "adam"), ("regression", "adam")]
EXTRA_ROWS: list[tuple[str, str | None]] = [
    ("cycle", "lbfgs"), ("objective", "lbfgs"), ("regression", "lbfgs")]


def row_name(potential: str, loss: str, conjugate: str | None) -> str:
    """e.g. ``icnn-regression-lbfgs-high-precision``, ``mlp-objective``, ``conv-cycle-adam``."""
    return "-".join([potential, loss] + ([conjugate] if conjugate else []))


def row_label(loss: str, conjugate: str | None) -> str:
    """The paper's row label: amortization loss / conjugate solver."""
    return f"{LOSS_NAMES[loss]} / {SOLVER_NAMES[conjugate]}"


def amortization(loss: str, conjugate: str | None) -> str:
    """The engine's amortization: a fine-tuned cycle row trains H alone (w2gn_finetune)."""
    return "cycle-finetune" if (loss == "cycle" and conjugate) else loss


def paper_row_names(potential: str) -> tuple[str, ...]:
    return tuple(row_name(potential, loss, c) for loss, c in PAPER_ROWS)
