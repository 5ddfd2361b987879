"""The fidelity verdict's band: what a reproduced cell may read, for each kind of paper cell."""

import pytest

from otarena.reporting.fidelity import band


def test_a_printed_zero_std_still_has_a_band():
    # Amos 2023 prints mlp-cycle hd-2 as "0.05 ± 0.00": a mean in [0.045, 0.055) and a std
    # below 0.005. 0.06 is within two such stds of such a mean; 0.08 is not.
    low, high = band([0.05, 0.0])
    assert low < 0.05 < high
    assert low <= 0.04 and 0.06 <= high
    assert not low <= 0.08 <= high
    assert (low, high) == pytest.approx((0.035, 0.065))


def test_a_std_cell_is_the_mean_within_two_stds_plus_rounding():
    low, high = band([0.26, 0.09])
    assert (low, high) == pytest.approx((0.26 - 0.195, 0.26 + 0.195))


def test_single_runs_get_a_quarter_or_a_tenth():
    assert band([14.1]) == pytest.approx((14.1 - 3.525, 14.1 + 3.525))
    assert band([0.1]) == pytest.approx((0.0, 0.2))


def test_a_paper_above_100_has_no_interval():
    assert band(">100") is None


# --- the table's lines -------------------------------------------------------------------

def _record(solver, pair, seed, uvp, profile="paper", eval_size=4096, iterations=250000):
    budget = {"profile": profile, "iterations": None, "eval_every": None}
    return {"schema": 1, "run_id": f"{solver}-{pair}-{seed}-{profile}-{eval_size}", "pair": pair,
            "reverse": False, "solver": solver, "solver_config": {"registry": solver},
            "seed": seed, "budget": budget, "eval": {"size": eval_size, "seed": 59297},
            "status": "ok", "solver_label": "", "iterations": iterations,
            "device": {"platform": "cpu", "kind": "cpu"},
            "metrics": {"l2_uvp_fwd": uvp, "cos_fwd": 0.99}}


def test_the_table_says_each_cells_budget_evaluation_sample_and_verdict():
    from otarena.reporting import fidelity, map_records
    records = [_record("icnn-objective-lbfgs", "hd-2", 0, 0.17),            # 0.26 +- 0.09
               _record("icnn-objective-lbfgs", "hd-2", 0, 0.50, eval_size=16384),
               _record("icnn-objective-lbfgs", "hd-2", 0, 2.5, profile="quick")]
    table = fidelity.rows(map_records.frame(records))
    got = {(r.points, r.budget): r.verdict for r in table.itertuples()}
    # a different evaluation sample is another configuration: never averaged with the first
    assert got == {("4096", "paper"): "inside", ("16384", "paper"): "outside",
                   ("4096", "quick"): "not at paper budget"}
    text = fidelity.markdown(map_records.frame(records))
    assert "| points |" in text and "At the paper budget: 2 cells, 1 inside the band." in text
    assert fidelity.latex(map_records.frame(records)).count(" & 16384 & ") == 1
