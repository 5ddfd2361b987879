"""Does a fresh run reproduce a store's records? Cell by cell, the same run id on the same
kind of device, metric by metric, within a stated tolerance.

The tolerance: a closed-form baseline (no training) is a fixed computation on fixed
points, so the same backend gives the same number up to float32 rounding of its
reductions (``BASELINE_RTOL``). A trained solver runs thousands of optimizer steps, and a
difference in the last bit of one reduction (another CPU instruction set, another thread
count, another XLA version) is amplified by training: two runs of one cell that differ
only by the XLA CPU thread count were measured to agree to about 1e-3 relative in L2-UVP
at the quick budget (see README, "Reproducing the committed records"). ``TRAINED_RTOL``
and ``TRAINED_ATOL`` leave an order of magnitude above that. Numbers from other device
kinds (CPU vs GPU) are not compared: their kernels differ by design.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from otarena import metrics

METRICS = tuple(metrics.NAMES)
BASELINE_RTOL = 1e-5
TRAINED_RTOL = 2e-2
TRAINED_ATOL = 2e-2  # in L2-UVP percentage points / cosine units, for values near 0


@dataclass(frozen=True)
class Check:
    label: str
    verdict: str  # agree | differ | other device | missing
    worst: str = ""  # the metric that differs most, with both values
    detail: str = ""


def _label(r: dict) -> str:
    pair = f"{r['pair']}:R" if r.get("reverse") else r["pair"]
    return f"{pair} {r['solver']} seed={r['seed']} budget={r['budget']['profile']}"


def _device(r: dict) -> tuple[str, str]:
    device = r.get("device") or {}
    return device.get("platform", "?"), device.get("kind", "?")


def _close(a, b, trained: bool) -> bool:
    if a is None or b is None:
        return a is b
    if not (math.isfinite(a) and math.isfinite(b)):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if trained:
        return abs(a - b) <= TRAINED_ATOL + TRAINED_RTOL * abs(b)
    return abs(a - b) <= BASELINE_RTOL * max(1.0, abs(b))


def check(ours: dict, theirs: dict) -> Check:
    """One cell: ours against the reference record of the same run id."""
    label = _label(ours)
    if _device(ours) != _device(theirs):
        return Check(label, "other device",
                     detail=f"{'/'.join(_device(ours))} vs {'/'.join(_device(theirs))}")
    trained = (ours.get("iterations") or 0) > 0
    worst, worst_gap, agree = "", -1.0, ours.get("status") == theirs.get("status")
    for m in METRICS:
        a, b = ours["metrics"].get(m), theirs["metrics"].get(m)
        if a is None and b is None:
            continue
        ok = _close(a, b, trained)
        gap = (math.inf if not ok and (a is None or b is None) else
               abs(a - b) / max(abs(b), 1e-12) if a is not None and b is not None and
               math.isfinite(a) and math.isfinite(b) else 0.0 if ok else math.inf)
        agree &= ok
        if gap > worst_gap:
            worst, worst_gap = f"{m} {a:.6g} vs {b:.6g}" if a is not None and b is not None \
                else f"{m} {a} vs {b}", gap
    detail = "" if ours.get("status") == theirs.get("status") else \
        f"status {ours.get('status')} vs {theirs.get('status')}"
    return Check(label, "agree" if agree else "differ", worst, detail)


def compare(ours: Iterable[dict], reference: Iterable[dict]) -> list[Check]:
    """Every record of ours with its reference record (same run id), or 'missing'."""
    by_id = {r["run_id"]: r for r in reference}
    return [check(r, by_id[r["run_id"]]) if r["run_id"] in by_id
            else Check(_label(r), "missing", detail="no reference record with this run id")
            for r in sorted(ours, key=_label)]


def render(checks: list[Check], reference_name: str) -> str:
    lines = [f"Reproduction against {reference_name} (same run id, same device kind; "
             f"tolerance: baselines {BASELINE_RTOL:g} relative, trained solvers "
             f"{TRAINED_ATOL:g} + {TRAINED_RTOL:g} relative):"]
    width = max((len(c.label) for c in checks), default=10)
    for c in checks:
        extra = "; ".join(x for x in (c.worst, c.detail) if x)
        lines.append(f"  {c.label:<{width}}  {c.verdict:<12} {extra}")
    counts = {v: sum(c.verdict == v for c in checks)
              for v in ("agree", "differ", "other device", "missing")}
    lines.append("verdict: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n) +
                 (" -> REPRODUCED" if counts["agree"] and not counts["differ"] else
                  " -> NOT REPRODUCED" if counts["differ"] else " -> nothing comparable"))
    return "\n".join(lines)
