"""Meta OT's spherical supply-demand family: transport supply to demand on the globe.

The atoms are fixed for the whole family: 100 supply locations drawn uniformly over land
and 10,000 demand locations drawn in proportion to population density, from a GPWv4
population-density grid at 15 arc-minutes (720 x 1440 cells). Only the weights change
between instances, as in the paper: demand b ~ Uniform(0,1)^10000 normalized, supply
a = Bernoulli(0.5) mask * Uniform(0,1)^100 normalized. The test weights are the first
instances of one batch of 128 drawn with ``PRNGKey(0)``, with the PRNG settings of the
2022 JAX the paper ran (``otarena.sinkhorn.family.paper_draws``). The cost is the great-circle
distance arccos(<x, y> / (1 + 1e-4)) between unit vectors (the 1e-4 keeps arccos away
from +-1, as in the paper's code) and the entropic regularization is 1e-3.

Locations are drawn as the paper's code draws them, so that the paper's own grid gives
the paper's cells: negative (nodata) densities set to 0, p = P / max P / sum, demand
cells from ``RandomState(0).choice(N, p=p)``, supply cells from ``RandomState(1)``
over the cells with p > 0. A cell is then placed at its centre (the paper's code uses a
slightly shifted, north-south mirrored angle convention; both are isometric embeddings
up to a fraction of a cell, and the cost only sees distances).

Grid files (in ``$OTARENA_DATA/world/``), first found wins unless one is named:

* the paper's variant, *adjusted to 2015 UN WPP country totals* (not in the manifest:
  its sha256 is recorded, not checked), as ``pop-15min.tif`` (the name in the paper's
  repository) or under its SEDAC name;
* the unadjusted rev11 2020 grid of the manifest, as ``pop-15min.npy`` or GeoTIFF.

Every record says which file (name, sha256, variant) was used.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from otarena import data
from otarena.errors import DataError
from otarena.sinkhorn.family import (PAPER_DRAWS, THRESHOLDS, Plan, ProblemFamily,
                                     SinkhornFamily, paper_draws)

EPSILON = 1e-3
N_SUPPLY, N_DEMAND = 100, 10_000
SUPPLY_BERNOULLI_P = 0.5
DEMAND_SEED, SUPPLY_SEED = 0, 1
COSINE_EPS = 1e-4
ROWS, COLS, CELL_DEG = 720, 1440, 0.25
PAPER_TEST_BATCH = 128  # the paper's evaluation batch, drawn with PRNGKey(0); first 10 used
TEST_KEY = 0
CURVE_ITERATIONS = 1000  # the paper's error curves for this family

ADJUSTED = "adjusted to 2015 UN WPP country totals (the paper's variant)"
UNADJUSTED = "unadjusted (not the paper's variant; see ../shared/data/world/README.md)"


@dataclass(frozen=True)
class GridFile:
    relpath: str
    variant: str
    in_manifest: bool


# In order of preference: the paper's variant first.
GRID_FILES = (
    GridFile("world/pop-15min.tif", ADJUSTED, False),
    GridFile("world/gpw_v4_population_density_adjusted_to_2015_unwpp_country_totals_rev11_2020_15_min.tif",
             ADJUSTED, False),
    GridFile("world/pop-15min.npy", UNADJUSTED, True),
    GridFile("world/gpw_v4_population_density_rev11_2020_15_min.tif", UNADJUSTED, True),
)


def find_grid(name: str | None = None) -> tuple[GridFile, Path]:
    """The grid file to use: ``name`` (a file name in world/) or the first one present."""
    candidates = [g for g in GRID_FILES if name in (None, Path(g.relpath).name, g.relpath)]
    if name is not None and not candidates:
        raise DataError(f"unknown population grid {name!r}; known: "
                        f"{', '.join(Path(g.relpath).name for g in GRID_FILES)}")
    for g in candidates:
        if g.in_manifest:
            if data.status(data.entry(g.relpath))[0] != "missing":
                return g, data.require(g.relpath)  # raises if corrupt
        elif (data.data_dir() / g.relpath).is_file():
            return g, data.data_dir() / g.relpath
    raise DataError(f"no population grid in {data.data_dir() / 'world'}; get one with "
                    f"`otarena data fetch world` or copy the paper's pop-15min.tif there")


def read_geotiff(path: Path) -> np.ndarray:
    """Band 1 of a 15-minute GPWv4 GeoTIFF, checked to be the global 720 x 1440 grid."""
    from PIL import Image  # Pillow reads the float32 LZW GeoTIFF; no GDAL needed

    with Image.open(path) as im:
        if im.mode != "F" or im.size != (COLS, ROWS):
            raise DataError(f"{path.name}: expected a float32 {ROWS}x{COLS} grid, "
                            f"found mode {im.mode} size {im.size}")
        scale = im.tag_v2.get(33550)  # ModelPixelScale
        tie = im.tag_v2.get(33922)  # ModelTiepoint: (i, j, k, lon, lat, z)
        if scale is None or tie is None or not np.allclose(scale[:2], CELL_DEG) \
                or not np.allclose(tie[3:5], (-180.0, 90.0)):
            raise DataError(f"{path.name}: not a global 0.25-degree grid anchored at "
                            f"(-180, 90) (scale {scale}, tiepoint {tie})")
        return np.array(im, dtype=np.float32)


def read_grid(path: Path) -> np.ndarray:
    grid = np.load(path, allow_pickle=False) if path.suffix == ".npy" else read_geotiff(path)
    if grid.shape != (ROWS, COLS):
        raise DataError(f"{path.name}: expected shape {(ROWS, COLS)}, found {grid.shape}")
    return grid.astype(np.float32)


def location_probabilities(density: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(demand p over cells, supply p uniform over land), computed as the paper's code does."""
    p = density.copy()
    p[p < 0] = 0.0
    p = p.ravel()
    p = p / p.max()  # float32 arithmetic, in the paper's order, so choice() sees the same p
    p = p / p.sum()
    land = p.copy()
    land[land > 0] = 1.0
    land /= land.sum()
    return p, land


