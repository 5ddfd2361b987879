"""Where a record comes from: the device, package versions, the code's commit, the time.

Everything that writes records (the runner, the Meta OT suite, image-pair builds) takes
its provenance from here, so the fields mean the same everywhere.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import jax

CODE_ROOT = Path(__file__).resolve().parent.parent  # the checkout holding otarena's code
CODE_COMMIT_ENV, CODE_DIRTY_ENV = "OTARENA_CODE_COMMIT", "OTARENA_CODE_DIRTY"


def device_description() -> dict:
    device = jax.devices()[0]
    return {"platform": device.platform, "kind": device.device_kind,
            "count": jax.device_count(), "host": platform.node()}


def device_text(device: dict | None) -> str:
    """'cpu', 'gpu NVIDIA H200': the platform and the kind of device a record ran on."""
    device = device or {}
    platform, kind = device.get("platform"), device.get("kind")
    if not platform:
        return "device not recorded"
    return platform if kind in (None, "", platform) else f"{platform} {kind}"


@lru_cache(maxsize=1)
def _core_versions() -> dict:
    import flax
    import jaxlib
    import numpy
    import optax

    return {"python": sys.version.split()[0], "jax": jax.__version__,
            "jaxlib": jaxlib.__version__, "flax": flax.__version__,
            "optax": optax.__version__, "numpy": numpy.__version__}


def versions() -> dict:
    """Versions of Python and the packages a result depends on; PyTorch and OTT-JAX when
    the run imported them (the Meta OT suite always does)."""
    found = dict(_core_versions())
    for optional, name in (("torch", "torch"), ("ott", "ott-jax")):
        if optional in sys.modules:
            found[name] = sys.modules[optional].__version__
    return found


def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=CODE_ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


@lru_cache(maxsize=1)
def git_state() -> dict:
    """The commit of the checkout that holds otarena's code, read once per process (so a
    commit made while a long run trains does not relabel it).

    ``dirty``: the code differs from that commit; the result store and reports change with
    every record, so they do not count. A copy of the code inside another git repository
    (or outside any) has no known commit: ``commit`` is None and ``note`` says why.
    """
    try:
        top = Path(_git("rev-parse", "--show-toplevel")).resolve()
    except (OSError, subprocess.CalledProcessError):
        return _checked_copy("not in a git checkout")
    if top != CODE_ROOT:
        return _checked_copy(f"the code is a copy inside another repository ({top})")
    try:
        return {"commit": _git("rev-parse", "HEAD"),
                "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".",
                                   ":(exclude)results", ":(exclude)reports"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None, "note": "git could not read the checkout"}


def _checked_copy(why: str) -> dict:
    """A copy without its own git state names a commit only where ``$OTARENA_CODE_COMMIT``
    says so: benchmarks/gpu_session.sh sets it after checking that every tracked file of
    the copy is that commit's (``benchmarks/gpu_source.py``)."""
    commit = os.environ.get(CODE_COMMIT_ENV, "").strip()
    if not commit:
        return {"commit": None, "dirty": None, "note": why}
    return {"commit": commit, "dirty": os.environ.get(CODE_DIRTY_ENV, "").strip() == "1",
            "note": f"{why}; its files were checked against this commit's "
                    f"(${CODE_COMMIT_ENV}, benchmarks/gpu_source.py)"}


def numerics(matmul_precision: str) -> dict:
    """How the run's floating point was set up (TF32 or full fp32 matmuls on a GPU)."""
    return {"matmul_precision": matmul_precision, "x64": bool(jax.config.jax_enable_x64)}


def timestamp() -> str:
    """Now, in UTC, to the second (ISO 8601): the ``created`` field of every record."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def stamp() -> dict:
    """The provenance fields every record and build manifest carries: device, versions,
    git state, creation time."""
    return {"device": device_description(), "versions": versions(), "git": git_state(),
            "created": timestamp()}
