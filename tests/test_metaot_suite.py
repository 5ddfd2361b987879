"""The metaot-sinkhorn suite end to end: run_suite, records, CLI, reports, acceptance."""

import json
import os

import pytest

from otarena import runner
from otarena.budgets import Budget
from otarena.reporting import sinkhorn as sinkhorn_report
from otarena.reporting import sinkhorn_records
from otarena.sinkhorn import family as sinkhorn_family
from otarena.sinkhorn import task as sinkhorn_task
from otarena.store import Store, run_id
from tests.conftest import otarena


@pytest.mark.long
def test_meta_ot_needs_fewer_sinkhorn_iterations_than_zeros_at_quick_budget(tmp_path):
    """Acceptance: the quick MNIST budget, the 10 MNIST test pairs, error 1e-2 (``long``: 4 min
    of a CI core; that the model learns is test_metaot_train's, at a smaller size)."""
    store = Store(tmp_path / "results")
    todo = sinkhorn_task.cells(["mnist"], ["zeros", "meta-ot"], [0], Budget("quick"),
                               overrides={"thresholds": (1e-2,), "repeats": 1},
                               artifacts=tmp_path / "artifacts")
    records = runner.run(todo, store)
    by_init = {r["initializer"]: r for r in records}
    zeros, meta = (by_init[k]["metrics"]["thresholds"][0] for k in ("zeros", "meta-ot"))
    assert len(zeros["iterations"]) == len(meta["iterations"]) == 10
    assert all(zeros["converged"]) and all(meta["converged"])
    ratio = zeros["iterations_mean"] / meta["iterations_mean"]
    print(f"MNIST quick budget: iterations to 1e-2, zeros {zeros['iterations_mean']:.1f} / "
          f"Meta OT {meta['iterations_mean']:.1f} = {ratio:.2f}")
    assert meta["iterations_mean"] < zeros["iterations_mean"]
    assert by_init["meta-ot"]["training"]["config"]["iterations"] == 500


