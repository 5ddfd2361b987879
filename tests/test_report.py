"""Report tables: formatting, >100, best per column, determinism."""

import pytest

from otarena.reporting import family_tables, map_records, maps


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
    t = family_tables.table(map_records.frame(RECORDS), "hd", "l2_uvp_fwd")
    assert list(t.columns) == ["hd-2", "hd-4", "hd-16"]  # the family's order, not alphabetical
    assert t.loc["a", "hd-2"] == "2.0 ± 1.0"
    assert t.loc["b", "hd-2"] == "0.60 ± 0.10"
    assert t.loc["a", "hd-16"] == ">100"  # a mean above 100
    # a run stopped early keeps the metrics it stopped with, averaged in as w2ot does; the
    # cell says how many of its seeds were unstable
    assert t.loc["b", "hd-16"] == "4.0 (1 unstable)"
    assert t.loc["a:R", "hd-4"] == "2.0"
    assert t.loc["a", "hd-4"] == "–"
    assert t.loc["identity", "hd-16"] == "121.0"  # closed-form baselines print their value


def test_latex_bolds_the_best_and_is_deterministic():
    df = map_records.frame(RECORDS)
    tex = family_tables.latex(df, "hd")
    line_b = next(line for line in tex.splitlines() if line.startswith("b &"))
    assert r"\textbf{0.60 $\pm$ 0.10}" in line_b
    assert r"$>$100" in tex
    assert tex == family_tables.latex(map_records.frame(list(reversed(RECORDS))), "hd")


# --- records that are not seeds of one configuration are never averaged (probe 6.1-6.4, 4.23)

CPU, GPU = {"platform": "cpu", "kind": "cpu"}, {"platform": "gpu", "kind": "NVIDIA H200"}


def full(solver, pair, seed, uvp, profile="smoke", iterations=None, eval_every=None,
         eval_size=1024, device=CPU, config=None, status="ok"):
    """A record with every field the runner writes into the run identity, and the device."""
    budget = {"profile": profile, "iterations": iterations, "eval_every": eval_every}
    identity = {"schema": 1, "pair": pair, "reverse": False, "solver": solver,
                "solver_config": config or {"registry": solver}, "seed": seed, "budget": budget,
                "eval": {"size": eval_size, "seed": 59297}}
    return {**identity, "run_id": f"{seed}-{iterations}-{eval_size}-{profile}-{device['platform']}"
            f"-{solver}-{pair}-{sorted((config or {}).items())}", "status": status,
            "solver_label": "", "iterations": iterations or 100, "device": device,
            "metrics": {"l2_uvp_fwd": uvp, "cos_fwd": 0.9} if status != "failed" else {},
            "curve": [{"iteration": 100, "l2_uvp_fwd": uvp}]}


PROBE_6_1 = [full("W2", "hd-2", 0, 13.1),                         # the profile's own 100 its
             full("W2", "hd-2", 0, 5.42, iterations=400),          # a --iterations test
             full("W2", "hd-2", 1, 5.84, iterations=400),
             full("W2", "hd-2", 2, 3.0, iterations=400, device=GPU)]  # merged from a GPU


def test_family_tables_split_a_solver_by_configuration():
    t = family_tables.table(map_records.frame(PROBE_6_1), "hd", "l2_uvp_fwd")
    assert t.loc["W2 (smoke; cpu)", "hd-2"] == "13.1"
    assert t.loc["W2 (smoke, 400 it; cpu)", "hd-2"] == "5.6 ± 0.21"
    assert t.loc["W2 (smoke, 400 it; gpu NVIDIA H200)", "hd-2"] == "3.0"
    assert len(t) == 3  # nothing like the probe's "6.8 ± 3.8" over "4 seeds"


def test_family_tables_keep_profiles_and_evaluation_sizes_apart():
    records = [full("linear", "hd-2", 0, 14.4), full("linear", "hd-2", 1, 14.5),
               full("linear", "hd-2", 0, 14.5, profile="quick"),
               full("linear", "hd-2", 0, 14.6, eval_size=4096)]
    t = family_tables.table(map_records.frame(records), "hd", "l2_uvp_fwd")
    assert set(t.index) == {"linear (quick; 1024 points)", "linear (smoke; 1024 points)",
                            "linear (smoke; 4096 points)"}
    assert t.loc["linear (smoke; 1024 points)", "hd-2"] == "14.4 ± 0.05"


