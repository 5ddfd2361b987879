"""What the runner tells a training loop without widening the solver protocol.

The runner sets a :class:`RunContext` around ``solver.fit`` / ``fit_seeds``: where to keep
a checkpoint of the training state, how often to write it, and whom to report progress
to. A solver that trains with the engine gets checkpointing and progress for free; any
other solver may ignore it.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKPOINT_SECONDS_ENV = "OTARENA_CHECKPOINT_SECONDS"
DEFAULT_CHECKPOINT_SECONDS = 300.0


def checkpoint_seconds() -> float:
    return float(os.environ.get(CHECKPOINT_SECONDS_ENV, DEFAULT_CHECKPOINT_SECONDS))


@dataclass(frozen=True)
class RunContext:
    checkpoint: Path | None = None  # a file for this group of cells
    checkpoint_every: float = DEFAULT_CHECKPOINT_SECONDS  # seconds between writes
    progress: Callable[[int, int], None] | None = None  # (iterations done, planned)


_current: ContextVar[RunContext] = ContextVar("otarena_run_context", default=RunContext())


def current() -> RunContext:
    return _current.get()


@contextmanager
def running(context: RunContext) -> Iterator[RunContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a kill leaves the previous checkpoint or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path | None, signature: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it was written for ``signature``, else None."""
    if path is None or not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            payload = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError):
        return None
    return payload if payload.get("signature") == signature else None
