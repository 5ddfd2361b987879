"""The solver adapter protocol.

A solver file in ``solvers/`` (or any file passed by path) defines ``SOLVERS``, a list of
:class:`Solver`. ``fit(pair, key, budget)`` trains on samples of the pair and returns a
:class:`Fitted` with the learned maps; the engine evaluates them with the benchmark's
metrics, so a solver never sees the ground truth beyond the samples it draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax

from otarena import plugins
from otarena.budgets import Budget
from otarena.errors import OtarenaError, UnknownNameError
from otarena.pairs import Pair

Map = Callable[[jax.Array], jax.Array]


@dataclass(frozen=True)
class Fitted:
    """What a solver learned: maps source -> target (``forward``) and back (``inverse``).

    Args:
        forward: the learned map on batches, (n, dim) -> (n, dim).
        inverse: the learned map back, or None.
        iterations: training iterations done (0 for a closed-form solver).
        diverged: the run stopped by its paper's rule (recorded as ``diverged``).
        curve: evaluations during training, dicts with ``iteration`` and metrics.
        info: anything else worth recording (``timing`` is merged into the record's).
        reported_iterate: which iterate the maps are (``final`` or ``best``).
        alternatives: maps of other iterates to score beside, name -> (forward, inverse).
        exact_metrics: metrics known exactly, replacing the estimates from samples.
    """

    forward: Map
    inverse: Map | None = None
    iterations: int = 0
    diverged: bool = False  # stopped early by its paper's rule (w2ot: loss NaN or > 1e5 at a logged iteration)
    curve: tuple[Mapping[str, float], ...] = ()  # evaluations during training
    info: Mapping[str, Any] = field(default_factory=dict)
    # Which iterate ``forward``/``inverse`` are ("final", or "best" where the paper's code
    # keeps its best checkpoint), and the maps of other iterates worth recording beside it
    # (name -> (forward, inverse)).
    reported_iterate: str = "final"
    alternatives: Mapping[str, tuple[Map, Map | None]] = field(default_factory=dict)
    # Metrics known exactly, which replace the estimates from samples (the official code
    # sets the constant map's L2-UVP to 100, its value by construction).
    exact_metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Solver:
    """A solver adapter, the row of a map table: how it trains and what identifies it.

    Args:
        name: the row's name (``--solvers``), unique among the registered solvers.
        fit: ``fit(pair, key, budget) -> Fitted``: train on samples of ``pair`` drawn with
            ``key`` (split it for independent batches) within ``budget``
            (``budget.pick({profile: iterations})`` gives the iteration count), and
            return the learned maps; the runner scores them.
        config: everything besides pair, seed and budget that determines the result; it is
            hashed into the run id, so a changed configuration makes new cells.
        label: the paper's name for the row, e.g. ``[L]``.
        description: one line for ``otarena list solvers``.
        source: the file that defined it (set on loading).
        fit_seeds: optional ``fit_seeds(pair, keys, budget) -> list[Fitted]``: one per key,
            the seeds trained together (``--vmap-seeds``).
        engine_spec: the :class:`~otarena.dual.spec.DualSpec` of a solver built on the
            engine (benchmarks time its programs directly).
    """

    name: str
    fit: Callable[[Pair, jax.Array, Budget], Fitted]
    config: Mapping[str, Any]  # everything that determines the result besides pair/seed/budget
    label: str = ""  # the paper's name for the row, e.g. "[L]"
    description: str = ""
    source: str = ""  # the file that defined it
    # Optional: train several seeds in one compiled program, one Fitted per key.
    fit_seeds: Callable[[Pair, jax.Array, Budget], list[Fitted]] | None = None
    # The engine configuration (``otarena.dual.DualSpec``) of solvers built on the engine;
    # benchmarks time its programs directly.
    engine_spec: Any = None


def _solvers_of(module) -> list[Solver]:
    found = getattr(module, "SOLVERS", None)
    if not isinstance(found, (list, tuple)) or not all(isinstance(s, Solver) for s in found):
        raise OtarenaError(f"{module.__file__} must define SOLVERS, a list of otarena.solver.Solver")
    return [Solver(**{**s.__dict__, "source": s.source or module.__file__}) for s in found]


def registry() -> dict[str, Solver]:
    """Every solver of the plugin folder ``solvers/``, by name."""
    found: dict[str, Solver] = {}
    for module in plugins.load_folder("solvers"):
        for s in _solvers_of(module):
            if s.name in found:
                raise OtarenaError(f"solver {s.name!r} is defined twice: "
                                   f"{found[s.name].source} and {s.source}")
            found[s.name] = s
    return found


def load_file(path: str | Path) -> list[Solver]:
    """The solvers of a user's adapter file outside the plugin folder.

    The file's sha256 joins each solver's config, so editing the file makes new cells
    instead of reusing records of the old code.
    """
    path = Path(path).resolve()
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return [Solver(**{**s.__dict__, "config": {**s.config, "source_sha256": digest}})
            for s in _solvers_of(plugins.load_file(path, namespace="otarena_user"))]


def get(name: str) -> Solver:
    solvers = registry()
    if name not in solvers:
        raise UnknownNameError(f"unknown solver {name!r}; `otarena list solvers` shows the "
                               f"{len(solvers)} solvers")
    return solvers[name]
