"""The result store: one record per run id, atomic appends, concurrent writers."""

import json
import math
import multiprocessing as mp

import pytest

from otarena.store import Store, canonical, run_id


def record(i, **extra):
    return {"run_id": run_id({"cell": i}), "value": i, **extra}


def test_add_skips_an_existing_run_id_unless_replaced(tmp_path):
    store = Store(tmp_path)
    assert store.add(record(1))
    assert not store.add(record(1, value=99))
    assert [r["value"] for r in store.records()] == [1]
    assert store.add(record(1, value=2), replace=True)
    assert [r["value"] for r in store.records()] == [2]


def test_run_id_is_a_hash_of_the_identity():
    assert run_id({"a": 1, "b": [1, 2]}) == run_id({"b": [1, 2], "a": 1})
    assert run_id({"a": 1}) != run_id({"a": 2})
    assert len(run_id({"a": 1})) == 16


def test_a_partial_line_from_a_killed_writer_is_ignored_and_repaired(tmp_path):
    store = Store(tmp_path)
    store.add(record(1))
    with open(store.path, "ab") as f:
        f.write(b'{"run_id": "half-writ')  # a writer killed mid-record
    assert [r["value"] for r in store.records()] == [1]
    store.add(record(2))
    lines = store.path.read_text().splitlines()
    assert [json.loads(line)["value"] for line in lines] == [1, 2]


def test_records_of_all_files_of_the_store(tmp_path):
    Store(tmp_path, "records-gpu.jsonl").add(record(1))  # merged in from another machine
    Store(tmp_path, "metaot-sinkhorn.jsonl").add(record(2))
    Store(tmp_path).add(record(3))
    assert sorted(r["value"] for r in Store(tmp_path).records()) == [1, 2, 3]
    assert Store(tmp_path).ids() == {record(i)["run_id"] for i in (1, 2, 3)}


def test_other_jsonl_files_are_not_records(tmp_path, capsys):
    Store(tmp_path).add(record(1))
    (tmp_path / "notes.jsonl").write_text('{"note": "not a record"}\n')
    assert [r["value"] for r in Store(tmp_path).records()] == [1]
    assert "notes.jsonl is not read" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [b'{"run_id": "torn", "val', b"\0" * 4096, b"\xff\xfe{}",
                                 b"<<<<<<< HEAD", b"{}", b"[1, 2, 3]", b'{"run_id": 7}'])
def test_a_bad_line_is_skipped_with_a_warning_naming_file_and_line(tmp_path, capsys, bad):
    store = Store(tmp_path)
    store.add(record(1))
    with open(store.path, "ab") as f:
        f.write(bad + b"\n")
    store.add(record(2))  # appending still works, and sees the run ids around the bad line
    assert not store.add(record(1))
    assert sorted(r["value"] for r in store.records()) == [1, 2]
    warnings = [w for w in capsys.readouterr().err.splitlines() if w]
    assert warnings and all(f"{store.path} line 2:" in w and "skipped" in w for w in warnings)
    assert len(set(warnings)) == len(warnings)  # said once, not at every read


def test_non_finite_numbers_are_written_as_strict_json(tmp_path):
    store = Store(tmp_path)
    store.add(record(1, metrics={"l2_uvp_fwd": float("nan"), "cos_fwd": float("inf")},
                     curve=[{"loss": 1.0}, {"loss": float("-inf")}]))
    line = store.path.read_text()
    strict = json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in {line}"))
    assert strict["metrics"] == {"l2_uvp_fwd": None, "cos_fwd": None}
    assert strict["non_finite"] == {"metrics.l2_uvp_fwd": "NaN", "metrics.cos_fwd": "Infinity",
                                    "curve.1.loss": "-Infinity"}
    finite = record(2, metrics={"l2_uvp_fwd": 1.5})
    store.add(finite)
    assert store.path.read_text().splitlines()[1] == canonical(finite)  # unchanged when finite


def test_old_records_with_bare_nan_are_still_read(tmp_path):
    (tmp_path / "records.jsonl").write_text('{"run_id": "old", "metrics": {"l2_uvp_fwd": NaN}}\n')
    (r,) = Store(tmp_path).records()
    assert math.isnan(r["metrics"]["l2_uvp_fwd"])


def _writer(root, start, count):
    store = Store(root)
    for i in range(start, start + count):
        store.add(record(i, payload="x" * 5000))  # longer than a pipe buffer


def test_concurrent_writers_lose_nothing(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), 1000 * k, 50)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    values = sorted(r["value"] for r in Store(tmp_path).records())
    assert values == sorted(1000 * k + i for k in range(4) for i in range(50))
    assert len(Store(tmp_path).path.read_text().splitlines()) == 200


def test_records_say_dirty_only_when_the_code_differs_from_the_commit(tmp_path, monkeypatch):
    import subprocess

    from otarena import provenance

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "records.jsonl").write_text("")
    (tmp_path / "solver.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(provenance, "CODE_ROOT", tmp_path.resolve())  # git_state moved there
    state = provenance.git_state.__wrapped__

    (tmp_path / "results" / "records.jsonl").write_text('{"run_id": "a"}\n')
    assert state()["dirty"] is False  # a new record is not a change of the code
    (tmp_path / "solver.py").write_text("x = 2\n")
    assert state()["dirty"] is True
