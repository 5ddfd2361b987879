"""Solvers learn: on hd-2 at the quick budget, W2 and icnn-regression-lbfgs (w2ot's gtol-0.1
L-BFGS; the high-precision setting costs several times more per step on a CPU, and its
step-for-step fidelity is tested in test_golden_w2ot) beat [L] by 4x.

The L-BFGS row is ``long`` (2-3 min of a CI core; ``make test-long``): its training step is
the golden tests', and ``make bench`` trains the same cell and checks it against the
committed record."""

import jax
import pytest

from otarena import metrics, pairs, solver
from otarena.budgets import Budget


@pytest.mark.slow
@pytest.mark.parametrize("name", ["W2", pytest.param("icnn-regression-lbfgs", marks=pytest.mark.long)])
def test_quick_budget_beats_a_quarter_of_linear(name):
    pair = pairs.load("hd-2")
    linear = solver.get("linear").fit(pair, None, Budget())
    linear_uvp = metrics.evaluate(pair, linear.forward, size=2**14)["l2_uvp_fwd"]
    fitted = solver.get(name).fit(pair, jax.random.key(0), Budget("quick"))
    uvp = metrics.evaluate(pair, fitted.forward, fitted.inverse, size=2**14)["l2_uvp_fwd"]
    assert not fitted.diverged
    assert uvp < linear_uvp / 4, (uvp, linear_uvp)
    # the training curve goes down
    assert fitted.curve[-1]["l2_uvp_fwd"] < fitted.curve[0]["l2_uvp_fwd"]
