"""A copy of the code without .git names its commit only when every tracked file matches."""

import shutil
import subprocess

from benchmarks import gpu_source
from otarena import provenance


def _checkout(tmp_path):
    repo = tmp_path / "repo"
    (repo / "otarena").mkdir(parents=True)
    (repo / "otarena" / "a.py").write_text("x = 1\n")
    (repo / "results").mkdir()
    (repo / "results" / "records.jsonl").write_text("")
    for args in (["init", "-q"], ["add", "."],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return repo


def test_a_copy_is_checked_file_by_file(tmp_path, monkeypatch):
    repo = _checkout(tmp_path)
    monkeypatch.setattr(gpu_source, "ROOT", repo)
    found = gpu_source.write(tmp_path / "source.json")
    assert found["dirty"] is False and list(found["sha256"]) == ["otarena/a.py"]

    copy = tmp_path / "copy"
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(".git"))
    monkeypatch.setattr(gpu_source, "ROOT", copy)
    (copy / "results" / "records.jsonl").write_text('{"run_id": "a"}\n')  # not code
    assert gpu_source.check(tmp_path / "source.json") == []
    (copy / "otarena" / "a.py").write_text("x = 2\n")
    assert gpu_source.check(tmp_path / "source.json") == ["otarena/a.py"]


def test_records_of_a_copy_name_the_commit_only_when_told(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "CODE_ROOT", tmp_path)
    monkeypatch.setattr(provenance, "_git", lambda *a: (_ for _ in ()).throw(OSError("no git")))
    state = provenance.git_state.__wrapped__
    monkeypatch.delenv(provenance.CODE_COMMIT_ENV, raising=False)
    assert state() == {"commit": None, "dirty": None, "note": "not in a git checkout"}
    monkeypatch.setenv(provenance.CODE_COMMIT_ENV, "abc123")
    monkeypatch.setenv(provenance.CODE_DIRTY_ENV, "0")
    found = state()
    assert found["commit"] == "abc123" and found["dirty"] is False
    assert "checked" in found["note"]
