"""The runtime table: what training a cell costs, steady state apart from compiling.

Each line is one compiled program (a cell, or the seeds of a cell trained together) on
one device: the seconds spent compiling, in identity pretraining and in steady-state
training, and the steady-state rate — milliseconds per iteration of the program and per
seed. Rates come from the timed chunks only (after ahead-of-time compilation,
``block_until_ready``), so they are what a longer run of the same program costs; the
projection of a budget multiplies that rate by the budget's iterations and adds nothing
for compiling (a repeated run loads its programs from the persistent cache).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from otarena.provenance import device_text
from otarena.reporting.format import markdown_table

COLUMNS = ("solver", "pair", "device", "budget", "seeds in program", "iterations",
           "compile s", "pretrain s", "train s", "ms/it (program)", "ms/it per seed",
           "hours for 250k it per seed")


def lines(records: Iterable[dict]) -> list[tuple]:
    """One line per program (records of one program share its timing)."""
    programs = defaultdict(list)
    for r in records:
        timing = r.get("timing") or {}
        if not r.get("iterations") or timing.get("train_seconds") is None:
            continue  # closed-form baselines, solvers without the engine's split
        key = (r["solver"] + (":R" if r.get("reverse") else ""), r["pair"],
               device_text(r.get("device")),
               r["budget"]["profile"], timing.get("seeds_in_program", 1),
               round(timing["train_seconds"], 6))
        programs[key].append(r)
    out = []
    for (solver, pair, device, budget, seeds, _), group in sorted(programs.items()):
        t = group[0]["timing"]
        per_it = t.get("seconds_per_iteration")
        per_seed = t.get("seconds_per_iteration_per_seed")
        out.append((solver, pair, device, budget, seeds, t.get("iterations_timed"),
                    t.get("compile_seconds"), t.get("pretrain_seconds"), t["train_seconds"],
                    None if per_it is None else 1e3 * per_it,
                    None if per_seed is None else 1e3 * per_seed,
                    None if per_seed is None else 250_000 * per_seed / 3600))
    return out


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def markdown(records: Iterable[dict]) -> str:
    rows = lines(records)
    if not rows:
        return ""
    out = ["## Runtime: steady-state training, compile time apart", "",
           "One line per compiled program. `ms/it` is the steady-state time of the timed "
           "chunks (compiled ahead of time, synchronized); compile, identity-pretraining and "
           "training seconds are separate columns. The last column projects the steady-state "
           "rate per seed to 250k iterations (the HD paper budget), compile not included. "
           "Absolute times depend on the device named; compare rates on one device.", ""]
    out += markdown_table(COLUMNS, [[_cell(v) for v in row] for row in rows])
    return "\n".join(out + [""])
