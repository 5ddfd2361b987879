"""Tables from result records: LaTeX (booktabs) and a markdown summary under ``reports/``.

Output depends only on the records (no timestamps), so regenerating a report from the
same records gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from otarena import pairs
from otarena.provenance import device_text
from otarena.store import run_id

METRICS = {
    "l2_uvp_fwd": "L2-UVP fwd (%)",
    "cos_fwd": "cos fwd",
    "l2_uvp_inv": "L2-UVP inv (%)",
    "cos_inv": "cos inv",
}
# A trained cell whose seed mean is above 100% (or not finite) prints ">100", as w2ot's
# analysis script does; a seed that stopped early keeps the metrics of the parameters it
# stopped with and is averaged in. Korotin's table prints the closed-form baselines'
# values ([ID] 121, ...). Unstable seeds (stopped early, or a non-finite training loss)
# are counted beside each cell.
HUGE = 100.0


BUDGET_ORDER = {"smoke": 0, "quick": 1, "paper": 2}


def budget_text(budget: dict) -> str:
    """The profile and its --iterations / --eval-every overrides: 'smoke, 400 it'."""
    parts = [budget["profile"]]
    if budget.get("iterations") is not None:
        parts.append(f"{budget['iterations']} it")
    if budget.get("eval_every") is not None:
        parts.append(f"eval every {budget['eval_every']}")
    return ", ".join(parts)


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
    from otarena.errors import warn

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


def _number(x: float) -> str:
    if x == 0 or not math.isfinite(x):
        return f"{x:.1f}"
    return f"{x:.2f}" if abs(x) < 1 else f"{x:.1f}"


def is_huge(mean: float, trained: bool) -> bool:
    """w2ot's rule: a trained cell prints ">100" when its seed mean is above 100 (or is not
    a number at all: a seed whose maps went NaN)."""
    return trained and not (mean <= HUGE)


def cell_text(mean: float, std: float, seeds: int, trained: bool, uvp: bool,
              failed: bool = False) -> str:
    if failed:  # the solver raised: its record holds the error
        return "failed"
    if uvp and is_huge(mean, trained):
        return ">100"
    return _number(mean) if seeds < 2 else f"{_number(mean)} ± {_number(std)}"


def unstable_note(unstable: int) -> str:
    """Beside a cell: how many of its seeds stopped early or saw a non-finite loss."""
    return f" ({int(unstable)} unstable)" if unstable else ""


def _column_order(family: str, present: set[str]) -> list[str]:
    order = [n for n in pairs.families()[family].names if n in present]
    return order + sorted(present - set(order))


def _column_title(pair: str) -> str:
    return pair.split("-", 1)[1] if pair.startswith("hd-") else pair


def table(df: pd.DataFrame, family: str, metric: str) -> pd.DataFrame:
    """Rows: solvers; columns: pairs of the family; cells: formatted mean ± std."""
    s = summarize(df[df.family == family], metric)
    uvp = metric.startswith("l2_uvp")
    s["text"] = [cell_text(m, sd, n, t, uvp, f) + (unstable_note(u) if uvp else "")
                 for m, sd, n, t, f, u in zip(s["mean"], s["std"], s["seeds"], s["trained"],
                                              s["failed"], s["unstable"])]
    wide = s.pivot(index="row", columns="pair", values="text")
    wide = wide[_column_order(family, set(s.pair))].fillna("–")
    wide.index.name = "solver"
    return wide


def _best(df: pd.DataFrame, family: str, metric: str) -> dict[str, str]:
    """The best solver per column (lowest finite mean L2-UVP, not diverged)."""
    s = summarize(df[df.family == family], metric)
    s = s[~s.failed & np.isfinite(s["mean"]) & ~(s.trained & (s["mean"] > HUGE))]
    return {p: g.loc[g["mean"].idxmin(), "row"] for p, g in s.groupby("pair")} if len(s) else {}


def latex(df: pd.DataFrame, family: str, metric: str = "l2_uvp_fwd") -> str:
    wide = table(df, family, metric)
    best = _best(df, family, metric) if metric.startswith("l2_uvp") else {}
    budgets = sorted(set(df[df.family == family].budget))
    devices = sorted(set(df[df.family == family].device))
    cols = list(wide.columns)
    title = METRICS[metric].replace("%", r"\%")
    lines = [
        "% generated by `otarena report` from result records; do not edit",
        r"\begin{table}[t]", r"\centering",
        rf"\caption{{{title} on the {family} pairs, "
        rf"mean $\pm$ std over seeds (budget: {', '.join(budgets)}; "
        rf"{'device' if len(devices) == 1 else 'devices'}: {_latex_escape(', '.join(devices))}).}}",
        rf"\begin{{tabular}}{{l{'r' * len(cols)}}}", r"\toprule",
        "Solver & " + " & ".join(_column_title(c) for c in cols) + r" \\", r"\midrule",
    ]
    for solver, row in wide.iterrows():
        texts = []
        for c in cols:
            t = row[c].replace("±", r"$\pm$").replace(">100", r"$>$100")
            texts.append(rf"\textbf{{{t}}}" if best.get(c) == solver else t)
        lines.append(_latex_escape(solver) + " & " + " & ".join(texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _latex_escape(s: str) -> str:
    return s.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


def markdown(df: pd.DataFrame) -> str:
    out = ["# otarena results", "",
           "Generated by `otarena report` from the result records. Cells: mean ± std over "
           "seeds; `>100` marks a trained solver whose seed mean is above 100% (w2ot's rule); "
           "`(n unstable)`: n seeds stopped early or saw a non-finite training loss.", ""]
    for family in sorted(set(df.family)):
        sub = df[df.family == family]
        budgets = ", ".join(f"{b} ({n} records)" for b, n in sub.budget.value_counts().sort_index().items())
        devices = ", ".join(f"{d} ({n} records)" for d, n in sub.device.value_counts().sort_index().items())
        out += [f"## {family}", "", f"Budgets: {budgets}. Evaluation points: "
                f"{', '.join(str(s) for s in sorted(set(sub.eval_size)))}. "
                f"{'Device' if sub.device.nunique() == 1 else 'Devices'}: {devices}.", ""]
        for metric, title in METRICS.items():
            if sub[metric].isna().all():
                continue
            wide = table(df, family, metric)
            out += [f"### {title}", "", "| solver | " + " | ".join(_column_title(c) for c in wide.columns) + " |",
                    "|---" * (len(wide.columns) + 1) + "|"]
            out += [f"| {solver} | " + " | ".join(row) + " |" for solver, row in wide.iterrows()]
            out.append("")
    return "\n".join(out)


def write_all(records: list[dict], out_dir: str | Path, figures: bool = True) -> list[Path]:
    """Every report of a store: the dual-solver tables here, suite records (Meta OT) by
    their suite's report."""
    plain = [r for r in records if r.get("suite") is None]
    paths = write(plain, out_dir, figures=figures) if plain else []
    if len(plain) < len(records):
        from otarena import report_metaot
        paths += report_metaot.write(records, out_dir)
    return paths


