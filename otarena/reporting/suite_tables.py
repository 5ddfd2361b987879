"""Suite tables of the map task in the papers' layouts, side by side with the papers' values.

The papers' numbers live in ``otarena/paper_values.json`` with their provenance
(:mod:`otarena.reporting.paper_values`); column titles come from the pair families, row
labels from the solvers, the improvement factor's prior and new rows from the suite. A cell of
a suite table is the mean ± std over seeds of the final L2-UVP of the P -> Q map, measured
at the highest budget present in the records (each cell says which).

A cell averages the seeds of one configuration only. Its records are those of the row's
solver (not a solver of the same name from a user's file) at the highest budget profile
present; runs at the profile's own settings are preferred to runs with --iterations or
--eval-every overrides. If they still differ in anything but the seed (solver config,
overrides, evaluation points, device), the cell is "mixed": not averaged, and the markdown
summary lists each configuration with its seeds and mean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from otarena import pairs as pair_families
from otarena import solver, suites
from otarena.reporting import paper_values
from otarena.reporting.format import (BUDGET_ORDER, GENERATED, cell_text, is_huge,
                                      latex_escape, markdown_table, paper_cell_text, tex_cell,
                                      tex_number, unstable_note)
from otarena.reporting.map_records import differences

def row_name(name: str, reverse: bool) -> str:
    return f"{name}:R" if reverse else name


def row_label(name: str, reverse: bool) -> str:
    label = solver.get(name).label or name
    if reverse:
        label = label[:-1] + ":R]" if label.endswith("]") else label + " (reversed)"
    return label


def selected(df: pd.DataFrame, suite: suites.Suite) -> tuple[pd.DataFrame, list[str]]:
    """The records each cell of the suite table is made of (column ``row``: the suite's row
    name), and notes on the records left out or not averaged."""
    rows = [(n, False) for n in suite.solvers] + [(n, True) for n in suite.reversed_solvers]
    picked, notes = [], []
    for name, reverse in rows:
        for pair in suite.pairs:
            sub = df[(df.solver == row_name(name, reverse)) & (df.pair == pair)]
            if sub.empty:
                continue
            where = f"{row_label(name, reverse)} on {pair}"
            if sub.user_file.any():
                notes.append(f"{where}: {int(sub.user_file.sum())} records of a solver named "
                             f"{name} from a user's file left out")
                sub = sub[~sub.user_file]
            if sub.empty:
                continue
            best = max(sub.budget, key=BUDGET_ORDER.__getitem__)
            sub = sub[sub.budget == best]
            if sub.overridden.any() and not sub.overridden.all():
                notes.append(f"{where}: {int(sub.overridden.sum())} records with --iterations "
                             f"or --eval-every overrides left out (records at the {best} "
                             "profile's own settings are there)")
                sub = sub[~sub.overridden]
            if sub.config.nunique() > 1:
                notes.append(f"{where}: {sub.config.nunique()} configurations, not averaged:")
                texts = differences(sub.drop_duplicates("config"), always=("budget_text",))
                for config, c in sub.groupby("config", sort=False):
                    seeds = sorted(c.seed)
                    shown = cell_text(c.l2_uvp_fwd.mean(), float(np.std(c.l2_uvp_fwd)),
                                             len(c), bool((c.iterations > 0).any()), True,
                                             bool(c.failed.any()))
                    notes.append(f"  - {texts[config]}: {'seed' if len(seeds) == 1 else 'seeds'} "
                                 f"{', '.join(map(str, seeds))}: {shown}")
            picked.append(sub.assign(suite_row=row_name(name, reverse),
                                     suite_label=row_label(name, reverse)))
    if not picked:
        return df.iloc[:0].assign(suite_row="", suite_label=""), notes
    return pd.concat(picked, ignore_index=True), notes


def cells(df: pd.DataFrame, suite: suites.Suite) -> pd.DataFrame:
    """One row per (row, pair) of the suite: mean, std, seeds, budget, device, diverged,
    failed, mixed (more than one configuration: not averaged). See :func:`selected`."""
    chosen, _ = selected(df, suite)
    out = []
    for (row, pair), sub in chosen.groupby(["suite_row", "pair"], sort=False):
        values = sub["l2_uvp_fwd"].to_numpy(float)
        mixed = sub.config.nunique() > 1
        out.append({"row": row, "label": sub.suite_label.iloc[0], "pair": pair,
                    "mean": np.nan if mixed else float(np.mean(values)),
                    "std": np.nan if mixed else float(np.std(values)), "seeds": len(values),
                    "budget": sub.budget.iloc[0],
                    "budget_text": " / ".join(sorted(set(sub.budget_text))),
                    "device": tuple(sorted(set(sub.device))),
                    "eval_size": int(sub.eval_size.iloc[0]),
                    "diverged": bool(sub.diverged.any()), "unstable": int(sub.unstable.sum()),
                    "failed": bool(sub.failed.any()),
                    "mixed": mixed, "trained": bool((sub.iterations > 0).any()),
                    "iterate": " / ".join(sorted(set(sub.reported_iterate))),
                    "final_mean": float(np.mean(sub.l2_uvp_fwd_final))
                    if sub.l2_uvp_fwd_final.notna().all() and not mixed else np.nan})
    return pd.DataFrame(out, columns=["row", "label", "pair", "mean", "std", "seeds", "budget",
                                      "budget_text", "device", "eval_size", "diverged",
                                      "unstable", "failed", "mixed", "trained", "iterate",
                                      "final_mean"])


def _paper_cell(table: dict, row: str, pair: str):
    entry = table["rows"].get(row)
    return None if entry is None else entry["cells"].get(pair)


def _is_huge(c) -> bool:
    return not c.mixed and not c.failed and is_huge(c["mean"], c.trained)


def shown(c) -> bool:
    """A cell with a number of its own (not mixed, failed or >100)."""
    return not (c.mixed or c.failed or _is_huge(c))


def _text(c) -> str | None:
    """'mixed', 'failed' or '>100' for a cell without a number of its own."""
    return "mixed" if c.mixed else "failed" if c.failed else ">100" if _is_huge(c) else None


def _column_title(pair: str) -> str:
    return pair_families.family_of(pair).title(pair)


def latex(df: pd.DataFrame, suite: suites.Suite) -> str:
    """The suite's table in the paper's layout (booktabs)."""
    c = cells(df, suite)
    if c.empty:
        return ""
    pairs = [p for p in suite.pairs if p in set(c.pair)]
    ok = c[c.apply(shown, axis=1)]
    best = ok.loc[ok.groupby("pair")["mean"].idxmin()].set_index("pair")["row"].to_dict() if len(ok) else {}
    mixed = (" A cell marked mixed holds records of more than one configuration, not "
             "averaged (summary.md lists them)." if c.mixed.any() else "")
    lines = [GENERATED,
             r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{suite.reproduces}: L2-UVP (\%) of the $P \to Q$ map, mean $\pm$ std "
             rf"over seeds of the {_iterate_note(c)}; $>$100 marks a seed mean above 100; "
             rf"$^{{n}}$: $n$ unstable seeds (stopped early or a non-finite training loss). "
             rf"Budgets: {_budget_note(c)}. {_device_note(c)}.{mixed}}}",
             rf"\label{{tab:{suite.name}}}",
             rf"\begin{{tabular}}{{l{'c' * len(pairs)}}}", r"\toprule",
             "Row & " + " & ".join(_column_title(p) for p in pairs) + r" \\", r"\midrule"]
    for row, sub in c.groupby("row", sort=False):
        by_pair = sub.set_index("pair")
        texts = []
        for p in pairs:
            if p not in by_pair.index:
                texts.append("--")
                continue
            x = by_pair.loc[p]
            t = (_text(x) or "").replace(">", "$>$") or \
                f"${tex_number(x['mean'], x['std'] if x.seeds > 1 else None)}$"
            t = rf"$\mathbf{{{t.strip('$')}}}$" if best.get(p) == row and t.startswith("$") else t
            texts.append(t + (rf"$^{{{int(x.unstable)}}}$" if x.unstable else ""))
        lines.append(latex_escape(sub.label.iloc[0], gt=True, brackets=True) + " & " + " & ".join(texts) + r" \\")
    factor = improvement_factor(c, suite, pairs)
    if factor:
        lines += [r"\midrule", "Improvement factor over prior work & " +
                  " & ".join(factor.get(p, "--") for p in pairs) + r" \\"]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _iterate_note(c: pd.DataFrame) -> str:
    """Which iterate the cells report: the final one (Amos) or the best checkpoint
    (Korotin's notebooks)."""
    kinds = set(" / ".join(c.iterate).split(" / "))
    if kinds == {"best"}:
        return "best checkpoint (scored every 100 iterations, as Korotin et al.'s notebooks)"
    if kinds == {"final"}:
        return "final iterate"
    return "final iterate (Amos rows) or best checkpoint (Korotin rows)"


def _budget_note(c: pd.DataFrame) -> str:
    counts = c.groupby(["budget", "budget_text"]).size()
    return ", ".join(f"{t} ({n} cells)" for (b, t), n in
                     sorted(counts.items(), key=lambda kv: (BUDGET_ORDER[kv[0][0]], kv[0][1])))


def _device_note(c: pd.DataFrame) -> str:
    counts = c.device.explode().value_counts().sort_index()  # a mixed cell may have several
    if len(counts) == 1:
        return f"Device: {counts.index[0]}"
    return "Devices: " + ", ".join(f"{d} ({n} cells)" for d, n in counts.items())


def improvement_factor(c: pd.DataFrame, suite: suites.Suite, pairs: list[str]) -> dict[str, str]:
    """Best prior number (the suite's published prior-work rows) / best measured new row
    (the suite's new-work rows), per column."""
    if suite.prior_work is None:
        return {}
    table, prior_rows = suite.prior_work
    prior = paper_values.table(table)
    new = c[c.row.isin(suite.new_work)]
    out = {}
    for p in pairs:
        published = [v[0] for r in prior_rows if isinstance(v := _paper_cell(prior, r, p), list)]
        ours = new[(new.pair == p) & new.apply(shown, axis=1)]["mean"] if len(new) else new["mean"]
        if published and len(ours) and ours.min() > 0:
            ratio = min(published) / ours.min()
            out[p] = f"{ratio:.1f}" if ratio >= 0.95 else f"{ratio:.2g}"
    return out


def comparison(df: pd.DataFrame, suite: suites.Suite) -> pd.DataFrame:
    """Each measured cell next to the paper's, with the deviation in paper stds."""
    if not suite.paper_table:
        return pd.DataFrame()
    table = paper_values.table(suite.paper_table)
    rows = []
    for _, x in cells(df, suite).iterrows():
        paper = _paper_cell(table, x.row, x.pair)
        ours = _text(x) or cell_text(x["mean"], x["std"], x.seeds, False, False, False)
        if paper is None:
            shown, deviation = "not in the paper", ""
        elif x.mixed or x.failed:
            shown = paper_cell_text(paper)
            deviation = "not averaged" if x.mixed else "no result"
        elif paper in (">100", "failed"):
            shown = paper
            deviation = "both >100" if _is_huge(x) else "paper >100, ours not"
        else:
            shown = paper_cell_text(paper)
            if _is_huge(x):
                deviation = "ours >100"
            elif len(paper) > 1 and paper[1] > 0:
                deviation = f"{(x['mean'] - paper[0]) / paper[1]:+.1f} std"
            else:
                deviation = f"×{x['mean'] / paper[0]:.2f} (paper has no std)" if paper[0] else ""
        rows.append({"row": x.label, "pair": x.pair, "ours": ours, "paper": shown,
                     "deviation": deviation, "budget": x.budget_text, "seeds": x.seeds})
    return pd.DataFrame(rows)


def latex_comparison(df: pd.DataFrame, suite: suites.Suite) -> str:
    comp = comparison(df, suite)
    if comp.empty:
        return ""
    lines = [GENERATED,
             r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{suite.reproduces}: otarena's cells next to the paper's, with the "
             rf"deviation in units of the paper's std and the budget of each cell. "
             rf"{_device_note(cells(df, suite))}.}}",
             rf"\label{{tab:{suite.name}-vs-paper}}",
             r"\begin{tabular}{llllllr}", r"\toprule",
             r"Row & Pair & otarena & Paper & Deviation & Budget & Seeds \\", r"\midrule"]
    for _, r in comp.iterrows():
        lines.append(" & ".join([latex_escape(r.row, gt=True, brackets=True), r.pair,
                                 tex_cell(r.ours), tex_cell(r.paper),
                                 latex_escape(r.deviation, gt=True, brackets=True).replace(
                                     "×", r"$\times$"), r.budget, str(r.seeds)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def markdown(df: pd.DataFrame, suite: suites.Suite) -> str:
    c = cells(df, suite)
    if c.empty:
        return ""
    pairs = [p for p in suite.pairs if p in set(c.pair)]
    out = [f"## Suite `{suite.name}`: {suite.reproduces}", "",
           f"Budgets: {_budget_note(c)}. {_device_note(c)}. Reversed rows (`:R`) are trained "
           "on the reversed pair and scored on their P → Q map.", ""]
    rows = []
    for row, sub in c.groupby("row", sort=False):
        by_pair = sub.set_index("pair")
        texts = [(_text(by_pair.loc[p]) or
                  cell_text(by_pair.loc[p, "mean"], by_pair.loc[p, "std"],
                            by_pair.loc[p, "seeds"], False, False, False))
                 + unstable_note(by_pair.loc[p, "unstable"])
                 if p in by_pair.index else "–" for p in pairs]
        rows.append([sub.label.iloc[0], *texts])
    out += markdown_table(["row", *pairs], rows)
    _, notes = selected(df, suite)
    if notes:
        out += ["", "Records not averaged into a cell:", ""] + \
            [n if n.startswith("  ") else f"- {n}" for n in notes]
    comp = comparison(df, suite)
    if not comp.empty:
        out += ["", "Against the paper:", ""]
        out += markdown_table(["row", "pair", "otarena", "paper", "deviation", "budget", "seeds"],
                              [[r.row, r.pair, r.ours, r.paper, r.deviation, r.budget, r.seeds]
                               for _, r in comp.iterrows()])
    return "\n".join(out + [""])
