"""Defects found by probing the CLI (../shared/reference/reliability-probe.md), one test
each: bad arguments are refused before any work, in one line; solver faults are recorded
and the matrix goes on; checkpoints are verified; concurrent runs share the work."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import pytest

import otarena.executors  # noqa: F401  submitit's log handlers keep the sys.stderr of their
# import: imported here, outside a test's capture, not inside one that then closes it
from otarena import cli, data, map_task, runner, runtime
from otarena.budgets import Budget
from otarena.errors import OtarenaError
from otarena.plugins import repo_root
from otarena.solver import Fitted, Solver
from otarena.store import Store


@pytest.fixture(autouse=True)
def elsewhere(tmp_path, monkeypatch):
    """Run from a scratch folder: a default --results or --out never lands in the repository."""
    monkeypatch.chdir(tmp_path)


def error_line(capsys, *argv) -> str:
    """The CLI's one-line refusal: exit code 2, one line on stderr, no traceback."""
    try:
        code = cli.main(list(argv))
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(("otarena: error:", "usage:")) or "error:" in err
    if not err.startswith("usage:"):
        assert len(err.splitlines()) == 1, err
    return err


class Counting:
    """A closed-form solver that counts its trainings."""

    def __init__(self, name="shift", forward=lambda x: x + 1.0, inverse=lambda y: y - 1.0):
        self.calls = []
        self.forward, self.inverse = forward, inverse
        self.solver = Solver(name, self.fit, config={"test": name})

    def fit(self, pair, key, budget):
        self.calls.append(pair.label)
        return Fitted(forward=self.forward, inverse=self.inverse, iterations=1)


def cells_of(solver, seeds=(0,), eval_size=1024, pair="hd-2"):
    return map_task.cells([pair], [solver], seeds, Budget("smoke"), eval_size)


# --- seeds (probe 4.4, 4.5, 4.7, 4.8) ---

@pytest.mark.parametrize("seeds, message", [
    ("5-2", "reversed"), ("", "no seeds"), (",", "no seeds"),
    ("4294967296", "below 2**32"), ("99999999999999999999", "below 2**32"),
])
def test_bad_seed_lists_are_refused(capsys, tmp_path, seeds, message):
    err = error_line(capsys, "run", "--pairs", "hd-2", "--solvers", "linear", "--seeds", seeds,
                     "--results", str(tmp_path / "r"))
    assert message in err


def test_the_runner_refuses_seeds_that_jax_would_alias(tmp_path):
    shift = Counting()
    with pytest.raises(OtarenaError, match="below 2"):
        runner.run(cells_of(shift.solver, seeds=(2**32,)), Store(tmp_path), quiet=True)
    assert shift.calls == []


# --- arguments checked only after training (probe 4.9, 4.11) ---

def test_an_evaluation_size_the_evaluator_refuses_is_refused_up_front(capsys, tmp_path):
    err = error_line(capsys, "run", "--pairs", "hd-2", "--solvers", "linear", "--eval-size",
                     "5000", "--results", str(tmp_path / "r"))
    assert "5000 evaluation points" in err and "multiple of 4096" in err
    assert not (tmp_path / "r").exists()
    shift = Counting()
    with pytest.raises(OtarenaError, match="multiple of 4096"):
        runner.run(cells_of(shift.solver, eval_size=5000), Store(tmp_path), quiet=True)
    assert shift.calls == []


