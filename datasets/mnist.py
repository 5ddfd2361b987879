"""Meta OT's MNIST problem family: each digit is a discrete measure on 784 fixed atoms.

Every instance is a pair (a, b) of digits: the weights are the pixel intensities
normalized to sum to one, the atoms are the same 784 points for both measures, the cost
is the squared Euclidean distance and the entropic regularization is 1e-2.

Two atom geometries, the family option ``grid``:

* ``1d`` (the default): ``linspace(0, 1, 784)`` as a column, the pixels in row-major
  order on a line. This is what the paper's code used from 2022-07-15 to 2022-10-10,
  which covers the runs behind Table 1 and its threshold sweep (the 2-D grid was
  commented out; see ../shared/reference/fidelity-audit.md, section 5).
* ``2d``: the 28x28 pixel grid in [0, 1]^2 (x from 0 to 1 left to right, y from 1 to 0
  top to bottom), as the paper's text says and its code does since 2022-10-10.

The grid changes the problem (zeros needs more Sinkhorn iterations on the 2-D grid), so
it is part of every record's identity, of the Meta OT model's cache key and of the
report's section title.

* Training pairs: two independent uniform indices into the 60,000 training digits per
  pair, a fresh batch each step, drawn on device inside the training step (the digits live
  on the device as uint8, normalized after the gather).
* Test pairs: the paper draws one batch of 128 pairs from the 10,000 test digits with
  ``PRNGKey(0)`` and evaluates the first 10; ``test_instances`` does the same, with the
  PRNG settings of the 2022 JAX the paper ran (see ``otarena.sinkhorn.family.paper_draws``).

The images come from the four official IDX files (``otarena data fetch mnist``); each
file is checked against its sha256 in ``datasets/manifest.json`` before it is parsed.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from otarena import data
from otarena.errors import DataError
from otarena.sinkhorn.family import (PAPER_DRAWS, THRESHOLDS, Plan, ProblemFamily,
                                     SinkhornFamily, paper_draws)

EPSILON = 1e-2
SIDE = 28
FILES = {
    "train": ("mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz"),
    "test": ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"),
}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
# The paper's evaluation: one batch of this size drawn with PRNGKey(0), first 10 pairs used.
PAPER_TEST_BATCH = 128
TEST_KEY = 0
CURVE_ITERATIONS = 25  # the paper's error curves for MNIST stop at 25 Sinkhorn iterations


def read_idx(relpath: str) -> np.ndarray:
    """One gzipped IDX array (big-endian header, unsigned bytes), checked and parsed."""
    return _parse_idx(data.require(relpath))


@lru_cache(maxsize=4)  # keyed by the resolved path: another data directory is read afresh
def _parse_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    magic = int.from_bytes(raw[:4], "big")
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DataError(f"{path.name}: not an unsigned-byte IDX file (magic {magic:#010x})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path.name}: header says {shape}, found {body.size} values")
    return body.reshape(shape)


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images as uint8 (N, 784), labels (N,)) of the 'train' or 'test' split."""
    images_path, labels_path = FILES[split]
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE) or labels.shape != images.shape[:1]:
        raise DataError(f"MNIST {split}: unexpected shapes {images.shape} and {labels.shape}")
    return images.reshape(len(images), SIDE * SIDE), labels


def pixel_grid() -> np.ndarray:
    """The 784 pixel centres in [0, 1]^2, row-major like the images (row 0 at y = 1)."""
    ticks = np.linspace(0.0, 1.0, SIDE)
    x, y = np.meshgrid(ticks, ticks[::-1])  # columns left to right, rows top to bottom
    return np.stack([x.ravel(), y.ravel()], axis=1)


def line_grid() -> np.ndarray:
    """The 784 pixels, row-major, at linspace(0, 1, 784) on a line: shape (784, 1)."""
    return np.linspace(0.0, 1.0, SIDE * SIDE).reshape(SIDE * SIDE, 1)


# name -> (atoms, short label for report titles, description for records)
GRIDS = {
    "1d": (line_grid, "1-D grid", "784 points linspace(0,1,784) on a line, row-major "
                                  "(the paper's code when Table 1 was made)"),
    "2d": (pixel_grid, "2-D grid", "784-point pixel grid in [0,1]^2 (x 0->1, y 1->0; "
                                   "the paper's text)"),
}
DEFAULT_GRID = "1d"


