"""Map-task records as a data frame: one row per record, and what tells the configurations
of a solver apart (cells average the seeds of one configuration only)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from otarena import metrics, pairs
from otarena.errors import warn
from otarena.provenance import device_text
from otarena.reporting.format import budget_text
from otarena.store import run_id

METRICS = metrics.NAMES  # column -> title


def configuration(r: dict) -> str:
    """What records must share to be seeds of one cell: the run identity without the seed
    and the pair (what the run id hashes besides them), and the device it ran on."""
    device = r.get("device") or {}
    return run_id({"schema": r.get("schema"), "reverse": r["reverse"], "solver": r["solver"],
                   "solver_config": r.get("solver_config"), "budget": r["budget"],
                   "eval": r["eval"], "device": [device.get("platform"), device.get("kind")]})


def _source_text(r: dict) -> str:
    config = r.get("solver_config") or {}
    if config.get("source_sha256"):  # a solver from a user's file (otarena compare)
        return f"file {config['source_sha256'][:8]}"
    return f"config {run_id(config)[:6]}"


def frame(records: Iterable[dict]) -> pd.DataFrame:
    """One row per record with the fields the tables need.

    Metrics are those of the named pair's direction: for a run on a reversed pair (":R"
    rows) "fwd" is its inverse map, which sends P to Q. ``row`` is the solver's name, with
    what tells its configurations apart when the records hold more than one (a budget
    override, the evaluation size, the device, the solver's config or file): those are
    separate rows, never averaged together.
    """
    rows = []
    for r in records:
        if not _is_result(r):
            continue
        fam = pairs.family_of(r["pair"]).family
        row = {"family": fam, "pair": r["pair"], "reverse": r["reverse"],
               "solver": r["solver"] + (":R" if r["reverse"] else ""),
               "label": r.get("solver_label", ""), "seed": r["seed"],
               "budget": r["budget"]["profile"], "iterations": r.get("iterations", 0),
               "eval_size": r["eval"]["size"], "diverged": r["status"] == "diverged",
               "unstable": r["status"] == "diverged" or
               bool((r.get("solver_info") or {}).get("nonfinite_loss_seen")),
               "failed": r["status"] == "failed", "run_id": r["run_id"],
               "config": configuration(r), "budget_text": budget_text(r["budget"]),
               "overridden": any(r["budget"].get(k) is not None for k in ("iterations", "eval_every")),
               "device": device_text(r.get("device")), "source": _source_text(r),
               "user_file": bool((r.get("solver_config") or {}).get("source_sha256"))}
        scores = r["metrics"]
        if r["reverse"]:  # a reversed run's P -> Q map is its inverse map
            scores = {m.replace("_inv", "_tmp").replace("_fwd", "_inv").replace("_tmp", "_fwd"): v
                      for m, v in scores.items()}
        row.update({m: np.nan if scores.get(m) is None else scores[m] for m in METRICS})
        final = (r.get("metrics_by_iterate") or {}).get("final", {})
        final_fwd = final.get("l2_uvp_inv" if r["reverse"] else "l2_uvp_fwd")
        row["l2_uvp_fwd_final"] = np.nan if final_fwd is None else final_fwd
        row["reported_iterate"] = r.get("reported_iterate", "final")
        rows.append(row)
    columns = ["family", "pair", "reverse", "solver", "label", "seed", "budget", "iterations",
               "eval_size", "diverged", "unstable", "failed", "run_id", "config", "budget_text",
               "overridden", "device", "source", "user_file", *METRICS, "l2_uvp_fwd_final",
               "reported_iterate"]
    df = pd.DataFrame(rows, columns=columns)
    df = df.astype({m: float for m in (*METRICS, "l2_uvp_fwd_final")})
    df["row"] = _row_names(df)
    return df.sort_values(["family", "solver", "pair", "seed"], kind="stable", ignore_index=True)


REQUIRED = ("pair", "reverse", "solver", "seed", "budget", "eval", "status", "metrics")


def _is_result(r: dict) -> bool:
    """A dual-solver result record; anything else is named once and left out."""
    missing = [k for k in REQUIRED if k not in r]
    if missing:
        warn(f"record {r.get('run_id')} has no {', '.join(missing)}: not a result record; left out")
        return False
    return True


def _row_names(df: pd.DataFrame) -> list[str]:
    """The solver's name, or with what differs between its configurations in ``df``."""
    names = {}
    for solver, sub in df.groupby("solver", sort=False):
        configs = sub.drop_duplicates("config")
        if len(configs) == 1:
            names[configs.config.iloc[0]] = solver
            continue
        for config, text in differences(configs).items():
            names[config] = f"{solver} ({text or config[:6]})"
        if len({names[c] for c in configs.config}) < len(configs):  # differ elsewhere
            for c in configs.config:
                names[c] = f"{names[c][:-1]}; {c[:6]})" if names[c].endswith(")") else f"{names[c]} ({c[:6]})"
    return [names[c] for c in df.config]


def differences(configs: pd.DataFrame, always: tuple[str, ...] = ()) -> dict[str, str]:
    """config -> what tells it apart from the others in ``configs`` (one record each):
    its budget, evaluation points, device or solver config, where they differ."""
    shown = [f for f in ("budget_text", "eval_size", "device", "source")
             if f in always or configs[f].nunique() > 1]
    return {c.config: "; ".join(f"{c.eval_size} points" if f == "eval_size" else str(c[f])
                                for f in shown)
            for _, c in configs.iterrows()}


def summarize(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """mean, std (ddof=0 as numpy), seeds and budgets per (family, row, pair): the seeds of
    one configuration (see :func:`frame`)."""
    grouped = df.groupby(["family", "row", "pair"], sort=False)
    out = grouped[metric].agg(["mean", lambda s: float(np.std(s)), "count"])
    out.columns = ["mean", "std", "seeds"]
    out["seeds"] = grouped.size()  # a failed record counts, though it has no number
    out["diverged"] = grouped["diverged"].any()
    out["unstable"] = grouped["unstable"].sum()
    out["failed"] = grouped["failed"].any()
    out["trained"] = grouped["iterations"].max() > 0
    out["budgets"] = grouped["budget"].agg(lambda s: "/".join(sorted(set(s))))
    return out.reset_index()

