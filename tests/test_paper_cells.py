"""benchmarks/paper_cells.sh: two queues started together share one frozen worktree of the
code and each runs its cells into its own store."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_two_queues_started_together_run_their_cells_on_one_frozen_commit(tmp_path):
    if not (ROOT / ".git").exists():
        import pytest
        pytest.skip("needs the repository's git metadata (the queue freezes HEAD)")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()
    cells = {0: "identity hd-2 0", 1: "constant hd-2 0"}
    for core, cell in cells.items():
        (tmp_path / f"cells{core}.txt").write_text(cell + "\n")
    env = {**os.environ, "OTARENA_BUDGET": "smoke", "OTARENA_PYTHON": sys.executable}
    try:
        queues = [subprocess.Popen(["bash", str(ROOT / "benchmarks/paper_cells.sh"), str(tmp_path),
                                    str(core), str(tmp_path / f"cells{core}.txt")], env=env)
                  for core in cells]  # same instant: both want to create the worktree
        assert [q.wait(timeout=600) for q in queues] == [0, 0]
        for core, cell in cells.items():
            log = (tmp_path / f"queue-core{core}.log").read_text()
            assert f"end {cell}: exit 0" in log, log
            assert (tmp_path / f"store-core{core}/commit").read_text().strip() == head
            records = [json.loads(line) for line in
                       (tmp_path / f"store-core{core}/records.jsonl").read_text().splitlines()]
            assert [r["solver"] for r in records] == [cell.split()[0]]
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                        str(tmp_path / f"code-{head}")], capture_output=True)


def test_queues_started_at_the_same_instant_both_survive_making_the_worktree(tmp_path):
    """`git worktree add` of one path from two processes at once fails one of them or both
    (index.lock, "already exists"); the queue takes a lock around it. Queues with no cells
    only make the worktree and exit: ten pairs started together."""
    if not (ROOT / ".git").exists():
        import pytest
        pytest.skip("needs the repository's git metadata (the queue freezes HEAD)")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (tmp_path / "no-cells.txt").write_text("")
    try:
        for attempt in range(10):
            workdir = tmp_path / f"w{attempt}"
            queues = [subprocess.Popen(["bash", str(ROOT / "benchmarks/paper_cells.sh"),
                                        str(workdir), str(core), str(tmp_path / "no-cells.txt")],
                                       stderr=subprocess.PIPE, text=True) for core in (0, 1)]
            results = [(q.wait(timeout=120), q.stderr.read()) for q in queues]
            assert [rc for rc, _ in results] == [0, 0], results
            assert (workdir / f"code-{head}" / "otarena").is_dir()
    finally:
        for attempt in range(10):
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(tmp_path / f"w{attempt}" / f"code-{head}")], capture_output=True)
