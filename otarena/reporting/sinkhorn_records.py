"""Sinkhorn-task records as cells of Table 1: sections (a family and its instance set),
pooled instances, summaries at a threshold, ratios, the split of a solve's time, and the
paper's values (``otarena/paper_values.json``, ``timing_tables``)."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from otarena import suites
from otarena.reporting import paper_values
from otarena.sinkhorn import family as families
from otarena.sinkhorn.config import INITIALIZERS, SUITE

ORDER = INITIALIZERS  # the rows' order
# A time cell whose learned initializer's training diverged (for any seed) prints this in
# place of a number, as the papers print a failed run (Amos 2023: ">100" for any diverged
# seed); a number of seconds would pretend the model had been usable.
FAILED = "diverged"


def paper() -> dict:
    """The paper's numbers for the suite's table (seconds, ratios, device, source)."""
    return paper_values.timing_table(suites.get(SUITE).paper_table)


def family_titles() -> dict[str, str]:
    """Titles of the registered Sinkhorn families, in their order."""
    return {name: f.title for name, f in families.registered().items()}


def suite_records(records: Iterable[dict]) -> list[dict]:
    return [r for r in records if r.get("suite") == SUITE]


def instance_set(record: dict) -> str | None:
    """A label for a record's test instances when they are not the family's defaults.

    MNIST records name their grid. Records written before the grid option and the
    paper's test draws (no ``test_draws`` in their data) are labelled as such, so that
    the report never pools them with records of other instances.
    """
    parts = [record.get("variant")]
    data = record.get("data", {})
    if parts[0] is None and record["family"] == "mnist" and "[0,1]^2" in data.get("atoms", ""):
        parts[0] = "2-D grid"
    if not data.get("test_draws"):
        parts.append("test draws of JAX 0.5+, not the paper's")
    return ", ".join(p for p in parts if p) or None


def sections(records: Iterable[dict]) -> list[tuple[str, str | None]]:
    """The (family, instance set) pairs of the records, each a section and a table column."""
    found = {(r["family"], instance_set(r)) for r in suite_records(records)}
    order = list(family_titles())
    return sorted(found, key=lambda s: (order.index(s[0]) if s[0] in order else 99, s[1] or ""))


def section_title(section: tuple[str, str | None]) -> str:
    family, label = section
    name = family_titles().get(family, family)
    return f"{name} ({label})" if label else name


def section_slug(section: tuple[str, str | None], all_sections) -> str:
    """File-name part: the family alone unless the records hold several of its sets."""
    family, label = section
    if label is None or sum(f == family for f, _ in all_sections) == 1:
        return family
    return f"{family}-" + re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def in_section(records: Iterable[dict], section) -> list[dict]:
    return [r for r in suite_records(records) if (r["family"], instance_set(r)) == section]


def failed(records: Iterable[dict], initializer: str) -> list[dict]:
    """Records of ``initializer`` whose model training diverged (no timings)."""
    return [r for r in records if r["initializer"] == initializer
            and r["status"] == "training diverged"]


def frame(records: Iterable[dict]) -> pd.DataFrame:
    """One row per (record, threshold); instance values pooled over seeds later."""
    rows = []
    for r in suite_records(records):
        for t in r["metrics"]["thresholds"]:
            rows.append({"family": r["family"], "initializer": r["initializer"],
                         "seed": r["seed"], "budget": r["budget"]["profile"],
                         "device": r["device"]["kind"], "dtype": r["plan"]["dtype"],
                         "threshold": t["threshold"], "seconds": t["seconds"],
                         "iterations": t["iterations"], "batched": t.get("batched"),
                         "prediction": r["metrics"].get("prediction_seconds"),
                         "cost_model": r["metrics"].get("cost_model"),
                         "grid": r["data"].get("population_grid", {}).get("file"),
                         "variant": r["data"].get("population_grid", {}).get("variant")})
    return pd.DataFrame(rows, columns=["family", "initializer", "seed", "budget", "device",
                                       "dtype", "threshold", "seconds", "iterations",
                                       "batched", "prediction", "cost_model", "grid",
                                       "variant"])


def pooled(df: pd.DataFrame, family: str, initializer: str, threshold: float, column: str
           ) -> np.ndarray:
    sel = df[(df.family == family) & (df.initializer == initializer)
             & np.isclose(df.threshold, threshold)]
    values = [v for vs in sel[column] for v in vs]
    return np.asarray([np.nan if v is None else v for v in values], dtype=float)


def summary(df: pd.DataFrame, threshold: float) -> dict:
    """{family: {initializer: {seconds, iterations, batched, prediction}}} at a threshold."""
    out: dict = {}
    for family in sorted(set(df.family)):
        for init in ORDER:
            secs = pooled(df, family, init, threshold, "seconds")
            if not len(secs):
                continue
            its = pooled(df, family, init, threshold, "iterations")
            sel = df[(df.family == family) & (df.initializer == init)
                     & np.isclose(df.threshold, threshold)]
            batched = [b for b in sel.batched if b]
            preds = [v for p in sel.prediction if p for v in p["per_instance"]]
            models = [m for m in sel.cost_model if m]
            out.setdefault(family, {})[init] = {
                "seconds": (float(np.nanmean(secs)), float(np.nanstd(secs))),
                "iterations": (float(np.nanmean(its)), float(np.nanstd(its))),
                "unconverged": int(np.isnan(its).sum()),
                "per_instance_throughput": 1.0 / float(np.nanmean(secs)),
                "batched_throughput": (float(np.mean([b["instances_per_second"] for b in batched]))
                                       if batched else None),
                "prediction": (float(np.mean(preds)), float(np.std(preds))) if preds else None,
                "cost": time_split(models, float(np.nanmean(its))) if models else None}
    return out


def time_split(models: list[dict], iterations: float) -> dict:
    """A solve of ``iterations`` iterations split by the records' cost models (averaged).

    ``algorithm`` is what the method itself costs: the initialization's own work plus the
    iterations at the fitted cost per iteration, without the call and the solve's fixed
    cost, which do not depend on the initialization.
    """
    def avg(get):
        return float(np.mean([get(m) for m in models]))

    per_iteration = avg(lambda m: m["seconds_per_iteration"])
    call = avg(lambda m: m["dispatch_seconds"])
    initialization = max(avg(lambda m: m["initialization_seconds"]) - call, 0.0)
    iterating = iterations * per_iteration
    return {"per_iteration": per_iteration, "iterating": iterating, "call": call,
            "initialization": initialization, "fixed": avg(lambda m: m["fixed_seconds"]),
            "algorithm": initialization + iterating}


def ratio(cells: dict, numerator: str = "zeros", denominator: str = "meta-ot",
          what: str = "seconds") -> float | None:
    if numerator in cells and denominator in cells:
        if what == "algorithm":
            top, bottom = cells[numerator]["cost"], cells[denominator]["cost"]
            return top["algorithm"] / bottom["algorithm"] if top and bottom else None
        return cells[numerator][what][0] / cells[denominator][what][0]
    return None


def _context(df: pd.DataFrame) -> str:
    parts = [f"budget {'/'.join(sorted(set(df.budget)))}",
             f"device {'/'.join(sorted(set(df.device)))}",
             f"{'/'.join(sorted(set(df.dtype)))}"]
    grids = sorted({f"{g} ({v.split(' (')[0]})" for g, v in zip(df.grid, df.variant)
                    if isinstance(g, str)})  # MNIST rows have none (None or NaN in pandas)
    if grids:
        parts.append("population grid " + ", ".join(grids))
    return "; ".join(parts)


def provisional_note(records: Iterable[dict]) -> str | None:
    """What the report says while none of its records is a paper-budget GPU measurement."""
    kinds = sorted({(r["device"]["platform"], r["budget"]["profile"])
                    for r in suite_records(records)})
    if not kinds or ("gpu", "paper") in kinds:
        return None
    return (f"These records are {', '.join(f'{d.upper()} / {b}' for d, b in kinds)}: there "
            "are no paper-budget GPU records yet. On a CPU the iterations dominate every "
            "solve, so the wall-clock ratios mostly repeat the iteration ratios; neither is "
            "the paper's GPU measurement.")


# A time cell whose learned initializer's training diverged (for any seed) prints this in
# place of a number, as the papers print a failed run (Amos 2023: ">100" for any diverged
# seed); a number of seconds would pretend the model had been usable.
