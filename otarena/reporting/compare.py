"""`otarena compare`: a user's solvers next to baselines on the same cells."""

from __future__ import annotations

from pathlib import Path

from otarena.reporting import family_tables
from otarena.reporting.format import markdown_table
from otarena.reporting.map_records import frame


def write(records: list[dict], mine: list[str], against: list[str], pair_names: list[str],
          out: Path) -> list[Path]:
    """``comparison.md``, ``comparison.tex`` (forward L2-UVP, mean ± std over seeds) and a
    figure of L2-UVP per pair; the user's rows first.

    Args:
        records: map records holding (at least) the compared cells.
        mine: the user's solver names (their rows come first).
        against: the baseline solver names.
        pair_names: the pairs compared (records of other pairs are left out).
        out: the output folder (created if needed).

    Returns:
        The paths written.
    """
    out.mkdir(parents=True, exist_ok=True)
    df = frame(r for r in records if r["pair"] in pair_names)
    # rows by solver (a solver with records of several configurations has a row for each)
    order = [row for n in mine + against for row in sorted(set(df[df.solver == n].row))]
    written = []
    for family in sorted(set(df.family)):
        table = family_tables.table(df, family, "l2_uvp_fwd").reindex(order).fillna("–")
        md = out / "comparison.md"
        lines = markdown_table(["solver", *table.columns], [[s, *row] for s, row in table.iterrows()])
        md.write_text(f"# Comparison on {family} pairs: L2-UVP fwd (%), mean ± std over seeds\n\n"
                      + "".join(line + "\n" for line in lines))
        tex = out / "comparison.tex"
        tex.write_text(family_tables.latex(df[df.row.isin(order)], family))
        written += [md, tex, _figure(df, order, out / "comparison.png")]
    return written


def _figure(df, order, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import seaborn as sns

    from otarena.reporting.figures import save  # also selects the file-only backend

    fig, ax = plt.subplots(figsize=(7, 4))
    sns.barplot(data=df[df.row.isin(order)], x="pair", y="l2_uvp_fwd", hue="row",
                hue_order=order, errorbar="sd", ax=ax)
    ax.set(yscale="log", ylabel="L2-UVP fwd (%)", title="otarena compare")
    return save(fig, path)
