"""Seaborn figures of a map suite: L2-UVP against the pairs' axis (the dimension of the HD
pairs), and training curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from otarena import pairs, suites  # noqa: E402
from otarena.reporting import suite_tables  # noqa: E402
from otarena.reporting.map_records import frame  # noqa: E402


def save(fig, path: Path) -> Path:
    """Write a figure with no timestamp in its metadata (same records, same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path


def uvp_vs_dimension(df: pd.DataFrame, suite: suites.Suite, path: Path) -> Path | None:
    """Mean ± std L2-UVP per row against the pair family's axis (log-log); pairs without an
    axis value, and diverged or >100 cells, left out."""
    c = suite_tables.cells(df, suite)
    if len(c):
        axis = c.pair.map(lambda p: pairs.family_of(p).axis_value(p))
        c = c.assign(n=axis)[axis.notna() & c.apply(suite_tables.shown, axis=1)]
    if c.empty:
        return None
    c = c.assign(n=c.n.astype(int))
    axis_label = pairs.family_of(c.pair.iloc[0]).axis[0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, sub in c.groupby("label", sort=False):
        sub = sub.sort_values("n")
        ax.errorbar(sub.n, sub["mean"], yerr=sub["std"], marker="o", capsize=3, label=label)
    ax.set(xscale="log", yscale="log", xlabel=axis_label, ylabel="L2-UVP (%)",
           title=f"{suite.name}: final L2-UVP")
    ax.set_xticks(sorted(set(c.n)), [str(n) for n in sorted(set(c.n))])
    ax.legend(fontsize=7, ncol=2)
    return save(fig, path)


def training_curves(records: list[dict], suite: suites.Suite, path: Path) -> Path | None:
    """Forward L2-UVP during training, one panel per pair, mean over seeds per row: the
    records of the suite table's cells (one configuration per cell)."""
    chosen, _ = suite_tables.selected(frame(records), suite)
    chosen = chosen[chosen.config.groupby([chosen.suite_row, chosen.pair]).transform("nunique") == 1]
    wanted = set(chosen.run_id)
    rows = []
    for r in records:
        if r["run_id"] not in wanted:
            continue
        key = "l2_uvp_fwd"
        for point in r.get("curve", []):
            if key in point:
                rows.append({"pair": r["pair"], "iteration": point["iteration"],
                             "row": suite_tables.row_name(r["solver"], r["reverse"]),
                             "budget": r["budget"]["profile"], "l2_uvp": point[key]})
    if not rows:
        return None
    curves = pd.DataFrame(rows)
    grid = sns.relplot(data=curves, x="iteration", y="l2_uvp", hue="row", col="pair",
                       col_wrap=4, kind="line", errorbar="sd", height=2.6,
                       facet_kws={"sharey": False, "sharex": False})
    grid.set(yscale="log")
    grid.set_axis_labels("iteration", "L2-UVP fwd (%)")
    grid.figure.suptitle(f"{suite.name}: training curves (reversed rows: their own pair's "
                         "forward map)", y=1.02)
    return save(grid.figure, path)
