"""The result store: one record per run id, atomic appends, concurrent writers."""

import json
import multiprocessing as mp

from otarena.store import Store, run_id


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


def test_records_of_all_files_in_the_store(tmp_path):
    Store(tmp_path, "a.jsonl").add(record(1))
    Store(tmp_path, "b.jsonl").add(record(2))
    assert sorted(r["value"] for r in Store(tmp_path).records()) == [1, 2]
    assert Store(tmp_path).ids() == {record(1)["run_id"], record(2)["run_id"]}


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

    from otarena import runner

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "records.jsonl").write_text("")
    (tmp_path / "solver.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(runner, "repo_root", lambda: tmp_path)
    state = runner.git_state.__wrapped__

    (tmp_path / "results" / "records.jsonl").write_text('{"run_id": "a"}\n')
    assert state()["dirty"] is False  # a new record is not a change of the code
    (tmp_path / "solver.py").write_text("x = 2\n")
    assert state()["dirty"] is True