def write(records: list[dict], out_dir: str | Path, figures: bool = True) -> list[Path]:
    """Write the suite tables in the papers' layouts (``{suite}.tex``), their comparison
    with the papers (``{suite}_vs_paper.tex``), per-family tables, figures and
    ``summary.md``; return the paths written."""
    from otarena import figures as figs
    from otarena import paper_tables, suites

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = frame(records)
    written, sections = [], []
    for suite in suites.SUITES.values():
        table = paper_tables.latex(df, suite)
        if not table:
            continue
        for name, text in ((f"{suite.name}.tex", table),
                           (f"{suite.name}_vs_paper.tex", paper_tables.latex_comparison(df, suite))):
            if text:
                (out_dir / name).write_text(text)
                written.append(out_dir / name)
        sections.append(paper_tables.markdown(df, suite))
        if figures:
            for made in (figs.uvp_vs_dimension(df, suite, out_dir / "figures" / f"{suite.name}_uvp_vs_dim.png"),
                         figs.training_curves(records, suite, out_dir / "figures" / f"{suite.name}_curves.png")):
                if made:
                    written.append(made)
    for family in sorted(set(df.family)):
        for metric in ("l2_uvp_fwd", "l2_uvp_inv"):
            if df[df.family == family][metric].notna().any():
                path = out_dir / f"{family}_{metric}.tex"
                path.write_text(latex(df, family, metric))
                written.append(path)
    from otarena import fidelity, runtime_report

    runtime_md = runtime_report.markdown(records)
    if runtime_md:
        (out_dir / "runtime.md").write_text(runtime_md)
        written.append(out_dir / "runtime.md")
    fidelity_md = fidelity.markdown(df)
    if fidelity_md:
        for name, text in (("fidelity.md", fidelity_md), ("fidelity.tex", fidelity.latex(df))):
            (out_dir / name).write_text(text)
            written.append(out_dir / name)
    path = out_dir / "summary.md"
    path.write_text(markdown(df) + "\n" + "\n".join(sections) + "\n" + fidelity_md
                    + ("\n" + runtime_md if runtime_md else ""))
    written.append(path)
    return written
