"""The reports of the map task: for each map suite with records, its table in the paper's
layout (``{suite}.tex``) and the comparison with the paper (``{suite}_vs_paper.tex``),
figures (``figures/{suite}_uvp_vs_dim.png``, ``figures/{suite}_curves.png``), per-family
tables (``{family}_l2_uvp_{fwd,inv}.tex``), the runtime table (``runtime.md``), the fidelity
table (``fidelity.md/.tex``) and ``summary.md``.
"""

from __future__ import annotations

from pathlib import Path

from otarena import suites
from otarena.reporting import fidelity, runtime, suite_tables
from otarena.reporting.family_tables import latex, markdown, table
from otarena.reporting.map_records import frame


def write(records: list[dict], out_dir: str | Path, figures: bool = True) -> list[Path]:
    """Write every map report of ``records`` under ``out_dir``; return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = frame(records)
    written, sections = [], []
    for suite in (s for s in suites.SUITES.values() if s.task == "maps"):
        tex = suite_tables.latex(df, suite)
        if not tex:
            continue
        for name, text in ((f"{suite.name}.tex", tex),
                           (f"{suite.name}_vs_paper.tex", suite_tables.latex_comparison(df, suite))):
            if text:
                (out_dir / name).write_text(text)
                written.append(out_dir / name)
        sections.append(suite_tables.markdown(df, suite))
        if figures:
            # matplotlib and seaborn (scipy.stats) take seconds to import: only when drawing,
            # not in every `otarena run`, which prints its table through this package
            from otarena.reporting import figures as figs

            folder = out_dir / "figures"
            for made in (figs.uvp_vs_dimension(df, suite, folder / f"{suite.name}_uvp_vs_dim.png"),
                         figs.training_curves(records, suite, folder / f"{suite.name}_curves.png")):
                if made:
                    written.append(made)
    for family in sorted(set(df.family)):
        for metric in ("l2_uvp_fwd", "l2_uvp_inv"):
            if df[df.family == family][metric].notna().any():
                path = out_dir / f"{family}_{metric}.tex"
                path.write_text(latex(df, family, metric))
                written.append(path)
    runtime_md = runtime.markdown(records)
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


def console(records: list[dict]) -> str:
    """What ``otarena run`` prints after map cells: forward L2-UVP per family."""
    df = frame(records)
    out = []
    for family in sorted(set(df.family)):
        out += [f"L2-UVP fwd (%) on {family}, mean ± std over seeds:",
                table(df, family, "l2_uvp_fwd").to_string()]
    return "\n".join(out)
