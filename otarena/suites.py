"""Named matrices of cells, one per paper table.

A suite is pairs x solvers x seeds (seeds depend on the budget: the papers' 10 seeds at
``paper``, fewer below), plus solvers run on the reversed pairs. ``otarena run --suite``
runs one; ``--pairs``/``--solvers``/``--seeds`` narrow it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from otarena import matrix
from otarena.errors import UnknownNameError

HD_PAIRS = tuple(f"hd-{d}" for d in (2, 4, 8, 16, 32, 64, 128, 256))
AMOS_SEEDS = {"smoke": (0,), "quick": (0, 1, 2), "paper": tuple(range(10))}
ONE_RUN = {"smoke": (0,), "quick": (0,), "paper": (0,)}  # Korotin et al.: one run per cell
CELEBA_PAIRS = ("celeba64-early", "celeba64-mid", "celeba64-late")
CONV_ROWS = matrix.paper_row_names("conv")


@dataclass(frozen=True)
class Suite:
    name: str
    reproduces: str  # the paper table
    paper_table: str | None  # key of otarena/paper_values.json
    pairs: tuple[str, ...]
    solvers: tuple[str, ...]
    seeds: Mapping[str, tuple[int, ...]]
    reversed_solvers: tuple[str, ...] = ()  # also run on reverse=True pairs (":R" rows)
    notes: str = ""
    # Evaluation points of the suite's cells (--eval-size overrides): w2ot scores the HD maps
    # on 2^14 points; Korotin et al.'s notebooks and both papers' image runs on 4096.
    eval_size: int = 4096
    # A suite that is not pairs x solvers runs through its own entry point:
    # "metaot" = otarena.sinkhorn_bench.run_suite (families as pairs, initializers as solvers).
    delegate: str | None = None

    def size(self, profile: str) -> int:
        return len(self.pairs) * (len(self.solvers) + len(self.reversed_solvers)) * len(self.seeds[profile])


SUITES = {s.name: s for s in [
    Suite("hd-icnn", "Amos 2023, HD table, ICNN potential (8 rows)", "amos2023-hd-icnn", HD_PAIRS,
          matrix.paper_row_names("icnn") + ("ott-w2neuraldual",), AMOS_SEEDS,
          notes="ott-w2neuraldual is a peer row: OTT-JAX's packaging of the method",
          eval_size=2**14),
    Suite("hd-mlp", "Amos 2023, HD table, MLP potential (8 rows)", "amos2023-hd-mlp", HD_PAIRS,
          matrix.paper_row_names("mlp"), AMOS_SEEDS, eval_size=2**14),
    Suite("hd-baselines", "Korotin et al. 2021, HD table: [W2], [MMv1], [MMv2], [MM], their "
          "reversed runs, [L], [C], [ID]", "korotin2021-hd", HD_PAIRS,
          ("W2", "MMv1", "MMv2", "MM", "linear", "constant", "identity"), ONE_RUN,
          reversed_solvers=("W2", "MMv2", "MM")),
    Suite("celeba64", "Amos 2023 / Korotin et al. 2021, CelebA64 table (Early/Mid/Late)",
          "celeba64", CELEBA_PAIRS, CONV_ROWS + ("W2-images", "MM-images", "MM-R-images"),
          AMOS_SEEDS, notes="needs the official CelebA64 files (otarena data fetch celeba64)"),
    Suite("mnist64-w2gn", "otarena's offline image pairs (MNIST digits, CelebA64 recipe), "
          "the celeba64 rows", None, tuple(f"mnist64-w2gn-{l}" for l in ("early", "mid", "late")),
          CONV_ROWS + ("W2-images", "MM-images", "MM-R-images"), AMOS_SEEDS,
          notes="not CelebA64: built by `otarena build-image-pair mnist64-w2gn`"),
    Suite("metaot-sinkhorn", "Meta OT (Amos et al. 2023), Table 1: Sinkhorn time to marginal "
          "error 1e-2 by initialization, MNIST and spherical", None, ("mnist", "spherical"),
          ("zeros", "gaussian", "meta-ot", "ott-meta"),
          {"smoke": (0,), "quick": (0,), "paper": (0,)}, delegate="metaot",
          notes="one trained model per seed for the learned initializers"),
]}


def get(name: str) -> Suite:
    if name not in SUITES:
        raise UnknownNameError(f"unknown suite {name!r}; `otarena list suites` shows "
                               f"{', '.join(SUITES)}")
    return SUITES[name]