@pytest.mark.slow
def test_cli_run_records_and_report(tmp_path):
    results, out, artifacts = tmp_path / "results", tmp_path / "reports", tmp_path / "artifacts"
    args = ["metaot", "run", "--budget", "smoke", "--families", "mnist", "--results", str(results),
            "--artifacts", str(artifacts)]
    first = otarena(*args)
    assert "t_zeros/t_Meta" in first.stdout
    lines = (results / "metaot-sinkhorn.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert sorted(r["solver"] for r in records) == ["gaussian", "meta-ot", "ott-meta", "zeros"]
    r = next(r for r in records if r["solver"] == "meta-ot")
    for field in ("pair", "family", "solver", "budget", "device", "versions", "git", "data",
                  "timing_method", "sinkhorn", "metrics", "curve", "training", "test_instances"):
        assert field in r, field
    assert r["pair"] == "mnist" and r["budget"]["profile"] == "smoke"
    assert r["family_options"] == {"grid": "1d"} and r["variant"] == "1-D grid"
    assert "partitionable=False" in r["test_instances"]["prng"]
    assert r["test_instances"]["indices_a"][:2] == [8924, 8830]
    assert "ott-jax" in r["versions"] and r["data"]["files"][0].startswith("mnist/")
    assert "dead_code_guard" in r["timing_method"]
    assert r["metrics"]["prediction_seconds"]["mean"] > 0
    assert r["metrics"]["cost_model"]["iterations"] == [10, 20]
    assert len(r["curve"]["errors"]) == 3 and len(r["curve"]["errors"][0]) == 25

    again = otarena(*args)  # everything done: skipped, and no model is retrained
    assert "4 of 4 cells already in" in again.stdout
    assert len((results / "metaot-sinkhorn.jsonl").read_text().splitlines()) == 4
    assert len(list(artifacts.glob("metaot-mnist-*/params.msgpack"))) == 2  # ours and OTT's

    # the 2-D grid is another instance set: new records beside the 1-D ones, never in their place
    two = otarena("metaot", "run", "--budget", "smoke", "--families", "mnist", "--mnist-grid", "2d",
                  "--initializers", "zeros", "--results", str(results), "--artifacts", str(artifacts))
    assert "skipped" not in two.stdout
    grids = [json.loads(line)["family_options"] for line in
             (results / "metaot-sinkhorn.jsonl").read_text().splitlines()]
    assert grids.count({"grid": "2d"}) == 1 and grids.count({"grid": "1d"}) == 4

    # the spherical family in the same store (smoke: one instance to 1e-1)
    sph = otarena("metaot", "run", "--budget", "smoke", "--families", "spherical",
                  "--initializers", "zeros,meta-ot", "--results", str(results),
                  "--artifacts", str(artifacts))
    assert "world/pop-15min.npy" in sph.stdout
    records = [json.loads(line) for line in
               (results / "metaot-sinkhorn.jsonl").read_text().splitlines()]
    spherical = [r for r in records if r["family"] == "spherical"]
    assert {r["solver"] for r in spherical} == {"zeros", "meta-ot"}
    for r in spherical:
        grid = r["data"]["population_grid"]
        assert grid["file"] == "world/pop-15min.npy" and "unadjusted" in grid["variant"]
        assert r["status"] == "ok" and r["sinkhorn"]["epsilon"] == 1e-3

    # `otarena report` handles a store that mixes HD records and suite records
    otarena("run", "--pairs", "hd-2", "--solvers", "identity", "--results", str(results))
    shown = otarena("report", "--results", str(results), "--out", str(out))
    assert "metaot_table1.tex" in shown.stdout and "summary.md" in shown.stdout
    tex = (out / "metaot_table1.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and "GP100" in tex
    assert r"4.5\cdot10^{-3}" in tex  # the paper's zeros time on MNIST, side by side
    assert "pop-15min.npy (unadjusted)" in tex  # which population grid was used
    for section in ("mnist-1-d-grid", "mnist-2-d-grid", "spherical"):  # a figure per section
        assert (out / f"metaot_errors_{section}.png").stat().st_size > 0
    md = (out / "metaot.md").read_text()
    assert "t_zeros / t_Meta" in md and "### Spherical" in md
    assert "### MNIST (1-D grid;" in md and "### MNIST (2-D grid;" in md
    assert "These records are CPU / smoke" in md and "Wall ratio vs algorithm-only ratio" in md
    assert "Where the time of a solve to 0.01 goes" in md and "algorithm's work only" in tex
    report_again = otarena("metaot", "report", "--results", str(results), "--out", str(out))
    assert str(out / "metaot.md") in report_again.stdout
    assert (out / "metaot_table1.tex").read_text() == tex


@pytest.mark.slow
def test_meta_ot_cells_go_through_the_executor_path(tmp_path):
    """The job path for Sinkhorn cells: one array task per cell, each rebuilt from its task
    kind and spec in its own process, records in the shared store."""
    results, jobs = tmp_path / "results", tmp_path / "jobs"
    done = otarena("run", "--suite", "metaot-sinkhorn", "--pairs", "mnist", "--solvers",
                   "zeros,meta-ot", "--executor", "submitit-local", "--wait", "--jobs-dir",
                   str(jobs), "--results", str(results), "--artifacts", str(tmp_path / "art"),
                   "--iterations", "10", "--test-instances", "1", "--thresholds", "1e-1")
    assert "submitted 2 array tasks for 2 cells" in done.stdout
    records = Store(results).records()
    assert sorted(r["solver"] for r in records) == ["meta-ot", "zeros"]
    assert all(r["status"] == "ok" and r["suite"] == "metaot-sinkhorn" for r in records)
    assert len((results / "metaot-sinkhorn.jsonl").read_text().splitlines()) == 2
    assert len(list(jobs.glob("*_log.out"))) == 2  # separate job processes
    assert "t_zeros/t_Meta" in done.stdout  # the table, from the store, after --wait


def test_flags_of_the_other_task_are_refused(tmp_path, capsys):
    from otarena.cli import main

    assert main(["run", "--suite", "metaot-sinkhorn", "--vmap-seeds",
                 "--results", str(tmp_path)]) == 2
    assert "--vmap-seeds applies to map cells only" in capsys.readouterr().err
    assert main(["run", "--pairs", "hd-2", "--solvers", "linear", "--thresholds", "1e-2",
                 "--results", str(tmp_path)]) == 2
    assert "--thresholds applies to Sinkhorn cells only" in capsys.readouterr().err


def test_the_grid_is_part_of_a_records_identity_given_or_defaulted():
    def rid(**options):
        family = sinkhorn_family.load_family("mnist", **options)
        plan = sinkhorn_family.plan_for(Budget("smoke"), "mnist")
        return run_id(sinkhorn_task.identity(family, "zeros", None, Budget("smoke"), plan, None))

    assert rid() == rid(grid="1d") != rid(grid="2d")


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    from otarena.cli import main

    def fails(*args):
        assert main(list(args)) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        return err

    assert "unknown family 'cifar'" in fails("metaot", "run", "--families", "cifar",
                                             "--results", str(tmp_path))
    assert "unknown initializer 'ones'" in fails("metaot", "run", "--initializers", "ones",
                                                 "--results", str(tmp_path))
    assert "unknown budget 'huge'" in fails("metaot", "run", "--budget", "huge",
                                            "--results", str(tmp_path))
    assert "no metaot-sinkhorn records" in fails("metaot", "report",
                                                 "--results", str(tmp_path / "none"))
    assert "unknown MNIST grid '3d'" in fails("metaot", "run", "--mnist-grid", "3d",
                                              "--results", str(tmp_path))


def test_paper_values_are_the_papers():
    paper = sinkhorn_records.paper()
    s = paper["seconds"]
    assert s["mnist"]["zeros"][1e-2] == (4.5e-3, 1.5e-3)
    assert s["spherical"]["meta-ot"][1e-2] == (7.8e-2, 3.4e-2)
    # the published improvements are the ratios of the published means
    for family, published in paper["ratio"].items():
        assert round(s[family]["zeros"][1e-2][0] / s[family]["meta-ot"][1e-2][0], 1) == \
            round(published, 1)


@pytest.mark.gpu
@pytest.mark.long
def test_paper_budget_table1_on_a_gpu(tmp_path):
    """Table 1 at the paper's budget (GPU session): Meta OT beats zeros on both families."""
    todo = sinkhorn_task.cells(["mnist", "spherical"], sinkhorn_task.INITIALIZERS, [0],
                               Budget("paper"), artifacts=os.environ.get(
                                   "OTARENA_ARTIFACTS", tmp_path / "art"))
    records = runner.run(todo, Store(tmp_path))
    cells = sinkhorn_records.summary(sinkhorn_records.frame(records), 1e-2)
    for family in ("mnist", "spherical"):
        assert sinkhorn_records.ratio(cells[family]) > 1.0
    print(sinkhorn_report.markdown(records))