def unwritable_stores(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    found = {"a regular file": a_file, "a path under a file": a_file / "results"}
    if os.geteuid() != 0:  # root writes into read-only folders
        read_only = tmp_path / "read-only"
        read_only.mkdir(mode=0o555)
        found["a read-only folder"] = read_only
    return found


def test_an_unwritable_results_folder_is_refused_before_any_work(capsys, tmp_path):
    for what, path in unwritable_stores(tmp_path).items():
        shift = Counting()
        with pytest.raises(OtarenaError, match="cannot write the result store"):
            runner.run(cells_of(shift.solver), Store(path), quiet=True)
        assert shift.calls == [], what
        err = error_line(capsys, "run", "--pairs", "hd-2", "--solvers", "linear",
                         "--results", str(path))
        assert "cannot write the result store" in err


def test_report_out_that_cannot_be_written_is_one_line(capsys, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    err = error_line(capsys, "report", "--results", str(repo_root() / "results"),
                     "--out", str(a_file / "reports"))
    assert "cannot write" in err


@pytest.mark.parametrize("value, ok", [("abc", False), ("-1", False), ("", True), ("0", True)])
def test_checkpoint_seconds_from_the_environment(monkeypatch, tmp_path, value, ok):
    monkeypatch.setenv(runtime.CHECKPOINT_SECONDS_ENV, value)
    shift = Counting()
    if ok:
        runner.run(cells_of(shift.solver), Store(tmp_path), quiet=True)
        assert len(shift.calls) == 1
    else:
        with pytest.raises(OtarenaError, match=runtime.CHECKPOINT_SECONDS_ENV):
            runner.run(cells_of(shift.solver), Store(tmp_path), quiet=True)
        assert shift.calls == []


# --- one-line errors for other user mistakes (probe 3.11, 4.14, 4.16) ---

def test_a_syntax_error_in_a_compare_file_is_one_line(capsys, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1\ndef fit(pair, key, budget)\n    pass\n")
    err = error_line(capsys, "compare", str(broken), "--pairs", "hd-2", "--against", "linear",
                     "--results", str(tmp_path / "r"))
    assert f"{broken}, line 2" in err


@pytest.mark.parametrize("solvers", ["linearr", "MMv1,icnn-cycle"])
def test_a_solver_outside_the_suite_is_refused(capsys, tmp_path, solvers):
    err = error_line(capsys, "run", "--suite", "hd-baselines", "--pairs", "hd-2", "--solvers",
                     solvers, "--results", str(tmp_path))
    assert "not in suite hd-baselines" in err


def test_an_unreadable_data_file_is_named_in_one_line(capsys, tmp_path, monkeypatch):
    src = data.data_dir() / "w2-benchmark" / "Mix3toMix10"
    copy = tmp_path / "data" / "w2-benchmark" / "Mix3toMix10"
    copy.mkdir(parents=True)
    for name in ("2_v1.pt", "2_v2.pt"):
        shutil.copy(src / name, copy / name)
    (copy / "2_v1.pt").unlink()
    # a file that exists but cannot be read, even by root: reading it fails with EIO
    (copy / "2_v1.pt").symlink_to("/proc/self/mem")
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "data"))
    with pytest.raises(OtarenaError, match="2_v1.pt: unreadable"):
        data.require("w2-benchmark/Mix3toMix10/2_v1.pt")
    assert cli.main(["data", "verify", "hd-2"]) == 1
    out = capsys.readouterr().out
    assert "unreadable" in out and "1 of 2 files usable" in out


def test_the_slurm_path_checks_the_data_before_submitting(tmp_path):
    src = repo_root().parent / "shared" / "data"
    src = Path(os.environ.get(data.DATA_ENV, src))
    copy = tmp_path / "data" / "w2-benchmark" / "Mix3toMix10"
    copy.mkdir(parents=True)
    shutil.copy(src / "w2-benchmark" / "Mix3toMix10" / "2_v2.pt", copy / "2_v2.pt")
    (copy / "2_v1.pt").write_bytes((src / "w2-benchmark" / "Mix3toMix10" / "2_v1.pt").read_bytes()[:100])
    done = subprocess.run(
        [sys.executable, "-m", "otarena.cli", "run", "--pairs", "hd-2", "--solvers", "linear",
         "--results", str(tmp_path / "r"), "--executor", "submitit-local", "--wait",
         "--jobs-dir", str(tmp_path / "jobs")],
        capture_output=True, text=True, cwd=repo_root(),
        env={**os.environ, data.DATA_ENV: str(tmp_path / "data")})
    assert done.returncode == 2, done.stderr
    assert "2_v1.pt: corrupt" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "jobs").exists()  # nothing was submitted


# --- maps are validated at evaluation (probe 4.20-4.22, 5.4) ---

@pytest.fixture(scope="module")
def hd2():
    from otarena import pairs

    return pairs.load("hd-2")


@pytest.mark.parametrize("forward, inverse", [
    (lambda x: x[:, :1], None),                                   # (n, 1): was broadcast
    (lambda x: jnp.concatenate([x, x[:, :1]], axis=1), None),     # (n, dim + 1)
    (lambda x: x[:10], None),                                     # (10, dim)
    (lambda x: x, lambda y: y[0]),                                # inverse of shape (dim,)
])
def test_a_map_of_the_wrong_shape_is_refused(hd2, forward, inverse):
    from otarena import metrics

    with pytest.raises(metrics.MapError, match=r"returned shape .* for points of shape \(1024, 2\)"):
        metrics.evaluate(hd2, forward, inverse, size=1024)


def test_a_nan_map_has_no_cosine_of_zero(hd2):
    import math

    from otarena import metrics

    scores = metrics.evaluate(hd2, lambda x: x * jnp.nan, lambda y: y, size=1024)
    assert math.isnan(scores["l2_uvp_fwd"]) and math.isnan(scores["cos_fwd"])
    assert scores["cos_inv"] == 0.0  # the identity still has cosine 0, as officially


