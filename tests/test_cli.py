"""The command line end to end: run, report, list, data, errors."""

import json
import os
from pathlib import Path

import pytest

from tests.conftest import otarena


@pytest.mark.slow
def test_first_end_to_end_run(tmp_path):
    store, out = tmp_path / "results", tmp_path / "reports"
    args = ["run", "--pairs", "hd-2,hd-4,hd-8", "--solvers", "linear,identity",
            "--seeds", "0,1", "--budget", "smoke", "--results", str(store)]
    first = otarena(*args)
    assert "linear" in first.stdout and "hd-8" in first.stdout
    records = [json.loads(line) for line in (store / "records.jsonl").read_text().splitlines()]
    assert len(records) == 12
    assert len({r["run_id"] for r in records}) == 12
    r = records[0]
    for field in ("metrics", "timing", "device", "versions", "git", "budget", "solver_config",
                  "pair_provenance", "eval"):
        assert field in r, field
    assert set(r["metrics"]) == {"l2_uvp_fwd", "cos_fwd", "l2_uvp_inv", "cos_inv"}
    assert r["eval"]["size"] == 4096

    again = otarena(*args)  # every cell is done: nothing runs, nothing is appended
    assert "12 of 12 cells already in" in again.stdout
    assert len((store / "records.jsonl").read_text().splitlines()) == 12

    report = otarena("report", "--results", str(store), "--out", str(out))
    tex = (out / "hd_l2_uvp_fwd.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert "linear" in tex and "identity" in tex
    assert "## hd" in (out / "summary.md").read_text()
    assert str(out / "summary.md") in report.stdout
    first_bytes = tex
    otarena("report", "--results", str(store), "--out", str(out))
    assert (out / "hd_l2_uvp_fwd.tex").read_text() == first_bytes


def test_eval_size_is_part_of_the_run_id(tmp_path):
    store = tmp_path / "r"
    otarena("run", "--pairs", "hd-2", "--solvers", "identity", "--results", str(store),
            "--eval-size", "8192")
    otarena("run", "--pairs", "hd-2", "--solvers", "identity", "--results", str(store))
    sizes = sorted(json.loads(line)["eval"]["size"]
                   for line in (store / "records.jsonl").read_text().splitlines())
    assert sizes == [4096, 8192]


def test_list():
    pairs = otarena("list", "pairs").stdout
    assert "hd-2 " in pairs and "hd-128" in pairs and "hd-256" in pairs
    solvers = otarena("list", "solvers").stdout
    for name in ("linear", "constant", "identity"):
        assert name in solvers


@pytest.mark.parametrize("args, message", [
    (["run", "--pairs", "hd-3", "--solvers", "linear"], "unknown pair 'hd-3'"),
    (["run", "--pairs", "hd-2", "--solvers", "nope"], "unknown solver 'nope'"),
    (["run", "--pairs", "hd-2", "--solvers", "linear", "--budget", "huge"], "unknown budget 'huge'"),
    (["report", "--results", "/nonexistent/store"], "no result records"),
    (["data", "verify", "nonsense"], "unknown pair 'nonsense'"),
])
def test_user_mistakes_are_one_line(args, message):
    done = otarena(*args, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert message in done.stderr


def test_bad_flag_values_are_argparse_errors():
    done = otarena("run", "--pairs", "hd-2", "--solvers", "linear", "--seeds", "a-b", check=False)
    assert done.returncode == 2 and "bad seed list" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["run", "report", "list", "data"])
def test_every_command_has_help(command):
    assert "usage: otarena " + command in otarena(command, "--help").stdout


def test_data_path_and_verify():
    shown = Path(otarena("data", "path").stdout.strip())
    assert shown == Path(os.environ["OTARENA_DATA"]).resolve()
    verify = otarena("data", "verify", "mnist")
    assert "4 of 4 files usable" in verify.stdout
    verify = otarena("data", "verify", "hd-2,hd-8")
    assert "4 of 4 files usable" in verify.stdout and "8_v2.pt" in verify.stdout
    if not (Path(os.environ["OTARENA_DATA"]) / "w2-benchmark/Mix3toMix10/256_v1.pt").exists():
        missing = otarena("data", "verify", "hd-256", check=False)
        assert missing.returncode == 1 and "missing" in missing.stdout


@pytest.mark.slow
def test_neural_solvers_smoke_matrix(tmp_path):
    """Every kind of neural solver adapter in one command: two seeds, smoke budget, on hd-2.
    Each (solver, dimension) is one more compile of ~20-40 s on a CPU, so one row per kind:
    Korotin's maximin with its amortized conjugate ([MM]; [MMv2] is the same adapter with
    convex nets) and with the per-batch Adam conjugate ([MMv1]), and Amos' adapter with a
    conjugate solve. [W2] runs through the CLI in test_compilation; the training steps of
    every row, the Adam conjugate solves among them, are the golden tests'."""
    store = tmp_path / "results"
    solvers = ["MM", "MMv1", "icnn-objective-lbfgs-high-precision"]
    otarena("run", "--pairs", "hd-2", "--solvers", ",".join(solvers), "--seeds", "0,1",
            "--budget", "smoke", "--results", str(store), "--quiet")
    records = [json.loads(line) for line in (store / "records.jsonl").read_text().splitlines()]
    cells = {(r["pair"], r["solver"], r["seed"]) for r in records}
    assert len(records) == len(cells) == len(solvers) * 2
    for r in records:
        assert r["status"] in ("ok", "diverged")
        assert r["curve"] and r["iterations"] > 0
        assert r["timing"]["seconds_per_iteration"] > 0
