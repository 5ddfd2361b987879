"""Report tables: formatting, >100, best per column, determinism."""

from otarena import report


def rec(solver, pair, seed, uvp, status="ok", reverse=False, budget="smoke", iterations=10):
    return {"run_id": f"{solver}{pair}{seed}{reverse}", "pair": pair, "reverse": reverse,
            "solver": solver, "solver_label": "", "seed": seed, "budget": {"profile": budget},
            "iterations": iterations, "eval": {"size": 4096}, "status": status,
            # a reversed run's P -> Q number is its inverse map's
            "metrics": {"l2_uvp_inv" if reverse else "l2_uvp_fwd": uvp, "cos_fwd": 0.9}}


RECORDS = [
    rec("a", "hd-2", 0, 1.0), rec("a", "hd-2", 1, 3.0),
    rec("b", "hd-2", 0, 0.5), rec("b", "hd-2", 1, 0.7),
    rec("a", "hd-16", 0, 250.0), rec("b", "hd-16", 0, 4.0, status="diverged"),
    rec("a", "hd-4", 0, 2.0, reverse=True),
    rec("identity", "hd-16", 0, 121.0, iterations=0),
]


def test_table_cells():
    t = report.table(report.frame(RECORDS), "hd", "l2_uvp_fwd")
    assert list(t.columns) == ["hd-2", "hd-4", "hd-16"]  # the family's order, not alphabetical
    assert t.loc["a", "hd-2"] == "2.0 ± 1.0"
    assert t.loc["b", "hd-2"] == "0.60 ± 0.10"
    assert t.loc["a", "hd-16"] == ">100"  # a mean above 100
    assert t.loc["b", "hd-16"] == ">100"  # a diverged run, whatever its last evaluation
    assert t.loc["a:R", "hd-4"] == "2.0"
    assert t.loc["a", "hd-4"] == "–"
    assert t.loc["identity", "hd-16"] == "121.0"  # closed-form baselines print their value


def test_latex_bolds_the_best_and_is_deterministic():
    df = report.frame(RECORDS)
    tex = report.latex(df, "hd")
    line_b = next(line for line in tex.splitlines() if line.startswith("b &"))
    assert r"\textbf{0.60 $\pm$ 0.10}" in line_b
    assert r"$>$100" in tex
    assert tex == report.latex(report.frame(list(reversed(RECORDS))), "hd")
