"""JAX's persistent compilation cache, on by default: a repeated run, a resumed job or the
next test run loads its compiled programs instead of compiling them again.

``$OTARENA_COMPILATION_CACHE`` sets the folder (default: ``$XDG_CACHE_HOME/otarena/jax``
or ``~/.cache/otarena/jax``); ``0``, ``off`` or ``false`` turns the cache off.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "OTARENA_COMPILATION_CACHE"
OFF = ("0", "off", "false", "no")


def cache_dir() -> Path | None:
    """The cache folder in use, or None when turned off."""
    chosen = os.environ.get(ENV, "").strip()
    if chosen.lower() in OFF:
        return None
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "otarena" / "jax"


def enable() -> Path | None:
    """Point JAX at the cache (every program, however fast it compiled, is kept)."""
    import jax

    folder = cache_dir()
    if folder is None:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
