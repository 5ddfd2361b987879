"""What a configuration hashes to stays what it was when the records were made.

``fixtures/identity_pins.json`` holds, computed by the code that produced the committed and
the running paper-budget records (commit 47378fa): the sha256 of every registered solver's
config, of ``DualSpec.config()`` for a few engine solvers, and the run ids of Meta OT
cells. A refactor that changes any of them would orphan records; it fails here.

The committed Meta OT records predate the family options and the paper's test draws, so
their run ids cannot be recomputed (``test_committed_records`` covers the map records);
the Meta OT pins are the run ids that code gave its own cells, and the cells ``otarena
run`` builds now must get the same.
"""

import hashlib
import json
from pathlib import Path

import jax
import pytest

from otarena import plugins, solver
from otarena.budgets import Budget
from otarena.sinkhorn import task as sinkhorn_task
from otarena.store import canonical

PINS = json.loads((Path(__file__).parent / "fixtures" / "identity_pins.json").read_text())


def sha(obj) -> str:
    return hashlib.sha256(canonical(obj).encode()).hexdigest()[:16]


def test_every_registered_solver_config_is_pinned_and_unchanged():
    registry = solver.registry()
    assert sorted(registry) == sorted(PINS["solver_config"])
    for name, found in registry.items():
        assert sha(dict(found.config)) == PINS["solver_config"][name], name


def test_dual_spec_configs_are_unchanged():
    specs = {name: s.engine_spec for name, s in solver.registry().items()}
    korotin = next(m for m in plugins.load_folder("solvers") if m.__name__.endswith(".korotin"))
    specs["MMv1"] = korotin.MMV1  # its Solver wraps two engine runs
    for name, pinned in PINS["dual_spec_config"].items():
        assert sha(specs[name].config()) == pinned, name


def _metaot_cell(key: str) -> sinkhorn_task.Cell:
    """The cell the runner gets for a pinned key (family|options|profile|iterations|plan
    overrides|initializer|seed), built as ``otarena run`` builds it."""
    family_name, options, profile, iterations, overrides, name, seed = key.split("|")
    budget = Budget(profile, iterations=None if iterations == "None" else int(iterations))
    seeds = [0] if seed == "None" else [int(seed)]
    [cell] = sinkhorn_task.cells([family_name], [name], seeds, budget,
                                 {family_name: json.loads(options)}, json.loads(overrides))
    return cell


@pytest.mark.skipif(jax.devices()[0].platform != "cpu", reason="the pins were made on a CPU")
@pytest.mark.parametrize("key", sorted(PINS["metaot_run_ids"]))
def test_metaot_run_ids_are_unchanged(key):
    cell = _metaot_cell(key)
    if cell.family == "spherical" and cell.problem.options["population_file"] != "pop-15min.npy":
        pytest.skip("another population grid than the pinned one is installed")
    assert cell.run_id == PINS["metaot_run_ids"][key]