def test_the_suite_table_prefers_the_profiles_own_settings_and_says_so(tmp_path):
    written = {p.name: p for p in maps.write(PROBE_6_1, tmp_path, figures=False)}
    table = written["hd-baselines.tex"].read_text()
    assert r"{[W2]} & $\mathbf{13.1}$" in table
    assert "Device: cpu" in table
    summary = written["summary.md"].read_text()
    assert "| [W2] | 13.1 |" in summary
    assert "3 records with --iterations or --eval-every overrides left out" in summary


def test_the_suite_table_refuses_to_average_different_configurations(tmp_path):
    written = {p.name: p for p in maps.write(PROBE_6_1[1:], tmp_path, figures=False)}
    table = written["hd-baselines.tex"].read_text()
    assert "{[W2]} & mixed" in table and "not averaged" in table
    assert "Devices: cpu (1 cells), gpu NVIDIA H200 (1 cells)" in table
    comparison = written["hd-baselines_vs_paper.tex"].read_text()
    assert "mixed" in comparison and "5.6" not in comparison and "4.8" not in comparison
    summary = written["summary.md"].read_text()
    assert "[W2] on hd-2: 2 configurations, not averaged" in summary
    assert "smoke, 400 it; cpu: seeds 0, 1: 5.6 ± 0.21" in summary
    assert "smoke, 400 it; gpu NVIDIA H200: seed 2: 3.0" in summary


def test_a_user_solver_named_like_a_registry_solver_stays_out_of_its_row(tmp_path):
    shadow = {"source_sha256": "ab" * 32}
    records = [full("W2", "hd-2", 0, 5.42, profile="quick"), full("W2", "hd-2", 1, 5.84, profile="quick"),
               full("W2", "hd-2", 0, 32.2, profile="quick", config=shadow),
               full("W2", "hd-2", 1, 32.2, profile="quick", config=shadow)]
    written = {p.name: p for p in maps.write(records, tmp_path, figures=False)}
    assert r"{[W2]} & $\mathbf{5.6 \pm 0.21}$" in written["hd-baselines.tex"].read_text()
    summary = written["summary.md"].read_text()
    assert "2 records of a solver named W2 from a user's file left out" in summary
    t = family_tables.table(map_records.frame(records), "hd", "l2_uvp_fwd")
    assert t.loc["W2 (file abababab)", "hd-2"] == "32.2 ± 0.0"


def test_failed_cells_say_so():
    records = [full("linear", "hd-2", 0, None, status="failed"), full("identity", "hd-2", 0, 32.2)]
    t = family_tables.table(map_records.frame(records), "hd", "l2_uvp_fwd")
    assert t.loc["linear", "hd-2"] == "failed"


def test_tables_name_the_device():
    tex = family_tables.latex(map_records.frame(PROBE_6_1), "hd")
    assert "devices: cpu, gpu NVIDIA H200" in tex
    assert "Devices: cpu (3 records), gpu NVIDIA H200 (1 records)" in family_tables.markdown(map_records.frame(PROBE_6_1))


def test_an_object_that_is_not_a_result_record_is_left_out(capsys):
    df = map_records.frame([{"run_id": "abc"}, *RECORDS])  # valid JSON with a run id, nothing else
    assert len(df) == len(RECORDS)
    assert "record abc has no pair" in capsys.readouterr().err


def test_runtime_table_is_steady_state_with_compile_apart():
    from otarena.reporting import runtime as runtime_report

    timed = dict(rec("W2", "hd-2", 0, 0.5), timing={
        "compile_seconds": 20.0, "pretrain_seconds": 3.0, "train_seconds": 10.0,
        "iterations_timed": 1000, "seconds_per_iteration": 0.01,
        "seconds_per_iteration_per_seed": 0.01, "seeds_in_program": 1, "wall_seconds": 40.0},
        device={"platform": "cpu", "kind": "cpu"})
    baseline = dict(rec("linear", "hd-2", 0, 14.0, iterations=0), timing={"wall_seconds": 1.0})
    [line] = runtime_report.lines([timed, baseline])  # the baseline trains nothing
    assert line[:6] == ("W2", "hd-2", "cpu", "smoke", 1, 1000)
    assert line[6:9] == (20.0, 3.0, 10.0)
    assert line[9] == pytest.approx(10.0)  # ms per iteration: train seconds only, not wall
    assert line[11] == pytest.approx(250_000 * 0.01 / 3600)
    assert "compile time apart" in runtime_report.markdown([timed])