@pytest.mark.parametrize("forward, inverse", [
    (lambda x: x * jnp.nan, lambda y: y),            # probe 4.20
    (lambda x: x * 1e18, lambda y: y * jnp.inf),     # probe 5.4: overflowing metrics
])
def test_non_finite_maps_are_not_recorded_ok(tmp_path, forward, inverse):
    bad = Counting("bad", forward, inverse)
    (record,) = runner.run(cells_of(bad.solver), Store(tmp_path), quiet=True)
    assert record["status"] == "diverged"
    assert "not finite" in record["error"]
    (stored,) = Store(tmp_path).records()
    assert stored["status"] == "diverged" and stored["non_finite"]


# --- a solver's fault is recorded and the matrix goes on (probe 4.18, 4.19, 4.21) ---

def broken(name, fit):
    return Solver(name, fit, config={"test": name})


def raise_in_fit(pair, key, budget):
    raise RuntimeError("solver blew up inside fit")


@pytest.mark.parametrize("solver, error", [
    (broken("raises", raise_in_fit), "RuntimeError: solver blew up inside fit"),
    (broken("none", lambda pair, key, budget: None), "fit returned None, not an otarena.solver.Fitted"),
    (broken("shape", lambda p, k, b: Fitted(lambda x: x[:, :1])), "forward map returned shape"),
])
def test_a_failing_solver_is_recorded_failed_and_the_matrix_goes_on(tmp_path, capsys, solver, error):
    after = Counting()
    store = Store(tmp_path)
    records = runner.run(cells_of(solver) + cells_of(after.solver), store)
    assert len(after.calls) == 1  # the cell after the failure still ran
    failed = next(r for r in records if r["solver"] == solver.name)
    assert failed["status"] == "failed" and error in failed["error"]
    assert "Traceback" in failed["traceback"]  # for the solver's author
    line = next(l for l in capsys.readouterr().out.splitlines() if solver.name in l)
    assert "failed: " in line and error in line
    # a failed cell is tried again by the next run; a finished one is not
    fixed = Counting(solver.name)
    fixed.solver = Solver(solver.name, fixed.fit, config=solver.config)
    runner.run(cells_of(fixed.solver) + cells_of(after.solver), store, quiet=True)
    assert len(fixed.calls) == 1 and len(after.calls) == 1
    statuses = {r["solver"]: r["status"] for r in store.records()}
    assert statuses == {solver.name: "ok", "shift": "ok"}


