"""How every report writes a number, a cell, a LaTeX string and a markdown table (one place,
so the tables of all tasks agree)."""

from __future__ import annotations

import math
from collections.abc import Sequence

# A trained cell whose seed mean is above 100% (or not finite) prints ">100", as w2ot's
# analysis script does; a seed that stopped early keeps the metrics of the parameters it
# stopped with and is averaged in. Korotin's table prints the closed-form baselines'
# values ([ID] 121, ...). Unstable seeds (stopped early, or a non-finite training loss)
# are counted beside each cell.
HUGE = 100.0
BUDGET_ORDER = {"smoke": 0, "quick": 1, "paper": 2}


# -- numbers ------------------------------------------------------------------------------------

def number(x: float) -> str:
    """Two decimals below 1, one above (as both papers' tables)."""
    if x == 0 or not math.isfinite(x):
        return f"{x:.1f}"
    return f"{x:.2f}" if abs(x) < 1 else f"{x:.1f}"


def is_huge(mean: float, trained: bool) -> bool:
    """w2ot's rule: a trained cell prints ">100" when its seed mean is above 100 (or is not
    a number at all: a seed whose maps went NaN)."""
    return trained and not (mean <= HUGE)


def cell_text(mean: float, std: float, seeds: int, trained: bool, uvp: bool,
              failed: bool = False) -> str:
    """A table cell: ``mean ± std`` over seeds (the mean alone for one seed), ``>100`` for a
    trained L2-UVP cell above 100, ``failed`` when the solver raised."""
    if failed:  # the solver raised: its record holds the error
        return "failed"
    if uvp and is_huge(mean, trained):
        return ">100"
    return number(mean) if seeds < 2 else f"{number(mean)} ± {number(std)}"


def paper_cell_text(paper) -> str:
    """A paper value as printed: ``[mean]``, ``[mean, std]``, or a text (``>100``)."""
    if isinstance(paper, str):
        return paper
    return cell_text(paper[0], paper[1] if len(paper) > 1 else 0.0,
                     2 if len(paper) > 1 else 1, False, False, False)


def unstable_note(unstable: int) -> str:
    """Beside a cell: how many of its seeds stopped early or saw a non-finite loss."""
    return f" ({int(unstable)} unstable)" if unstable else ""


def sci(x: float | None, digits: int = 2, latex: bool = False) -> str:
    """4.5e-3 style (or LaTeX 4.5\\cdot10^{-3}), as the Meta OT paper prints its seconds."""
    if x is None or not math.isfinite(x):
        return "–"
    if 0.1 <= abs(x) < 100:
        return f"{x:.{digits}g}"
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    exponent = int(exponent)
    return rf"{mantissa}\cdot10^{{{exponent}}}" if latex else f"{mantissa}e{exponent}"


def power_of_ten(x: float) -> str:
    """10^{-2} for 1e-2; other numbers as they are."""
    k = round(math.log10(x))
    return f"10^{{{k}}}" if math.isclose(x, 10.0 ** k) else f"{x:g}"


def pm(mean: float | None, std: float, latex: bool = False) -> str:
    """mean ± std in scientific style (LaTeX math with ``latex``)."""
    if mean is None or not math.isfinite(mean):
        return "–"
    text = f"{sci(mean, latex=latex)} ± {sci(std, latex=latex)}"
    return "$" + text.replace("±", r"\pm") + "$" if latex else text


# -- what a record ran on -------------------------------------------------------------------

def device_text(device: dict | None) -> str:
    """'cpu', 'gpu NVIDIA H200': the platform and the kind of device a record ran on."""
    device = device or {}
    platform, kind = device.get("platform"), device.get("kind")
    if not platform:
        return "device not recorded"
    return platform if kind in (None, "", platform) else f"{platform} {kind}"


def budget_text(budget: dict) -> str:
    """The profile and its --iterations / --eval-every overrides: 'smoke, 400 it'."""
    parts = [budget["profile"]]
    if budget.get("iterations") is not None:
        parts.append(f"{budget['iterations']} it")
    if budget.get("eval_every") is not None:
        parts.append(f"eval every {budget['eval_every']}")
    return ", ".join(parts)


# -- LaTeX ------------------------------------------------------------------------------------

def latex_escape(text: str, *, gt: bool = False, plusminus: bool = False,
                 brackets: bool = False) -> str:
    """``text`` in a LaTeX table: ``_ & %`` escaped; ``gt``: ``>`` as math; ``plusminus``:
    `` ± `` as math; ``brackets``: a leading ``[`` braced (it would be read as the optional
    argument of ``\\midrule`` or ``\\\\``)."""
    s = str(text).replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")
    if gt:
        s = s.replace(">", r"$>$")
    if plusminus:
        s = s.replace(" ± ", r" $\pm$ ")
    return "{" + s + "}" if brackets and s.startswith("[") else s


def tex_number(mean: float, std: float | None) -> str:
    """mean (\\pm std) for LaTeX math mode."""
    return cell_text(mean, std or 0.0, 2 if std is not None else 1, False, False).replace(
        " ± ", r" \pm ")


def tex_cell(text: str) -> str:
    """A number cell (``1.2 ± 0.3``) as math, anything else escaped."""
    if text[:1].isdigit():
        return "$" + text.replace(" ± ", r" \pm ") + "$"
    return latex_escape(text, gt=True, brackets=True)


GENERATED = "% generated by `otarena report` from result records; do not edit"


# -- markdown ---------------------------------------------------------------------------------

def markdown_row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown_table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> list[str]:
    """The lines of a markdown table."""
    return [markdown_row(header), "|---" * len(header) + "|"] + [markdown_row(r) for r in rows]
