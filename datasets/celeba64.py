"""Korotin et al. 2021 CelebA64 image pairs (Early, Mid, Late), as the official code builds them.

Source P: ``Final_G`` — the WGAN-QC ResNet generator ``ResNet_G(128, 64, nfilter=64,
nfilter_max=512, res_ratio=0.1)`` in eval mode — applied to z ~ N(0, I_128), images
flattened to 3*64*64 in [-1, 1], plus pixel noise N(0, 0.01^2). Target Q = grad psi # P with
psi = (psi_v1 + psi_v2) / 2, the two ConvICNN64 checkpoints ``{Which}_v1.pt``,
``{Which}_v2.pt`` (strong convexity 0.01, rank 4, eval mode: no dropout), without
standardization. All of it runs on the device, in float32 with ``Precision.HIGHEST``.

The official files are not on these machines and their sha256 are not published: the
manifest lists them with ``"sha256": null`` and the loader checks every state dict's keys
and shapes instead. The constants (Var P, Var Q, the cost) are not published either; they
are computed with the official estimators and cached by the files' sha256
(``otarena.image_pairs``); ``provenance`` says so.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from otarena import data, image_pairs
from otarena.errors import DataError
from otarena.models import conv_icnn, resnet_g
from otarena.pairs import Pair, PairFamily
from otarena.torch_io import load_state_dict

LEVELS = {"early": "Early", "mid": "Mid", "late": "Late"}
FOLDER = "w2-benchmark/CelebA64"
GENERATOR = f"{FOLDER}/Final_G.pt"


def potential_paths(level: str) -> list[str]:
    return [f"{FOLDER}/{LEVELS[level]}_{v}.pt" for v in ("v1", "v2")]


def checkpoint_paths(level: str) -> list[str]:
    """The files a pair needs: the source generator and the two potentials."""
    return [GENERATOR, *potential_paths(level)]


def target_generator_paths(level: str) -> list[str]:
    """The generators the potentials were trained toward (only to rebuild the pairs)."""
    return [f"{FOLDER}/{LEVELS[level]}_G_{v}.pt" for v in ("v1", "v2")]


def _checked_state(relpath: str, mismatch, what: str) -> dict:
    entry = data.entry(relpath)
    state = load_state_dict(data.require(relpath), entry)
    problem = mismatch(state)
    if problem:
        raise DataError(data.describe_problem(entry, f"not a {what} checkpoint ({problem})"))
    return {k: jnp.asarray(v, jnp.float32) for k, v in state.items()
            if not k.endswith("num_batches_tracked")}


def load_generator(relpath: str = GENERATOR) -> resnet_g.Params:
    """A ResNet_G state dict as ``load_resnet_G`` reads it (``resnet[0].load_state_dict``)."""
    return _checked_state(relpath, resnet_g.shape_mismatch, "ResNet_G(128, 64, 64, 512)")


def load_potentials(level: str) -> conv_icnn.Params:
    """Both ConvICNN64 potentials of a level, stacked for one fused evaluation."""
    return conv_icnn.stack(*[_checked_state(p, conv_icnn.shape_mismatch, "ConvICNN64")
                             for p in potential_paths(level)])


def sample_generator(params: resnet_g.Params, key: jax.Array, n: int) -> jax.Array:
    """Final_G(z), z ~ N(0, I_128): the clean source images (n, 12288)."""
    z = jax.random.normal(key, (n, resnet_g.Z_DIM), jnp.float32)
    return resnet_g.generate(params, z)


def build(name: str, estimate_size: int | None = None, cost_size: int | None = None) -> Pair:
    """The forward pair ``celeba64-{early,mid,late}``; constants on the official sample sizes
    (2^14 and 64) unless told otherwise."""
    estimate_size = estimate_size or image_pairs.ESTIMATE_SIZE
    cost_size = cost_size or image_pairs.COST_SIZE
    level = name.split("-", 1)[1]
    generator = load_generator()
    stacked = load_potentials(level)
    paths = checkpoint_paths(level)
    sha256 = [data.entry(p).sha256 or data.sha256_of(data.require(p)) for p in paths]
    clean = image_pairs.chunk_sampler(partial(sample_generator, generator))
    potential = image_pairs.averaged_potential(stacked)
    identity = {"pair": name, "files": dict(zip(paths, sha256)), "estimator": image_pairs.ESTIMATOR,
                "estimate_size": estimate_size, "cost_size": cost_size,
                "noise_std": image_pairs.NOISE_STD, "key": image_pairs.CONSTANTS_KEY}
    constants, where = image_pairs.cached_constants(identity, lambda: image_pairs.compute_constants(
        clean, image_pairs.gradient_map(potential), estimate_size=estimate_size,
        cost_size=cost_size))
    return image_pairs.potential_pair(name, clean, stacked, constants, provenance={
        "family": "celeba64",
        "source": "Final_G (WGAN-QC ResNet_G, eval mode) on N(0, I_128) + N(0, 0.01^2) pixel noise",
        "target": f"grad of (psi_v1 + psi_v2) / 2, ConvICNN64 {LEVELS[level]}_v1/_v2",
        "checkpoints": paths, "sha256": sha256,
        "constants": image_pairs.constants_note(estimate_size, cost_size, where)})


PAIR_FAMILY = PairFamily(
    family="celeba64",
    names=tuple(f"celeba64-{level}" for level in LEVELS),
    build=build,
    data_files=lambda name: checkpoint_paths(name.split("-", 1)[1]),
    description="Korotin et al. 2021 CelebA64: WGAN-QC generator images + noise -> pushforward "
                "by the gradient of the mean of two official ConvICNN64 potentials",
    titles={f"celeba64-{level}": title for level, title in LEVELS.items()},
)
