"""Named matrices of cells, one per paper table.

A suite is pairs x solvers x seeds of one task (seeds depend on the budget: the papers' 10
seeds at ``paper``, fewer below), plus solvers run on the reversed pairs. ``otarena run
--suite`` runs one; ``--pairs``/``--solvers``/``--seeds`` narrow it. A suite also says how
its table is reported: the papers' values it is compared with (``paper_table``, a key of
``otarena/paper_values.json``), and for the improvement factor which published rows are
prior work and which rows are the new work.

For the Sinkhorn suite, pairs are problem families (every registered one) and solvers are
initializers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from otarena import matrix
from otarena.errors import UnknownNameError
from otarena.sinkhorn import config as sinkhorn_config
from otarena.sinkhorn import family as sinkhorn_family

HD_PAIRS = tuple(f"hd-{d}" for d in (2, 4, 8, 16, 32, 64, 128, 256))
AMOS_SEEDS = {"smoke": (0,), "quick": (0, 1, 2), "paper": tuple(range(10))}
ONE_RUN = {"smoke": (0,), "quick": (0,), "paper": (0,)}  # Korotin et al.: one run per cell
CELEBA_PAIRS = ("celeba64-early", "celeba64-mid", "celeba64-late")
CONV_ROWS = matrix.paper_row_names("conv")
KOROTIN_HD_ROWS = ("W2", "MMv1", "MMv2", "MM")
KOROTIN_IMAGE_ROWS = ("W2-images", "MM-images", "MM-R-images")


@dataclass(frozen=True)
class Suite:
    name: str
    reproduces: str  # the paper table
    paper_table: str | None  # key of otarena/paper_values.json
    pair_names: tuple[str, ...] | Callable[[], tuple[str, ...]]  # or resolved when asked
    solvers: tuple[str, ...]
    seeds: Mapping[str, tuple[int, ...]]
    reversed_solvers: tuple[str, ...] = ()  # also run on reverse=True pairs (":R" rows)
    notes: str = ""
    # Evaluation points of the suite's cells (--eval-size overrides): w2ot scores the HD maps
    # on 2^14 points; Korotin et al.'s notebooks and both papers' image runs on 4096.
    eval_size: int = 4096
    task: str = "maps"  # the kind of its cells (otarena.tasks)
    # The improvement factor (Amos 2023): best published number of the prior work's rows of
    # a paper table / best measured number of the new rows, per column.
    prior_work: tuple[str, tuple[str, ...]] | None = None
    new_work: tuple[str, ...] = ()

    @property
    def pairs(self) -> tuple[str, ...]:
        return self.pair_names() if callable(self.pair_names) else self.pair_names

    def size(self, profile: str) -> int:
        return len(self.pairs) * (len(self.solvers) + len(self.reversed_solvers)) * len(self.seeds[profile])


def _sinkhorn_families() -> tuple[str, ...]:
    return tuple(sinkhorn_family.registered())


SUITES = {s.name: s for s in [
    Suite("hd-icnn", "Amos 2023, HD table, ICNN potential (8 rows)", "amos2023-hd-icnn", HD_PAIRS,
          matrix.paper_row_names("icnn") + ("ott-w2neuraldual",), AMOS_SEEDS,
          notes="ott-w2neuraldual is a peer row: OTT-JAX's packaging of the method",
          eval_size=2**14, prior_work=("korotin2021-hd", KOROTIN_HD_ROWS),
          new_work=matrix.paper_row_names("icnn")),
    Suite("hd-mlp", "Amos 2023, HD table, MLP potential (8 rows)", "amos2023-hd-mlp", HD_PAIRS,
          matrix.paper_row_names("mlp"), AMOS_SEEDS, eval_size=2**14,
          prior_work=("korotin2021-hd", KOROTIN_HD_ROWS), new_work=matrix.paper_row_names("mlp")),
    Suite("hd-baselines", "Korotin et al. 2021, HD table: [W2], [MMv1], [MMv2], [MM], their "
          "reversed runs, [L], [C], [ID]", "korotin2021-hd", HD_PAIRS,
          KOROTIN_HD_ROWS + ("linear", "constant", "identity"), ONE_RUN,
          reversed_solvers=("W2", "MMv2", "MM")),
    Suite("celeba64", "Amos 2023 / Korotin et al. 2021, CelebA64 table (Early/Mid/Late)",
          "celeba64", CELEBA_PAIRS, CONV_ROWS + KOROTIN_IMAGE_ROWS,
          AMOS_SEEDS, notes="needs the official CelebA64 files (otarena data fetch celeba64)",
          prior_work=("celeba64", KOROTIN_IMAGE_ROWS), new_work=CONV_ROWS),
    Suite("mnist64-w2gn", "otarena's offline image pairs (MNIST digits, CelebA64 recipe), "
          "the celeba64 rows", None, tuple(f"mnist64-w2gn-{lv}" for lv in ("early", "mid", "late")),
          CONV_ROWS + KOROTIN_IMAGE_ROWS, AMOS_SEEDS,
          notes="not CelebA64: built by `otarena build-image-pair mnist64-w2gn`"),
    Suite(sinkhorn_config.SUITE, "Meta OT (Amos et al. 2023), Table 1: Sinkhorn time to "
          "marginal error 1e-2 by initialization, MNIST and spherical", "metaot2023-table1",
          _sinkhorn_families, sinkhorn_config.INITIALIZERS,
          ONE_RUN, task="sinkhorn",
          notes="one trained model per seed for the learned initializers"),
]}


def get(name: str) -> Suite:
    if name not in SUITES:
        raise UnknownNameError(f"unknown suite {name!r}; `otarena list suites` shows "
                               f"{', '.join(SUITES)}")
    return SUITES[name]
