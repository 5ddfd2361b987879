"""`otarena compare`: a user's solvers next to baselines on the same cells."""

from __future__ import annotations

from pathlib import Path

from otarena import report


def write(records: list[dict], mine: list[str], against: list[str], pair_names: list[str],
          out: Path) -> list[Path]:
    """``comparison.md``, ``comparison.tex`` (forward L2-UVP, mean ± std over seeds) and a
    figure of L2-UVP per pair; the user's rows first."""
    out.mkdir(parents=True, exist_ok=True)
    df = report.frame(r for r in records if r["pair"] in pair_names)
    # rows by solver (a solver with records of several configurations has a row for each)
    order = [row for n in mine + against for row in sorted(set(df[df.solver == n].row))]
    written = []
    for family in sorted(set(df.family)):
        table = report.table(df, family, "l2_uvp_fwd").reindex(order).fillna("–")
        md = out / "comparison.md"
        md.write_text(f"# Comparison on {family} pairs: L2-UVP fwd (%), mean ± std over seeds\n\n"
                      + "| solver | " + " | ".join(table.columns) + " |\n"
                      + "|---" * (len(table.columns) + 1) + "|\n"
                      + "".join(f"| {s} | " + " | ".join(row) + " |\n" for s, row in table.iterrows()))
        tex = out / "comparison.tex"
        tex.write_text(report.latex(df[df.row.isin(order)], family))
        written += [md, tex, _figure(df, order, out / "comparison.png")]
    return written


def _figure(df, order, path: Path) -> Path:
    from otarena import figures  # noqa: F401  (selects the file-only matplotlib backend)
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7, 4))
    sns.barplot(data=df[df.row.isin(order)], x="pair", y="l2_uvp_fwd", hue="row",
                hue_order=order, errorbar="sd", ax=ax)
    ax.set(yscale="log", ylabel="L2-UVP fwd (%)", title="otarena compare")
    fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path
