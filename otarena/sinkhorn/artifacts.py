"""The cache of trained Meta OT models: one folder per configuration key (flax msgpack
parameters and a ``meta.json``), written atomically, under ``--artifacts`` (default
``$OTARENA_ARTIFACTS`` or ``~/.cache/otarena/artifacts``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from otarena.provenance import timestamp
from otarena.sinkhorn.config import TrainConfig
from otarena.sinkhorn.metaot import Trained, make_model, train

ARTIFACTS_ENV = "OTARENA_ARTIFACTS"


def artifacts_dir(explicit: str | Path | None = None) -> Path:
    """``explicit``, else ``$OTARENA_ARTIFACTS``, else ``$XDG_CACHE_HOME/otarena/artifacts``."""
    if explicit is not None:
        return Path(explicit).expanduser().resolve()
    if os.environ.get(ARTIFACTS_ENV):
        return Path(os.environ[ARTIFACTS_ENV]).expanduser().resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return (cache / "otarena" / "artifacts").resolve()


def save(trained: Trained, root: Path, info: dict) -> Path:
    """Write params (flax msgpack) and meta.json atomically under ``root/<config key>``."""
    folder = root / trained.config.key()
    tmp = root / f".{trained.config.key()}.{os.getpid()}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "params.msgpack").write_bytes(flax.serialization.to_bytes(trained.params))
    meta = {"config": asdict(trained.config), "curve": trained.curve,
            "diverged_at": trained.diverged_at,
            "train_seconds": trained.train_seconds,
            "steady_seconds_per_iteration": trained.steady_seconds_per_iteration,
            "created": timestamp(),
            **info}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
    if folder.exists():  # another process finished first: keep its copy
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    else:
        os.replace(tmp, folder)
    return folder


def load(config: TrainConfig, n_in: int, n_out: int, root: Path) -> Trained | None:
    """The cached model of ``config``, or None."""
    folder = root / config.key()
    if not (folder / "params.msgpack").is_file() or not (folder / "meta.json").is_file():
        return None
    meta = json.loads((folder / "meta.json").read_text())
    if meta["config"] != json.loads(json.dumps(asdict(config), default=str)):
        return None  # a hash collision or a hand-edited folder: do not trust it
    with jax.enable_x64(config.dtype == "float64"):
        model = make_model(config, n_out)
        template = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                                     jnp.zeros(n_in, model.dtype)))["params"]
        template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template)
        params = flax.serialization.from_bytes(template, (folder / "params.msgpack").read_bytes())
    diverged_at = meta.get("diverged_at")
    if diverged_at is None and not all(np.isfinite(p).all() for p in jax.tree.leaves(params)):
        # saved without a verdict (an older otarena): NaN parameters still mean divergence
        diverged_at = next((c["iteration"] for c in meta["curve"] if not np.isfinite(c["loss"])),
                           config.iterations)
    return Trained(config, params, meta["curve"], meta["train_seconds"],
                   meta.get("steady_seconds_per_iteration"), artifact=str(folder), cached=True,
                   info={k: meta[k] for k in ("device", "versions", "git", "created") if k in meta},
                   diverged_at=diverged_at)


def trained_model(family, config: TrainConfig, artifacts: str | Path | None = None,
                  retrain: bool = False, info: dict | None = None,
                  log: Callable[[str], None] = print) -> Trained:
    """The cached model for ``config`` if there is one, else train it and cache it."""
    root = artifacts_dir(artifacts)
    n_in, n_out = len(family.x) + len(family.y), len(family.x)
    if not retrain:
        found = load(config, n_in, n_out, root)
        if found is not None:
            log(f"  using cached model {found.artifact}")
            return found
    trained = train(family, config, log=log)
    trained.info = info or {}
    trained.artifact = str(save(trained, root, trained.info))
    return trained
