"""What a configuration hashes to stays what it was when the records were made.

``fixtures/identity_pins.json`` holds, computed by the code that produced the committed and
the running paper-budget records (commit 47378fa): the sha256 of every registered solver's
config, of ``DualSpec.config()`` for a few engine solvers, and the run ids of Meta OT
cells. A refactor that changes any of them would orphan records; it fails here.

The committed Meta OT records predate the family options and the paper's test draws, so
their run ids cannot be recomputed (``test_committed_records`` covers the map records);
the Meta OT pins are the run ids that code gave its own cells.
"""

import hashlib
import json
from pathlib import Path

import jax
import pytest

from otarena import metaot, plugins, sinkhorn_bench as sb, solver
from otarena.budgets import Budget
from otarena.store import canonical, run_id

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


def _metaot_cell_run_id(key: str) -> str:
    family_name, options, profile, iterations, overrides, name, seed = key.split("|")
    options, overrides = json.loads(options), json.loads(overrides)
    iterations = None if iterations == "None" else int(iterations)
    seed = None if seed == "None" else int(seed)
    if "thresholds" in overrides:
        overrides["thresholds"] = tuple(overrides["thresholds"])
    family = sb.load_family(family_name, **options)
    if family_name == "spherical" and family.options["population_file"] != "pop-15min.npy":
        pytest.skip("another population grid than the pinned one is installed")
    budget = Budget(profile, iterations=iterations)
    plan = sb.plan_for(budget, family_name, **overrides)
    config = None
    if name in sb.LEARNED:
        config = metaot.TrainConfig(
            family=family_name, family_provenance=dict(family.provenance),
            iterations=plan.train_iterations, batch=plan.batch, seed=seed, dtype=plan.dtype,
            trainer=sb.LEARNED[name])
    return run_id(sb.identity(family, name, seed, budget, plan, config.key() if config else None))


@pytest.mark.skipif(jax.devices()[0].platform != "cpu", reason="the pins were made on a CPU")
@pytest.mark.parametrize("key", sorted(PINS["metaot_run_ids"]))
def test_metaot_run_ids_are_unchanged(key):
    assert _metaot_cell_run_id(key) == PINS["metaot_run_ids"][key]
