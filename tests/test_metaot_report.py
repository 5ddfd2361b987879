"""The Meta OT report from records: sections per instance set, failures, cost split, notes."""

import itertools

import pytest

from otarena.reporting import sinkhorn as rm
from otarena.reporting import sinkhorn_records as rr
from otarena.sinkhorn.family import PAPER_DRAWS

_ids = itertools.count()


def record(family, init, seconds, iterations, variant=None, status="ok", budget="quick",
           platform="cpu", cost=None, legacy=False):
    """A suite record with the fields the report reads (numbers chosen by each test)."""
    data = {"atoms": "784-point grid in [0,1]^2 (x 0->1, y 1->0)"} if legacy else \
        {"test_draws": PAPER_DRAWS}
    diverged = status == "training diverged"
    return {
        "suite": "metaot-sinkhorn", "run_id": f"r{next(_ids)}", "family": family,
        "initializer": init, "seed": 0 if init in ("meta-ot", "ott-meta") else None,
        "variant": None if legacy else variant, "status": status,
        "budget": {"profile": budget},
        "device": {"platform": platform, "kind": "cpu" if platform == "cpu" else "NVIDIA H200"},
        "plan": {"dtype": "float32" if budget != "paper" else "float64"}, "data": data,
        "metrics": {"thresholds": [] if diverged else [
            {"threshold": 1e-2, "seconds": seconds, "iterations": iterations, "batched": None}],
            "cost_model": cost},
        "curve": None if diverged else {"errors": [[0.5, 0.05, 0.005]] * len(seconds)},
        "training": {"diverged_at": 80, "config": {"iterations": 200, "dtype": "float32"}}
        if diverged else None,
    }


def cost(per_iteration, call, initialization, fixed):
    return {"seconds_per_iteration": per_iteration, "dispatch_seconds": call,
            "initialization_seconds": initialization, "fixed_seconds": fixed}


def test_records_of_the_two_mnist_grids_are_never_pooled(tmp_path):
    records = [record("mnist", "zeros", [2.0, 2.0], [20, 20], "1-D grid"),
               record("mnist", "meta-ot", [1.0, 1.0], [10, 10], "1-D grid"),
               record("mnist", "zeros", [4.0, 4.0], [40, 40], "2-D grid"),
               record("mnist", "meta-ot", [1.0, 1.0], [10, 10], "2-D grid")]
    assert rr.sections(records) == [("mnist", "1-D grid"), ("mnist", "2-D grid")]
    md = rm.markdown(records)
    assert "### MNIST (1-D grid; budget quick" in md and "### MNIST (2-D grid; budget quick" in md
    assert "t_zeros / t_Meta: **2.00**" in md and "t_zeros / t_Meta: **4.00**" in md
    tex = rm.table1_latex(records)
    assert r"\multicolumn{2}{c}{MNIST (1-D grid)} & \multicolumn{2}{c}{MNIST (2-D grid)}" in tex
    assert r"Improvement ($t_{\mathrm{zeros}}/t_{\mathrm{Meta}}$) & 2.00 & 1.96 & 4.00 & 1.96" in tex
    names = {p.name for p in rm.write(records, tmp_path)}
    assert {"metaot_errors_mnist-1-d-grid.png", "metaot_errors_mnist-2-d-grid.png"} <= names
    # records from before the grid option and the paper's draws are a set of their own
    old = record("mnist", "zeros", [3.0], [30], legacy=True)
    assert rr.instance_set(old) == "2-D grid, test draws of JAX 0.5+, not the paper's"
    assert len(rr.sections(records + [old])) == 3


def test_a_diverged_peer_keeps_its_row_printed_as_a_failure():
    records = [record("spherical", "zeros", [2.0], [2000]),
               record("spherical", "meta-ot", [1.0], [900]),
               record("spherical", "ott-meta", [], [], status="training diverged")]
    md = rm.markdown(records)
    assert "| Meta OT (OTT MetaInitializer) | diverged | – | – | – | – |" in md
    assert "(seed 0): training diverged (non-finite loss by iteration 80 of 200" in md
    tex = rm.table1_latex(records)
    assert r"Meta OT (OTT MetaInitializer) & \emph{diverged} & –" in tex
    # a solve that stopped without reaching the threshold is counted and said
    records[1]["metrics"]["thresholds"][0].update(seconds=[1.0, 3.0], iterations=[900, None])
    assert "| Meta OT | 2 ± 1 | 7.8e-2 ± 3.4e-2 | 900.0 ± 0.0 (1 not converged) |" \
        in rm.markdown(records)


def test_the_cost_split_states_wall_ratio_against_algorithm_only_ratio():
    records = [record("mnist", "zeros", [1.4e-3], [24], "1-D grid",
                      cost=cost(4.4e-5, 1.1e-4, 1.1e-4, 2.4e-4)),
               record("mnist", "meta-ot", [1.0e-3], [10], "1-D grid",
                      cost=cost(4.5e-5, 1.8e-4, 2.1e-4, 4.4e-4))]
    md = rm.markdown(records)
    assert "| Zeros | 1.4e-3 | 1.1e-4 | 0.0e0 | 4.4e-5 |" in md  # the split table stays
    algorithm = (24 * 4.4e-5) / (3e-5 + 10 * 4.5e-5)
    assert (f"Wall ratio vs algorithm-only ratio (t_zeros / t_Meta at 0.01): **1.40** vs "
            f"**{algorithm:.2f}**") in md
    assert "the fixed cost is 44% of a Meta OT solve" in md  # 4.4e-4 of 1.0e-3


def test_the_report_says_when_no_record_is_a_paper_budget_gpu_measurement():
    cpu = [record("mnist", "zeros", [2.0], [20], "1-D grid"),
           record("spherical", "zeros", [2.0], [2000], budget="smoke")]
    note = rr.provisional_note(cpu)
    assert note.startswith("These records are CPU / quick, CPU / smoke: there are no "
                           "paper-budget GPU records yet.")
    assert note in rm.markdown(cpu) and "no paper-budget GPU records" in rm.table1_latex(cpu)
    gpu = cpu + [record("mnist", "zeros", [1e-3], [20], "1-D grid", budget="paper",
                        platform="gpu")]
    assert rr.provisional_note(gpu) is None
    assert "no paper-budget GPU records" not in rm.markdown(gpu)


@pytest.mark.parametrize("label", ["1-D grid", None])
def test_section_titles_and_slugs(label):
    section = ("mnist", label)
    assert rr.section_title(section) == ("MNIST (1-D grid)" if label else "MNIST")
    assert rr.section_slug(section, [section]) == "mnist"
