"""The matrix at scale: suites, resumable runs (SIGKILL), checkpoints, the SLURM path."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from otarena import matrix, pairs, runtime, suites
from otarena.budgets import Budget
from otarena.dual import DualSpec, train
from otarena.plugins import repo_root
from otarena.store import Store

SMALL = ["--pairs", "hd-2", "--solvers", "W2,linear", "--seeds", "0,1", "--budget", "smoke",
         "--iterations", "120", "--eval-every", "20", "--quiet"]


def command(store, *extra):
    return [sys.executable, "-m", "otarena.cli", "run", *SMALL, "--results", str(store), *extra]


def environment():
    return {**os.environ, runtime.CHECKPOINT_SECONDS_ENV: "0"}  # checkpoint after every chunk


def lines_of(store):
    path = Path(store) / "records.jsonl"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(command(reference), check=True, env=environment(), cwd=repo_root())
    rng = random.Random(1234)
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(command(killed), env=environment(), cwd=repo_root(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = (len(lines_of(killed)), len(list((killed / ".checkpoints").glob("*.pkl"))))
        deadline = time.monotonic() + 120
        # wait for progress (a new checkpoint or record), then kill at a random moment
        while time.monotonic() < deadline and proc.poll() is None:
            now = (len(lines_of(killed)), len(list((killed / ".checkpoints").glob("*.pkl"))))
            if now != before:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2
    subprocess.run(command(killed), check=True, env=environment(), cwd=repo_root())

    got = [json.loads(line) for line in lines_of(killed)]
    want = {r["run_id"]: r for r in Store(reference).records()}
    assert sorted(r["run_id"] for r in got) == sorted(want)  # one record per cell, no duplicate
    for r in got:
        assert r["metrics"] == want[r["run_id"]]["metrics"], r["solver"]
        assert [p["l2_uvp_fwd"] for p in r["curve"]] == \
            [p["l2_uvp_fwd"] for p in want[r["run_id"]]["curve"]]


class Interrupt(Exception):
    pass


def test_training_resumes_from_its_checkpoint_with_the_same_result(tmp_path):
    spec = DualSpec(potential="icnn", amortizer="residual-mlp", amortization="objective",
                    conjugate_solver="lbfgs", iterations={"smoke": 60},
                    pretrain_steps={"smoke": 10}, eval_every={"smoke": 20})
    pair, keys, budget = pairs.load("hd-2"), jax.random.key(3)[None], Budget("smoke")
    whole = train(pair, spec, keys, budget)[0]

    def stop_after_40(done, planned):
        if done == 40:
            raise Interrupt

    stem = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        with runtime.running(runtime.RunContext(stem, 0.0, stop_after_40)):
            train(pair, spec, keys, budget)
    assert len(list(tmp_path.glob("ckpt-*.pkl"))) == 1
    seen = []
    with runtime.running(runtime.RunContext(stem, 0.0, lambda d, p: seen.append(d))):
        resumed = train(pair, spec, keys, budget)[0]
    assert seen == [60]  # only the last chunk was trained again
    assert [p["l2_uvp_fwd"] for p in resumed.curve] == [p["l2_uvp_fwd"] for p in whole.curve]
    x = pair.sample_source(jax.random.key(0), 32)
    np.testing.assert_array_equal(np.asarray(resumed.forward(x)), np.asarray(whole.forward(x)))


def test_a_checkpoint_of_another_configuration_is_ignored(tmp_path):
    path = tmp_path / "x.pkl"
    runtime.save_checkpoint(path, {"signature": "abc", "done": 1})
    assert runtime.load_checkpoint(path, "abc")["done"] == 1
    assert runtime.load_checkpoint(path, "other") is None
    path.write_bytes(b"garbage")
    assert runtime.load_checkpoint(path, "abc") is None


@pytest.mark.slow
def test_slurm_path_through_submitit_local_executor(tmp_path):
    store = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "otarena.cli", "run", "--pairs", "hd-2", "--solvers",
         "linear,identity", "--seeds", "0,1", "--results", str(store), "--executor",
         "submitit-local", "--wait", "--jobs-dir", str(tmp_path / "jobs")],
        capture_output=True, text=True, cwd=repo_root(), env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    assert "submitted 4 array tasks" in done.stdout
    records = Store(store).records()
    assert len(records) == 4 and len(lines_of(store)) == 4
    hosts = {r["device"]["host"] for r in records}
    assert hosts  # every record says where it ran
    assert len(list((tmp_path / "jobs").glob("*_log.out"))) == 4  # separate job processes


def test_suites_cover_the_paper_tables():
    hd_icnn = suites.get("hd-icnn")
    assert hd_icnn.size("paper") == 8 * 9 * 10  # 8 Amos rows and the OTT peer
    assert set(hd_icnn.solvers) == set(matrix.paper_row_names("icnn")) | {"ott-w2neuraldual"}
    baselines = suites.get("hd-baselines")
    assert "MMv1" in baselines.solvers and set(baselines.reversed_solvers) == {"W2", "MMv2", "MM"}
    from otarena import solver
    for suite in suites.SUITES.values():
        if suite.task == "maps":
            for name in suite.solvers + suite.reversed_solvers:
                solver.get(name)  # every row exists
    from otarena.sinkhorn import config
    assert set(suites.get("metaot-sinkhorn").solvers) == set(config.INITIALIZERS)