def sqeuclidean(x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)


def _float():
    """The default float type where the sampler is traced (float64 under ``enable_x64``)."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def normalize(images: jax.Array) -> jax.Array:
    w = images.astype(_float())
    return w / jnp.sum(w, axis=-1, keepdims=True)


def pair_indices(key: jax.Array, batch: int, size: int) -> tuple[jax.Array, jax.Array]:
    """Two independent uniform index vectors, split from the key as the paper's sampler does."""
    k_a, k_b, _ = jax.random.split(key, 3)
    return (jax.random.randint(k_a, (batch,), 0, size),
            jax.random.randint(k_b, (batch,), 0, size))


def build(grid: str = DEFAULT_GRID, **options):
    """The MNIST family as an ``otarena.sinkhorn.family.ProblemFamily`` on the named grid."""
    if options:
        raise DataError(f"unknown mnist family options {sorted(options)}; known: grid")
    if grid not in GRIDS:
        raise DataError(f"unknown MNIST grid {grid!r}; known: {', '.join(GRIDS)}")
    points = GRIDS[grid][0]()
    train_images, _ = load("train")
    device_images = jnp.asarray(train_images)  # uint8 on device: 47 MB instead of 376 MB

    def sample_train(key: jax.Array, batch: int) -> tuple[jax.Array, jax.Array]:
        i, j = pair_indices(key, batch, device_images.shape[0])
        return normalize(device_images[i]), normalize(device_images[j])

    def test_instances(n: int) -> tuple[jax.Array, jax.Array, dict]:
        test_images, test_labels = load("test")
        if not 1 <= n <= PAPER_TEST_BATCH:
            raise DataError(f"between 1 and {PAPER_TEST_BATCH} MNIST test pairs, asked {n}")
        # Drawn as the paper's JAX drew them (x64 on, non-partitionable threefry), whatever
        # the dtype of the run, so float32 and float64 runs see the paper's test pairs.
        with paper_draws():
            i, j = (np.asarray(v)[:n] for v in pair_indices(
                jax.random.PRNGKey(TEST_KEY), PAPER_TEST_BATCH, len(test_images)))
        info = {"split": "test", "key": TEST_KEY, "drawn_as_batch_of": PAPER_TEST_BATCH,
                "prng": PAPER_DRAWS,
                "indices_a": i.tolist(), "indices_b": j.tolist(),
                "labels_a": test_labels[i].tolist(), "labels_b": test_labels[j].tolist()}
        return normalize(jnp.asarray(test_images[i])), normalize(jnp.asarray(test_images[j])), info

    files = [p for pair in FILES.values() for p in pair]
    return ProblemFamily(
        name="mnist", epsilon=EPSILON, x=points, y=points, cost=sqeuclidean,
        cost_name="squared Euclidean", sample_train=sample_train,
        test_instances=test_instances, curve_iterations=CURVE_ITERATIONS,
        options={"grid": grid}, variant=GRIDS[grid][1],
        provenance={"family": "mnist", "files": files,
                    "sha256": [data.entry(p).sha256 for p in files],
                    "grid": grid, "atoms": GRIDS[grid][2],
                    "weights": "pixel intensity / sum", "epsilon": EPSILON,
                    "test_draws": PAPER_DRAWS},
    )


# What each budget means for this family (every field is recorded and hashed). The paper
# trains and solves in float64; the CPU budgets use float32 to stay in minutes.
PLANS = {  # smoke: CI in seconds; quick: a CPU in minutes; paper: the paper's budget (a GPU)
    "smoke": Plan(30, 16, 3, (1e-2,), 1, 25, "float32", cost_iterations=(10, 20)),
    "quick": Plan(500, 128, 10, THRESHOLDS, 5, 25, "float32"),
    "paper": Plan(50_000, 128, 10, THRESHOLDS, 1, 25, "float64"),
}

SINKHORN_FAMILY = SinkhornFamily("mnist", "MNIST", build, PLANS)
