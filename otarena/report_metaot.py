"""Reports of the ``metaot-sinkhorn`` suite: Table 1 (LaTeX), error curves, markdown.

Output depends only on the records (no timestamps), so the same records give the same
bytes (the figures' PNG/PDF metadata dates are switched off).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from otarena.sinkhorn_bench import LABELS, SUITE

# The paper's numbers, as data with their provenance (seconds, mean and std over the 10
# test instances, one NVIDIA Quadro GP100, float64, OTT 0.2.6).
PAPER = {
    "source": "Amos, Cohen, Luise, Redko: Meta Optimal Transport, ICML 2023, Table 1 "
              "(threshold 1e-2) and the appendix sweep over thresholds; identical in the "
              "ICML slides and in paper/meta-ot.tex of facebookresearch/meta-ot "
              "(see ../shared/reference/papers.md, section 3.4)",
    "device": "NVIDIA Quadro GP100",
    "prediction_seconds": 5e-5,  # "Meta OT's initial prediction takes about 5e-5 seconds"
    "ratio": {"mnist": 1.96, "spherical": 11.3},  # t_zeros / t_Meta at 1e-2
    "seconds": {
        "mnist": {
            "zeros": {1e-2: (4.5e-3, 1.5e-3), 1e-3: (7.7e-3, 1.2e-3),
                      1e-4: (1.1e-2, 1.8e-3), 1e-5: (1.5e-2, 2.3e-3)},
            "gaussian": {1e-2: (4.1e-3, 1.2e-3), 1e-3: (7.7e-3, 1.4e-3),
                         1e-4: (1.1e-2, 1.7e-3), 1e-5: (1.4e-2, 2.4e-3)},
            "meta-ot": {1e-2: (2.3e-3, 9.2e-6), 1e-3: (3.9e-3, 1.6e-3),
                        1e-4: (6.7e-3, 1.4e-3), 1e-5: (1.0e-2, 2.4e-3)},
        },
        "spherical": {
            "zeros": {1e-2: (0.88, 0.13), 1e-3: (1.4, 0.19), 1e-4: (2.1, 0.36),
                      1e-5: (2.8, 0.56)},
            "gaussian": {1e-2: (0.56, 9.9e-2), 1e-3: (1.1, 0.20), 1e-4: (1.7, 0.35),
                         1e-5: (2.4, 0.54)},
            "meta-ot": {1e-2: (7.8e-2, 3.4e-2), 1e-3: (0.44, 0.15), 1e-4: (0.97, 0.32),
                        1e-5: (1.7, 0.68)},
        },
    },
}
FAMILIES = {"mnist": "MNIST", "spherical": "Spherical"}
ORDER = ("zeros", "gaussian", "meta-ot", "ott-meta")


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
    return sorted(found, key=lambda s: (list(FAMILIES).index(s[0]) if s[0] in FAMILIES else 99,
                                        s[1] or ""))


def section_title(section: tuple[str, str | None]) -> str:
    family, label = section
    name = FAMILIES.get(family, family)
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


def sci(x: float, digits: int = 2, latex: bool = False) -> str:
    """4.5e-3 style (or LaTeX 4.5\\cdot10^{-3}), as the paper prints its seconds."""
    if x is None or not math.isfinite(x):
        return "–"
    if 0.1 <= abs(x) < 100:
        return f"{x:.{digits}g}"
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    exponent = int(exponent)
    return rf"{mantissa}\cdot10^{{{exponent}}}" if latex else f"{mantissa}e{exponent}"


def _power(x: float) -> str:
    """10^{-2} for 1e-2; other numbers as they are."""
    k = round(math.log10(x))
    return f"10^{{{k}}}" if math.isclose(x, 10.0 ** k) else f"{x:g}"


def pm(mean: float, std: float, latex: bool = False) -> str:
    if mean is None or not math.isfinite(mean):
        return "–"
    text = f"{sci(mean, latex=latex)} ± {sci(std, latex=latex)}"
    return "$" + text.replace("±", r"\pm") + "$" if latex else text


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
FAILED = "diverged"


def _latex_escape(s: str) -> str:
    return s.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


def _section_cells(records: list[dict], threshold: float) -> dict:
    """{section: ({initializer: summary cell}, {initializers whose training diverged})}."""
    out = {}
    for section in sections(records):
        recs = in_section(records, section)
        df = frame(recs)
        cells = summary(df, threshold).get(section[0], {}) if len(df) else {}
        out[section] = (cells, {init for init in ORDER if failed(recs, init)})
    return out


def table1_latex(records: list[dict], threshold: float = 1e-2) -> str:
    """Seconds to reach ``threshold``: otarena next to the paper, per section (booktabs)."""
    records = suite_records(records)
    by_section = _section_cells(records, threshold)
    cols = list(by_section)
    note = provisional_note(records)
    lines = [
        "% generated by `otarena metaot report` from result records; do not edit",
        r"\begin{table}[t]", r"\centering",
        rf"\caption{{Sinkhorn runtime (seconds) to reach a marginal error of ${_power(threshold)}$, "
        r"mean $\pm$ std over the test instances: otarena ("
        + _latex_escape(_context(frame(records))) + r") next to the paper (one Quadro GP100). "
        r"Absolute times depend on the device; compare the ratios."
        + (" " + _latex_escape(note) if note else "") + "}",
        rf"\begin{{tabular}}{{l{'rr' * len(cols)}}}", r"\toprule",
        " & " + " & ".join(rf"\multicolumn{{2}}{{c}}{{{_latex_escape(section_title(c))}}}"
                           for c in cols) + r" \\",
        "".join(rf"\cmidrule(lr){{{2 + 2 * i}-{3 + 2 * i}}}" for i in range(len(cols))),
        "Initialization & " + " & ".join(["otarena & paper"] * len(cols)) + r" \\",
        r"\midrule",
    ]
    for init in ORDER:
        if not any(init in cells or init in fails for cells, fails in by_section.values()):
            continue
        row = [_latex_escape(LABELS[init])]
        for (family, _), (cells, fails) in by_section.items():
            c = cells.get(init)
            row.append(rf"\emph{{{FAILED}}}" if init in fails else
                       pm(*c["seconds"], latex=True) if c else "–")
            paper = PAPER["seconds"].get(family, {}).get(init, {}).get(threshold)
            row.append(pm(*paper, latex=True) if paper else "–")
        lines.append(" & ".join(row) + r" \\")
    lines.append(r"\midrule")
    row = [r"Improvement ($t_{\mathrm{zeros}}/t_{\mathrm{Meta}}$)"]
    for (family, _), (cells, _) in by_section.items():
        r = ratio(cells)
        row.append(f"{r:.2f}" if r else "–")
        row.append(f"{PAPER['ratio'][family]:.3g}"
                   if threshold == 1e-2 and family in PAPER["ratio"] else "–")
    lines.append(" & ".join(row) + r" \\")
    if any(ratio(cells, what="algorithm") for cells, _ in by_section.values()):
        row = [r"\quad counting the algorithm's work only"]
        for cells, _ in by_section.values():
            r = ratio(cells, what="algorithm")
            row += [f"{r:.2f}" if r else "–", "–"]
        lines.append(" & ".join(row) + r" \\")
    row = [r"Iterations, zeros / Meta OT"]
    for cells, _ in by_section.values():
        r = ratio(cells, what="iterations")
        row += [f"{r:.2f}" if r else "–", "–"]
    lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _unconverged(cell: dict) -> str:
    """' (k not converged)' when k solves stopped without reaching the threshold."""
    return f" ({cell['unconverged']} not converged)" if cell["unconverged"] else ""


def sweep_markdown(df: pd.DataFrame, family: str, fails: set = frozenset()) -> list[str]:
    thresholds = sorted(set(df[df.family == family].threshold), reverse=True)
    out = ["| initialization | " + " | ".join(f"{t:g} (s)" for t in thresholds)
           + " | " + " | ".join(f"{t:g} (iterations)" for t in thresholds) + " |",
           "|---" * (1 + 2 * len(thresholds)) + "|"]
    for init in ORDER:
        cells = [summary(df[df.family == family], t).get(family, {}).get(init) for t in thresholds]
        if init in fails:
            out.append(f"| {LABELS[init]} | " + " | ".join([FAILED] * 2 * len(thresholds)) + " |")
        elif any(cells):
            secs = [pm(*c["seconds"]) if c else "–" for c in cells]
            its = [f"{c['iterations'][0]:.1f} ± {c['iterations'][1]:.1f}{_unconverged(c)}"
                   if c else "–" for c in cells]
            out.append(f"| {LABELS[init]} | " + " | ".join(secs + its) + " |")
        else:
            continue
        paper = PAPER["seconds"].get(family, {}).get(init)
        if paper:
            out.append(f"| {LABELS[init]} (paper, GP100) | "
                       + " | ".join(pm(*paper[t]) if t in paper else "–" for t in thresholds)
                       + " |" + " |" * len(thresholds))
    return out


def time_split_markdown(cells: dict, tau: float) -> list[str]:
    """Where the wall clock of a solve goes, per initializer (from the cost models)."""
    split = {init: cells[init]["cost"] for init in ORDER if init in cells and cells[init]["cost"]}
    if not split:
        return []
    out = ["", f"Where the time of a solve to {tau:g} goes (seconds; from solves of fixed "
           "length, the fastest of every instance and round, see `cost_model` in the "
           "records): the call alone, the initialization's own work, the iterations at the "
           "fitted cost per iteration, and the fixed cost of a solve (the fit's intercept: "
           "call, initialization, loop set-up and output). The wall clock is the mean over "
           "instances of the median of repeats, so it carries the machine's noise, which the "
           "split does not.", "",
           "| initialization | wall clock | call | initialization | per iteration | "
           "iterations × per iteration | fixed cost | share iterating |",
           "|---|---|---|---|---|---|---|---|"]
    for init, c in split.items():
        wall = cells[init]["seconds"][0]
        out.append(f"| {LABELS[init]} | {sci(wall)} | {sci(c['call'])} | "
                   f"{sci(c['initialization'])} | {sci(c['per_iteration'])} | "
                   f"{sci(c['iterating'])} | {sci(c['fixed'])} | "
                   f"{100 * c['iterating'] / wall:.0f}% |")
    r = ratio(cells, what="algorithm")
    if r:
        meta = cells["meta-ot"]
        fixed_share = max(meta["cost"]["fixed"], 0.0) / meta["seconds"][0]
        out += ["", f"Wall ratio vs algorithm-only ratio (t_zeros / t_Meta at {tau:g}): "
                f"**{ratio(cells):.2f}** vs **{r:.2f}** (algorithm only: initialization + "
                f"iterations); the fixed cost is {100 * fixed_share:.0f}% of a Meta OT solve."]
    return out


def curves_frame(records: Iterable[dict]) -> pd.DataFrame:
    rows = []
    for r in suite_records(records):
        for k, errors in enumerate((r["curve"] or {}).get("errors", [])):
            for it, e in enumerate(errors, start=1):
                rows.append({"family": r["family"], "initializer": LABELS[r["initializer"]],
                             "seed": r["seed"], "instance": k, "iteration": it, "error": e})
    return pd.DataFrame(rows)


def curve_figure(records: list[dict], title: str, path: Path) -> list[Path]:
    """Marginal error vs Sinkhorn iterations, mean ± std band per initializer (seaborn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    df = curves_frame(records)
    order = [LABELS[i] for i in ORDER if LABELS[i] in set(df.initializer)]
    fig, ax = plt.subplots(figsize=(4.5, 2.8), dpi=150)
    sns.lineplot(data=df, x="iteration", y="error", hue="initializer", hue_order=order,
                 errorbar="sd", ax=ax)
    ax.set_xlabel("Sinkhorn iterations")
    ax.set_ylabel("Marginal error")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.legend(title=None, fontsize=7)
    ax.set_xlim(1, int(df.iteration.max()))
    fig.tight_layout()
    written = []
    for suffix, meta in ((".pdf", {"CreationDate": None}), (".png", {})):
        target = path.with_suffix(suffix)
        fig.savefig(target, metadata=meta)
        written.append(target)
    plt.close(fig)
    return written


def markdown(records: list[dict]) -> str:
    records = suite_records(records)
    all_sections = sections(records)
    note = provisional_note(records)
    out = ["## Meta OT: Sinkhorn initializers (`metaot-sinkhorn`)", "",
           "Time for OTT-JAX's log-domain Sinkhorn to reach a marginal error of 1e-2 from each "
           "initialization, mean ± std over the test instances (Table 1 of Amos et al., "
           f"ICML 2023). Measured with: {_context(frame(records))}. The paper's numbers come "
           f"from one {PAPER['device']}; absolute seconds depend on the device, so compare "
           "ratios. Iteration counts are device-independent (multiples of 10: the error is "
           "checked every 10 iterations, as in the paper). A learned initializer whose "
           f"training diverged keeps its row, printed `{FAILED}`.", ""]
    if note:
        out += [f"**{note}**", ""]
    for section in all_sections:
        family = section[0]
        recs = in_section(records, section)
        df = frame(recs)
        fails = {init for init in ORDER if failed(recs, init)}
        # Table 1's threshold, or the loosest one timed (a smoke run may stop before 1e-2)
        timed = set(df.threshold)
        tau = 1e-2 if not timed or any(np.isclose(t, 1e-2) for t in timed) else max(timed)
        c = summary(df, tau).get(family, {}) if len(df) else {}
        r_t, r_i = ratio(c), ratio(c, what="iterations")
        detail = "; ".join(p for p in (section[1], _context(df) if len(df) else None) if p)
        out += [f"### {FAMILIES.get(family, family)}" + (f" ({detail})" if detail else ""), "",
                f"| initialization | seconds to {tau:g} | paper (GP100) | iterations | "
                "instances/s (one at a time) | instances/s (vmapped batch) |",
                "|---|---|---|---|---|---|"]
        for init in ORDER:
            paper = PAPER["seconds"].get(family, {}).get(init, {}).get(tau)
            paper = pm(*paper) if paper else "–"
            if init in fails:
                out.append(f"| {LABELS[init]} | {FAILED} | {paper} | – | – | – |")
            elif init in c:
                batched = c[init]["batched_throughput"]
                out.append(f"| {LABELS[init]} | {pm(*c[init]['seconds'])} | {paper} | "
                           f"{c[init]['iterations'][0]:.1f} ± {c[init]['iterations'][1]:.1f}"
                           f"{_unconverged(c[init])} | "
                           f"{c[init]['per_instance_throughput']:.3g} | "
                           f"{'–' if batched is None else f'{batched:.3g}'} |")
        paper_ratio = f" (paper {PAPER['ratio'][family]})" \
            if np.isclose(tau, 1e-2) and family in PAPER["ratio"] else ""
        out += ["", f"At {tau:g}: t_zeros / t_Meta: **{r_t:.2f}**{paper_ratio}; "
                f"iterations zeros / Meta OT: **{r_i:.2f}**." if r_t else
                "Meta OT or zeros missing: no ratio.", ""]
        for init in ("meta-ot", "ott-meta"):
            if init in c and c[init]["prediction"]:
                mean, std = c[init]["prediction"]
                out.append(f"{LABELS[init]} prediction alone (the MLP forward, its own jitted "
                           f"call returning f): {pm(mean, std)} s (paper: about "
                           f"{PAPER['prediction_seconds']:g} s).")
        for init in ORDER:
            for r in failed(recs, init):
                out.append(f"{LABELS[init]} (seed {r['seed']}): training diverged "
                           f"(non-finite loss by iteration {r['training']['diverged_at']} of "
                           f"{r['training']['config']['iterations']}, "
                           f"{r['training']['config']['dtype']}); no timings.")
        out += time_split_markdown(c, tau)
        if len(df):
            out += ["", "Threshold sweep (the paper's appendix):", ""]
            out += sweep_markdown(df, family, fails)
            out += ["", f"![marginal error, {section_title(section)}]"
                    f"(metaot_errors_{section_slug(section, all_sections)}.png)"]
        out.append("")
    return "\n".join(out)


def write(records: list[dict], out_dir: str | Path) -> list[Path]:
    """``metaot_table1.tex``, ``metaot_errors_{section}.pdf/.png``, ``metaot.md``."""
    records = suite_records(records)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not records:
        return []
    written = []
    path = out_dir / "metaot_table1.tex"
    path.write_text(table1_latex(records, 1e-2))
    written.append(path)
    all_sections = sections(records)
    for section in all_sections:
        recs = [r for r in in_section(records, section) if r["curve"]]
        if recs:
            written += curve_figure(recs, section_title(section),
                                    out_dir / f"metaot_errors_{section_slug(section, all_sections)}")
    path = out_dir / "metaot.md"
    path.write_text(markdown(records) + "\n")
    written.append(path)
    return written
