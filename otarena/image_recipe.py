"""The CelebA64 recipe for new image pairs (``otarena build-image-pair``): potentials trained
by W2GN from an image source toward transformed images, saved in the official format with
a manifest; and the pair families of such builds (read from the data directory).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from otarena import data
from otarena.image_pairs import (COST_SIZE, CONSTANTS_KEY, DIM, ESTIMATE_SIZE, ESTIMATOR, NOISE_STD,
                                 Sampler, averaged_potential, compute_constants, gradient_map,
                                 noisy, potential_pair, stack_states)
from otarena.models import conv_icnn
from otarena.pairs import Pair

# == the recipe: building new image pairs ====================================================
# A recipe is a JSON-able dict:
#   {"family": str, "source": SOURCE, "levels": {level: {"v1": TARGET, "v2": TARGET}},
#    "noise_std": 0.01, "w2gn": {...}}            (missing "w2gn" keys: W2GN_DEFAULTS)
#   SOURCE = {"dataset": "mnist" | "npy", "split": "train" | "test" (mnist), "path": ... (npy),
#             "range": [start, stop]}  -- uint8 images (N, H, W) or (N, H, W, 3)
#   TARGET = SOURCE + {"blur": sigma in pixels at 64x64, "tint": [r, g, b], "seed": int}
# Images are resized to 64x64 (bilinear), made RGB, blurred, tinted, mapped to [-1, 1].

BUILT_DIR = "otarena-built"
MANIFEST = "manifest.json"
# The official pair-building notebook (W2_train_images_benchmark): W2GN with two ConvICNN64,
# batch 64, 50,001 iterations, Adam 3e-4, betas (0.8, 0.99) for psi and (0.4, 0.4) for the
# conjugate network, cycle weight 1e4, identity pretraining on unit-cube samples times 4
# (at most 1000 steps, MSE below 1e-3).
W2GN_DEFAULTS = {"iterations": 50_000, "pretrain_steps": 1000, "batch_size": 64, "lr": 3e-4,
                 "betas_psi": [0.8, 0.99], "betas_conjugate": [0.4, 0.4], "cycle_weight": 1e4,
                 "log_every": 1000}
MNIST_FILES = {"train": "mnist/train-images-idx3-ubyte.gz", "test": "mnist/t10k-images-idx3-ubyte.gz"}


def read_idx_images(path: Path) -> np.ndarray:
    """uint8 images (N, rows, cols) of an IDX3 file (gzipped or not)."""
    import gzip

    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    magic, n, rows, cols = np.frombuffer(raw[:16], ">u4")
    if magic != 2051 or len(raw) != 16 + int(n) * int(rows) * int(cols):
        raise ValueError(f"{path} is not an IDX3 image file")
    return np.frombuffer(raw[16:], np.uint8).reshape(int(n), int(rows), int(cols))


def source_files(spec: Mapping) -> list[str]:
    """Manifest paths an image source reads (none for a user's .npy file)."""
    return [MNIST_FILES[spec.get("split", "train")]] if spec["dataset"] == "mnist" else []


def load_images(spec: Mapping) -> np.ndarray:
    """The uint8 images of a SOURCE spec, sliced to its range."""
    from otarena.errors import DataError

    if spec["dataset"] == "mnist":
        images = read_idx_images(data.require(MNIST_FILES[spec.get("split", "train")]))
    elif spec["dataset"] == "npy":
        path = Path(spec["path"]).expanduser()
        if not path.is_file():
            raise DataError(f"image source {path} does not exist")
        images = np.load(path, allow_pickle=False)
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or (
                images.ndim == 4 and images.shape[-1] != 3):
            raise DataError(f"image source {path}: expected uint8 images (N, H, W) or "
                            f"(N, H, W, 3), found {images.dtype} {images.shape}")
    else:
        raise DataError(f"unknown image source dataset {spec['dataset']!r} (mnist | npy)")
    lo, hi = spec.get("range", [0, len(images)])
    return np.ascontiguousarray(images[lo:hi])


def _blur_matrix(sigma: float, size: int = 64) -> np.ndarray:
    """Gaussian blur along one axis as a (size, size) matrix, zero padding."""
    if sigma <= 0:
        return np.eye(size, dtype=np.float32)
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    m = np.zeros((size, size))
    for offset, w in zip(range(-radius, radius + 1), taps):
        m += w * np.eye(size, k=offset)
    return m.astype(np.float32)


def image_sampler(images: np.ndarray, blur: float = 0.0, tint=(1.0, 1.0, 1.0)) -> Sampler:
    """Uniform draws from ``images``, as flattened 3x64x64 images in [-1, 1] (on device)."""
    stored = jnp.asarray(images)
    blur_m = jnp.asarray(_blur_matrix(blur))
    tint_v = jnp.asarray(np.asarray(tint, np.float32))[None, :, None, None]

    def sample(key, n):
        idx = jax.random.randint(key, (n,), 0, stored.shape[0])
        img = stored[idx].astype(jnp.float32) / 255.0
        img = img[:, None] if img.ndim == 3 else img.transpose(0, 3, 1, 2)
        img = jnp.broadcast_to(img, (n, 3) + img.shape[2:])
        img = jax.image.resize(img, (n, 3, 64, 64), "linear")
        img = jnp.einsum("ih,nchw,jw->ncij", blur_m, img, blur_m)
        img = jnp.clip(img * tint_v, 0.0, 1.0)
        return (2.0 * img - 1.0).reshape(n, DIM)
    return sample


def target_sampler(spec: Mapping) -> Sampler:
    return image_sampler(load_images(spec), spec.get("blur", 0.0), spec.get("tint", (1, 1, 1)))


class _Sides:
    """What the engine needs of a pair to train: two independent samplers."""

    def __init__(self, sample_source: Sampler, sample_target: Sampler):
        self.dim, self.sample_source, self.sample_target = DIM, sample_source, sample_target


def _w2gn_engine(sides: _Sides, cfg: Mapping):
    """The official pair-building notebook's W2GN: two ConvICNN64, each with its own Adam
    betas, pretrained to the identity on U[-2, 2) (``CubeUniformSampler(centered=True)``
    times 4), trained for ``iterations`` without early stopping."""
    from otarena import dual
    from otarena.budgets import Budget

    n = int(cfg["iterations"])
    adam = partial(dual.Optimizer, "adam", cfg["lr"], weight_decay=0.0, cosine_final_fraction=None)
    spec = dual.DualSpec(
        potential="conv-icnn64", amortizer="conv-icnn64", amortization="cycle",
        conjugate_solver=None, inverse_solver=None, cycle_weight=float(cfg["cycle_weight"]),
        optimizer=adam(*cfg["betas_psi"]), amortizer_optimizer=adam(*cfg["betas_conjugate"]),
        pretrain=dual.Pretrain(sampler="centered-cube", scale=4.0, lr=1e-3, weight_decay=1e-10,
                               tolerance=1e-3, min_steps=0, sum_coordinates=False),
        iterations={"paper": n}, pretrain_steps={"paper": int(cfg["pretrain_steps"])},
        eval_every={"paper": max(1, min(int(cfg.get("log_every", 1000)), n))},
        batch_size=int(cfg["batch_size"]), stop=None)
    return dual.Engine(sides, spec, Budget("paper", iterations=n))


def train_potential(source: Sampler, target: Sampler, seed: int, cfg: Mapping,
                    noise_std: float = NOISE_STD, log=None) -> tuple[dict, dict]:
    """One benchmark potential: W2GN from noisy ``source`` to noisy ``target``.

    Returns (psi's parameters in the ConvICNN64 state-dict layout, training summary).
    """
    engine = _w2gn_engine(_Sides(noisy(source, noise_std), noisy(target, noise_std)), cfg)
    states = engine.init_states(jax.random.key(seed)[None], engine.pretrain_steps)
    done, losses = 0, []
    while done < engine.iterations:
        states, logs = engine.run_chunk(states, done, engine.iterations)
        done = min(done + engine.eval_every, engine.iterations)
        losses.append({"iteration": done, **{k: float(v[0]) for k, v in logs.items()}})
        if log:
            log(f"  iteration {done}/{engine.iterations}: loss {losses[-1]['loss']:.4g}")
    params = {k: np.asarray(v[0], np.float32) for k, v in states["psi"].items()}
    return params, {"pretrain_final_loss": float(states["pretrain_loss"][0]),
                    "nonfinite_loss_seen": bool(states["nonfinite"][0]), "losses": losses}


def state_dict_bytes(params: Mapping[str, np.ndarray]) -> bytes:
    """``torch.save`` of a ConvICNN64 state dict, byte-for-byte reproducible."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({k: torch.from_numpy(np.array(params[k], np.float32))
                for k in sorted(conv_icnn.expected_shapes())}, buffer)
    return buffer.getvalue()


def built_dir(family: str) -> Path:
    return data.data_dir() / BUILT_DIR / family


def _write_atomic(path: Path, payload: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
    os.replace(tmp, path)


def build_family(recipe: Mapping, levels: list[str] | None = None, overrides: Mapping | None = None,
                 estimate_size: int = ESTIMATE_SIZE, cost_size: int = COST_SIZE,
                 out: Path | None = None, log=print) -> Path:
    """Train, save and describe the potentials of ``recipe`` (``otarena build-image-pair``).

    Writes ``{level}_{v}.pt`` (ConvICNN64 state dicts, loadable by the official PyTorch
    class) and ``manifest.json`` (recipe, settings, sha256 of every file, the pair constants
    computed with the official estimators, devices and versions) to ``out``. Potentials
    already built with the same settings are kept. Returns the manifest path.
    """
    import time

    from otarena import provenance

    cfg = {**W2GN_DEFAULTS, **recipe.get("w2gn", {}), **(overrides or {})}
    levels = list(recipe["levels"]) if levels is None else levels
    out = built_dir(recipe["family"]) if out is None else Path(out)
    noise_std = float(recipe.get("noise_std", NOISE_STD))
    path = out / MANIFEST
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    if manifest.get("recipe") != recipe or manifest.get("w2gn") != cfg:
        manifest = {"family": recipe["family"], "recipe": recipe, "w2gn": cfg, "files": {},
                    "training": {}, "constants": {}}
    source = image_sampler(load_images(recipe["source"]))
    for level in levels:
        for version, target_spec in sorted(recipe["levels"][level].items()):
            name = f"{level}_{version}.pt"
            if name in manifest["files"] and (out / name).is_file() and \
                    data.sha256_of(out / name) == manifest["files"][name]:
                log(f"{name}: already built, kept")
                continue
            log(f"{name}: W2GN from the source to {target_spec} ({cfg['iterations']} iterations)")
            start = time.perf_counter()
            params, summary = train_potential(source, target_sampler(target_spec),
                                              int(target_spec.get("seed", 0)), cfg, noise_std, log)
            payload = state_dict_bytes(params)
            _write_atomic(out / name, payload)
            manifest["files"][name] = hashlib.sha256(payload).hexdigest()
            manifest["training"][name] = {**summary, "seconds": time.perf_counter() - start}
            _write_atomic(path, json.dumps(manifest, indent=1).encode())
        files = [f"{level}_{v}.pt" for v in sorted(recipe["levels"][level])]
        stacked = stack_states([load_built_state(out, f, manifest["files"][f]) for f in files])
        log(f"{level}: constants on {estimate_size} samples (cost on {cost_size})")
        manifest["constants"][level] = {
            **compute_constants(source, gradient_map(averaged_potential(stacked)), noise_std,
                                estimate_size, cost_size),
            "estimate_size": estimate_size, "cost_size": cost_size, "key": CONSTANTS_KEY,
            "estimator": ESTIMATOR, "sha256": [manifest["files"][f] for f in files]}
        _write_atomic(path, json.dumps(manifest, indent=1).encode())
    manifest["built"] = provenance.stamp()
    _write_atomic(path, json.dumps(manifest, indent=1).encode())
    return path


def load_built_state(folder: Path, name: str, sha256: str) -> dict[str, np.ndarray]:
    """A built ConvICNN64 state dict, checked against the sha256 its manifest recorded."""
    from otarena.errors import DataError
    from otarena.torch_io import load_state_dict

    path = Path(folder) / name
    entry = data.DataFile(path=str(path), family="built", url="otarena build-image-pair",
                          sha256=sha256, size=None)
    if not path.is_file():
        raise DataError(f"{name}: missing at {path}; rebuild with `otarena build-image-pair`")
    found = data.sha256_of(path)
    if found != sha256:
        raise DataError(f"{name}: sha256 {found} at {path} differs from its build manifest "
                        f"({sha256}); rebuild with `otarena build-image-pair`")
    state = load_state_dict(path, entry)
    problem = conv_icnn.shape_mismatch(state)
    if problem:
        raise DataError(data.describe_problem(entry, f"not a ConvICNN64 checkpoint ({problem})"))
    return state


def build_problem(recipe: Mapping, name: str) -> str | None:
    """Why the pair ``name`` of a built family cannot be loaded yet, or None."""
    family, level = recipe["family"], name[len(recipe["family"]) + 1:]
    folder = built_dir(family)
    path = folder / MANIFEST
    how = (f"build it with `otarena build-image-pair {family}` (a GPU takes hours at the "
           f"recipe's budget; see README), or put a released build in {folder}")
    if not path.is_file():
        return f"{name}: not built, no {path}; {how}"
    manifest = json.loads(path.read_text())
    if manifest.get("recipe") != recipe:
        return f"{name}: the build in {folder} is of another recipe; {how}"
    if level not in manifest.get("constants", {}):
        return f"{name}: level {level!r} not built in {folder}; {how}"
    return None


def built_pair(recipe: Mapping, name: str) -> Pair:
    """The pair ``{family}-{level}`` from the files ``build_family`` wrote in the data directory."""
    from otarena.errors import DataError

    problem = build_problem(recipe, name)
    if problem:
        raise DataError(problem)
    family, level = recipe["family"], name[len(recipe["family"]) + 1:]
    folder = built_dir(family)
    path = folder / MANIFEST
    how = f"rebuild it with `otarena build-image-pair {family}`"
    manifest = json.loads(path.read_text())
    files = [f"{level}_{v}.pt" for v in sorted(recipe["levels"][level])]
    stacked = stack_states([load_built_state(folder, f, manifest["files"][f]) for f in files])
    constants = manifest["constants"][level]
    if constants["sha256"] != [manifest["files"][f] for f in files]:
        raise DataError(f"{name}: constants in {path} are of other weights; {how}")
    cfg = manifest["w2gn"]
    noise_std = float(recipe.get("noise_std", NOISE_STD))
    return potential_pair(name, image_sampler(load_images(recipe["source"])), stacked, constants,
                          noise_std=noise_std, provenance={
        "family": family, "built_by": "otarena build-image-pair (Korotin et al.'s CelebA64 recipe)",
        "source": recipe["source"], "targets": recipe["levels"][level],
        "w2gn": {k: cfg[k] for k in ("iterations", "pretrain_steps", "batch_size")},
        "files": files, "sha256": constants["sha256"], "built": manifest.get("built", {}),
        "constants": (f"computed at build time with the official CelebA64Benchmark estimators "
                      f"(total variances on {constants['estimate_size']} samples, cost on one "
                      f"batch of {constants['cost_size']}), stored in {path} with the sha256 "
                      "of the weights they belong to")})


def built_family(recipe: Mapping, description: str):
    """The :class:`PairFamily` of a recipe: ``{family}-{level}`` for every level."""
    from otarena.pairs import PairFamily

    return PairFamily(family=recipe["family"],
                      names=tuple(f"{recipe['family']}-{level}" for level in recipe["levels"]),
                      build=partial(built_pair, recipe),
                      data_files=lambda name: source_files(recipe["source"]),
                      description=description, not_ready=partial(build_problem, recipe),
                      titles={f"{recipe['family']}-{level}": level.title()
                              for level in recipe["levels"]})
