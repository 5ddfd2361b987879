"""Every committed record still names a cell of the current code: its run id recomputes
from the registry's solver, the pair, seed, budget and evaluation size. A change that
alters what a configuration hashes to (and so orphans the committed records) fails here."""

import json

import pytest

from otarena import map_task, solver
from otarena.budgets import Budget
from otarena.plugins import repo_root

STORE = repo_root() / "results"


def committed_map_records():
    records = []
    for path in sorted(STORE.glob("records*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                records.append(pytest.param(json.loads(line), id=f"{path.name}:{number}"))
    return records


@pytest.mark.parametrize("record", committed_map_records())
def test_run_id_recomputes(record):
    found = solver.registry().get(record["solver"])
    assert found is not None, f"solver {record['solver']!r} is no longer registered"
    cell = map_task.Cell(record["pair"], record["reverse"], found, record["seed"],
                       Budget(**record["budget"]), record["eval"]["size"])
    assert cell.run_id == record["run_id"]
    assert cell.identity() == {k: record[k] for k in cell.identity()}