def cell_centres(cells: np.ndarray) -> np.ndarray:
    """Unit vectors in R^3 of the centres of flat cell indices (row 0 at the north)."""
    rows, cols = np.divmod(cells, COLS)
    lat = np.deg2rad(90.0 - (rows + 0.5) * CELL_DEG)
    lon = np.deg2rad(-180.0 + (cols + 0.5) * CELL_DEG)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)


@lru_cache(maxsize=4)
def locations(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(supply cells, demand cells, supply unit vectors, demand unit vectors)."""
    p, land = location_probabilities(read_grid(path))
    demand = np.random.RandomState(DEMAND_SEED).choice(len(p), p=p, size=N_DEMAND)
    supply = np.random.RandomState(SUPPLY_SEED).choice(len(land), p=land, size=N_SUPPLY)
    return supply, demand, cell_centres(supply), cell_centres(demand)


def great_circle(x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.arccos(x @ y.T / (1.0 + COSINE_EPS))


def _float():
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def sample_weights(key: jax.Array, batch: int) -> tuple[jax.Array, jax.Array]:
    """A batch of (supply a, demand b) weights, drawn as in the paper's sampler."""
    k_demand, k_mask, k_supply, _ = jax.random.split(key, 4)
    b = jax.random.uniform(k_demand, (batch, N_DEMAND), dtype=_float())
    b = b / b.sum(axis=1, keepdims=True)
    mask = jax.random.bernoulli(k_mask, SUPPLY_BERNOULLI_P, (batch, N_SUPPLY))
    a = mask * jax.random.uniform(k_supply, (batch, N_SUPPLY), dtype=_float())
    a = a / a.sum(axis=1, keepdims=True)
    return a, b


def build(population_file: str | None = None, **options):
    """The spherical family as an ``otarena.sinkhorn.family.ProblemFamily``."""
    if options:
        raise DataError(f"unknown spherical family options {sorted(options)}")
    grid_file, path = find_grid(population_file)
    supply, demand, x, y = locations(path)

    def test_instances(n: int) -> tuple[jax.Array, jax.Array, dict]:
        if not 1 <= n <= PAPER_TEST_BATCH:
            raise DataError(f"between 1 and {PAPER_TEST_BATCH} spherical test instances, asked {n}")
        dtype = _float()
        with paper_draws():  # as the paper's JAX drew them, whatever the dtype of the run
            a, b = sample_weights(jax.random.PRNGKey(TEST_KEY), PAPER_TEST_BATCH)
            a, b = np.asarray(a[:n]), np.asarray(b[:n])
        info = {"key": TEST_KEY, "drawn_as_batch_of": PAPER_TEST_BATCH, "drawn_in": "float64",
                "prng": PAPER_DRAWS}
        return jnp.asarray(a, dtype), jnp.asarray(b, dtype), info

    sha = data.entry(grid_file.relpath).sha256 if grid_file.in_manifest else data.sha256_of(path)
    return ProblemFamily(
        name="spherical", epsilon=EPSILON, x=x, y=y, cost=great_circle,
        cost_name="great-circle arccos(<x,y>/(1+1e-4))", sample_train=sample_weights,
        test_instances=test_instances, curve_iterations=CURVE_ITERATIONS,
        options={"population_file": Path(grid_file.relpath).name},
        provenance={"family": "spherical", "files": [grid_file.relpath], "sha256": [sha],
                    "population_grid": {"file": grid_file.relpath, "sha256": sha,
                                        "variant": grid_file.variant,
                                        "checked_against_manifest": grid_file.in_manifest},
                    "n_supply": N_SUPPLY, "n_demand": N_DEMAND,
                    "location_seeds": {"demand": DEMAND_SEED, "supply": SUPPLY_SEED},
                    "supply_bernoulli_p": SUPPLY_BERNOULLI_P, "epsilon": EPSILON,
                    "test_draws": PAPER_DRAWS},
    )


# What each budget means for this family (every field is recorded and hashed). The paper
# trains and solves in float64; the CPU budgets use float32 to stay in minutes.
# A solve from zeros takes ~4000 iterations (seconds on a CPU core), so the smoke plan times
# one instance to the loose threshold 1e-1: a check of the plumbing only.
PLANS = {  # smoke: CI in seconds; quick: a CPU in minutes; paper: the paper's budget (a GPU)
    "smoke": Plan(5, 4, 1, (1e-1,), 1, 50, "float32", batched=False, cost_iterations=()),
    "quick": Plan(200, 32, 3, (1e-2,), 1, 200, "float32"),
    "paper": Plan(50_000, 128, 10, THRESHOLDS, 1, 1000, "float64"),
}

SINKHORN_FAMILY = SinkhornFamily("spherical", "Spherical", build, PLANS)
