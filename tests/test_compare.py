"""`otarena compare` on solver files outside the repository, in PyTorch and from OTT-JAX."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from otarena import metrics, pairs, solver
from otarena.budgets import Budget
from otarena.plugins import repo_root

TORCH_SOLVER = Path(__file__).with_name("example_torch_solver.py")


def compare(*args):
    return subprocess.run([sys.executable, "-m", "otarena.cli", "compare", *args],
                          capture_output=True, text=True, cwd=repo_root(), env=os.environ.copy())


def test_compare_a_pytorch_solver_from_outside_the_repository(tmp_path):
    outside = tmp_path / "elsewhere" / "my_solver.py"
    outside.parent.mkdir()
    shutil.copy(TORCH_SOLVER, outside)
    store, out = tmp_path / "results", tmp_path / "out"
    done = compare(str(outside), "--pairs", "hd-2,hd-4", "--against", "linear,identity",
                   "--results", str(store), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    table = (out / "comparison.md").read_text()
    assert table.index("torch-gaussian") < table.index("linear")  # the user's row first
    assert (out / "comparison.png").stat().st_size > 0 and r"\toprule" in (out / "comparison.tex").read_text()
    records = [json.loads(line) for line in (store / "records.jsonl").read_text().splitlines()]
    mine = [r for r in records if r["solver"] == "torch-gaussian"]
    assert len(mine) == 2 and len(records) == 6
    # a sample-based Gaussian map is as good as the closed-form linear baseline
    linear = {r["pair"]: r["metrics"]["l2_uvp_fwd"] for r in records if r["solver"] == "linear"}
    for r in mine:
        assert abs(r["metrics"]["l2_uvp_fwd"] - linear[r["pair"]]) < 1.5
        assert r["solver_config"]["source_sha256"]

    # editing the file makes new cells; the baselines are reused
    outside.write_text(outside.read_text() + "\n# edited\n")
    again = compare(str(outside), "--pairs", "hd-2", "--against", "linear", "--results",
                    str(store), "--out", str(out), "--quiet")
    assert again.returncode == 0, again.stderr
    assert len((store / "records.jsonl").read_text().splitlines()) == 7


def test_compare_rejects_a_name_clash(tmp_path):
    clash = tmp_path / "clash.py"
    clash.write_text("from otarena.solver import Solver, Fitted\n"
                     "SOLVERS = [Solver('linear', lambda p, k, b: Fitted(lambda x: x), {})]\n")
    done = compare(str(clash), "--pairs", "hd-2", "--against", "linear",
                   "--results", str(tmp_path / "r"))
    assert done.returncode == 2 and "rename the solver" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_file_without_solvers_is_one_line(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    done = compare(str(empty), "--pairs", "hd-2", "--against", "linear")
    assert done.returncode == 2 and "must define SOLVERS" in done.stderr


@pytest.mark.long  # OTT's W2NeuralDual and its jaxopt conjugate solve compile for over a minute
def test_ott_w2neuraldual_peer_trains_through_the_adapter():
    pair = pairs.load("hd-2")
    fitted = solver.get("ott-w2neuraldual").fit(pair, jax.random.key(0), Budget("smoke", iterations=3))
    scores = metrics.evaluate(pair, fitted.forward, fitted.inverse, size=4096)
    assert set(scores) == {"l2_uvp_fwd", "cos_fwd", "l2_uvp_inv", "cos_inv"}
    assert fitted.iterations == 3
