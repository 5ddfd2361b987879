"""Reports from result records, one entry point for every task: :func:`write_all`.

Each task kind has its module (:mod:`~otarena.reporting.maps`,
:mod:`~otarena.reporting.sinkhorn`) with ``write(records, out_dir, figures)`` and
``console(records)``. Below them: :mod:`~otarena.reporting.format` (numbers, cells, LaTeX,
markdown), :mod:`~otarena.reporting.paper_values` (the papers' numbers, as data), the map
task's records (``map_records``), family and suite tables, figures, the fidelity table and
``otarena compare``; the Sinkhorn task's records (``sinkhorn_records``). Labels, column
titles and orders come from the pair and problem families, the solvers and the suites.
"""

from __future__ import annotations

from pathlib import Path

from otarena import suites, tasks
from otarena.errors import OtarenaError
from otarena.reporting import maps, sinkhorn

REPORTS = {"maps": maps, "sinkhorn": sinkhorn}  # by task kind


def _of_suite(records: list[dict], suite: suites.Suite) -> list[dict]:
    """The records of a suite's cells: its task's, and for maps its pairs and rows."""
    task = tasks.get(suite.task)
    mine = [r for r in records if task.owns(r)]
    if suite.task != "maps":
        return mine
    rows = {(n, False) for n in suite.solvers} | {(n, True) for n in suite.reversed_solvers}
    return [r for r in mine if r.get("pair") in suite.pairs
            and (r.get("solver"), bool(r.get("reverse"))) in rows]


def write_all(records: list[dict], out_dir: str | Path, suite: str | None = None,
              figures: bool = True) -> list[Path]:
    """Write the reports of every task that has records (tables, figures, summaries).

    Output depends only on the records, so the same records give the same bytes.

    Args:
        records: store records of any tasks (``Store.records()``); records no task owns
            are left out.
        out_dir: the report folder (created if needed).
        suite: only the records of this suite's cells.
        figures: also draw the figures.

    Returns:
        The paths written, in order.

    Raises:
        OtarenaError: ``suite`` is given and none of the records belongs to it.
    """
    if suite is not None:
        records = _of_suite(records, suites.get(suite))
        if not records:
            raise OtarenaError(f"no {suite} records; run `otarena run --suite {suite}` first")
    written = []
    for kind, module in REPORTS.items():
        mine = [r for r in records if tasks.get(kind).owns(r)]
        if mine:
            written += module.write(mine, out_dir, figures=figures)
    return written


def console(records: list[dict]) -> str:
    """What ``otarena run`` prints after running cells: each task's summary table."""
    parts = []
    for kind, module in REPORTS.items():
        mine = [r for r in records if tasks.get(kind).owns(r)]
        if mine:
            parts.append(module.console(mine))
    return "\n".join(p for p in parts if p)