def test_the_cli_exits_non_zero_when_a_cell_failed(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("from otarena.solver import Solver\n"
                   "def fit(pair, key, budget):\n    raise RuntimeError('boom')\n"
                   "SOLVERS = [Solver('boom', fit, config={})]\n")
    code = cli.main(["compare", str(bad), "--pairs", "hd-2", "--against", "identity",
                     "--eval-size", "1024", "--results", str(tmp_path / "r"), "--out",
                     str(tmp_path / "out"), "--quiet"])
    assert code == 1
    assert "1 of 2 cells failed" in capsys.readouterr().err
    assert "failed" in (tmp_path / "out" / "comparison.md").read_text()
    assert {r["solver"] for r in Store(tmp_path / "r").records()} == {"boom", "identity"}


# --- concurrent runs share the work (probe 2.4) ---

def test_a_cell_finished_by_another_process_meanwhile_is_not_trained_again(tmp_path, capsys):
    store = Store(tmp_path)
    second = Counting("second")
    todo_second = cells_of(second.solver)

    def fit_and_meanwhile(pair, key, budget):
        # while this cell trains, another process finishes the next one
        other = Counting("second")
        runner.run(cells_of(other.solver), Store(tmp_path), quiet=True)
        assert len(other.calls) == 1
        return Fitted(lambda x: x, lambda y: y)

    first = broken("first", fit_and_meanwhile)
    runner.run(cells_of(first) + todo_second, store)
    assert second.calls == []
    assert "already recorded by another process" in capsys.readouterr().out
    assert len(store.path.read_text().splitlines()) == 2


# --- checkpoints (probe 1.5, 1.6, 3.6-3.8) ---

def test_checkpoints_are_verified_by_a_digest(tmp_path, capsys):
    path = tmp_path / "c.pkl"
    runtime.save_checkpoint(path, {"signature": "s", "done": 2, "curve": [[{"iteration": 2}]]})
    assert runtime.load_checkpoint(path, "s")["done"] == 2
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0xFF  # a flipped byte that still unpickles would resume silently
    path.write_bytes(bytes(raw))
    assert runtime.load_checkpoint(path, "s") is None
    assert "c.pkl" in capsys.readouterr().err


@pytest.mark.parametrize("payload", [
    [1, 2, 3],                                                            # not a dict
    {"signature": "s", "curve": []},                                      # no done
    {"signature": "s", "done": 10**6, "curve": [[{"iteration": 100}]]},   # done beyond its curve
    {"signature": "s", "done": -1, "curve": []},
    {"signature": "s", "done": 100, "curve": [[{"iteration": 200, "stopped": True}]]},
])
def test_a_checkpoint_of_the_wrong_structure_is_dropped_with_a_warning(tmp_path, capsys, payload):
    path = tmp_path / "c.pkl"
    runtime.save_checkpoint(path, payload)
    assert runtime.load_checkpoint(path, "s") is None
    err = capsys.readouterr().err
    assert "c.pkl" in err and "training restarts" in err and len(err.strip().splitlines()) == 1


def test_a_seed_that_stopped_early_ends_its_curve_early(tmp_path):
    path = tmp_path / "c.pkl"
    curve = [[{"iteration": 60, "stopped": True}], [{"iteration": 100, "stopped": False}]]
    runtime.save_checkpoint(path, {"signature": "s", "done": 100, "curve": curve})
    assert runtime.load_checkpoint(path, "s")["curve"] == curve


def test_a_checkpoint_beyond_the_planned_iterations_is_dropped(tmp_path):
    path = tmp_path / "c.pkl"
    runtime.save_checkpoint(path, {"signature": "s", "done": 200, "curve": [[{"iteration": 200}]]})
    assert runtime.load_checkpoint(path, "s", planned=100) is None


def test_a_pickle_without_digest_is_dropped(tmp_path):
    import pickle

    path = tmp_path / "c.pkl"
    path.write_bytes(pickle.dumps({"signature": "s", "done": 1}))
    assert runtime.load_checkpoint(path, "s") is None


class Interrupt(KeyboardInterrupt):
    pass


def test_a_bit_flipped_engine_checkpoint_restarts_training_with_the_right_result(tmp_path, hd2):
    import jax
    import numpy as np

    from otarena.dual import DualSpec, train

    spec = DualSpec(potential="mlp", amortizer="residual-mlp", amortization="objective",
                    conjugate_solver=None, inverse_solver=None, iterations={"smoke": 30},
                    pretrain_steps={"smoke": 2}, eval_every={"smoke": 10}, batch_size=64,
                    eval_size={"smoke": 1024})
    keys, budget = jax.random.key(3)[None], Budget("smoke")
    whole = train(hd2, spec, keys, budget)[0]

    def stop_after_20(done, planned):
        if done == 20:
            raise Interrupt

    stem = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        with runtime.running(runtime.RunContext(stem, 0.0, stop_after_20)):
            train(hd2, spec, keys, budget)
    (saved,) = tmp_path.glob("ckpt-*.pkl")
    raw = bytearray(saved.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # inside the parameter arrays
    saved.write_bytes(bytes(raw))
    seen = []
    with runtime.running(runtime.RunContext(stem, 0.0, lambda d, p: seen.append(d))):
        resumed = train(hd2, spec, keys, budget)[0]
    assert seen == [10, 20, 30]  # trained from the start, not from the damaged state
    assert [p["l2_uvp_fwd"] for p in resumed.curve] == [p["l2_uvp_fwd"] for p in whole.curve]
    x = hd2.sample_source(jax.random.key(0), 32)
    np.testing.assert_array_equal(np.asarray(resumed.forward(x)), np.asarray(whole.forward(x)))


class Resumable:
    """A solver that checkpoints itself: the first segment trains 0.4 s and is killed."""

    def __init__(self):
        self.solver = Solver("resumable", self.fit, config={"test": "resumable"})

    def fit(self, pair, key, budget):
        import time

        path = runtime.current().checkpoint.with_name(runtime.current().checkpoint.name + "-x.pkl")
        if runtime.load_checkpoint(path, "x") is None:
            time.sleep(0.4)
            runtime.save_checkpoint(path, {"signature": "x", "done": 1, "curve": []})
            raise Interrupt
        return Fitted(lambda x: x, lambda y: y, iterations=2)


def test_a_resumed_record_counts_the_training_time_of_every_segment(tmp_path):
    store, solver = Store(tmp_path), Resumable()
    with pytest.raises(Interrupt):
        runner.run(cells_of(solver.solver), store, quiet=True)
    (record,) = runner.run(cells_of(solver.solver), store, quiet=True)
    assert record["timing"]["wall_seconds"] >= 0.4
    assert list((tmp_path / ".checkpoints").iterdir()) == []


def test_temporary_checkpoint_files_are_cleaned_up_with_the_cell(tmp_path):
    store, shift = Store(tmp_path), Counting()
    (cell,) = cells_of(shift.solver)
    stem = runner.checkpoint_stem(store, [cell])
    stem.parent.mkdir(parents=True)
    # what a kill inside save_checkpoint leaves behind
    (stem.parent / f".{stem.name}-abc.pkl.4242.tmp").write_bytes(b"partial")
    runner.run([cell], store, quiet=True)
    assert list(stem.parent.iterdir()) == []
