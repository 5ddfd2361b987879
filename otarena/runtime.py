"""What the runner tells a training loop without widening the solver protocol.

The runner sets a :class:`RunContext` around a task's run of a group of cells (for maps:
``solver.fit`` / ``fit_seeds``): where to keep a checkpoint of the training state, how
often to write it, whom to report progress and log lines to. A solver that trains with
the engine, and Meta OT training, get checkpointing and progress for free; any other
solver may ignore it.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otarena.errors import OtarenaError, warn

CHECKPOINT_SECONDS_ENV = "OTARENA_CHECKPOINT_SECONDS"
DEFAULT_CHECKPOINT_SECONDS = 300.0


def checkpoint_seconds() -> float:
    """Seconds between checkpoints: ``$OTARENA_CHECKPOINT_SECONDS`` (unset or empty: 300)."""
    text = os.environ.get(CHECKPOINT_SECONDS_ENV, "").strip()
    if not text:
        return DEFAULT_CHECKPOINT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:  # also NaN
        raise OtarenaError(f"{CHECKPOINT_SECONDS_ENV}={text!r}: give a number of seconds "
                           f"(0 or more; unset: {DEFAULT_CHECKPOINT_SECONDS:g})")
    return value


@dataclass(frozen=True)
class RunContext:
    checkpoint: Path | None = None  # a file name prefix for this group of cells
    checkpoint_every: float = DEFAULT_CHECKPOINT_SECONDS  # seconds between writes
    progress: Callable[[int, int], None] | None = None  # (iterations done, planned)
    log: Callable[[str], None] = print  # a task's lines (the runner's: above the bars, or none)


_current: ContextVar[RunContext] = ContextVar("otarena_run_context", default=RunContext())


def current() -> RunContext:
    return _current.get()


@dataclass
class _Segment:
    """This process's part of a run's training, and the seconds of earlier, killed parts."""

    started: float = field(default_factory=time.perf_counter)
    earlier: float = 0.0


_segment: ContextVar[_Segment | None] = ContextVar("otarena_segment", default=None)


@contextmanager
def running(context: RunContext) -> Iterator[RunContext]:
    token, segment = _current.set(context), _segment.set(_Segment())
    try:
        yield context
    finally:
        _segment.reset(segment)
        _current.reset(token)


def earlier_seconds() -> float:
    """Training seconds of the earlier segments of the run resumed in this context: a
    checkpoint keeps the training time so far, so a resumed record times the whole run."""
    segment = _segment.get()
    return segment.earlier if segment else 0.0


# A checkpoint file: this header, the sha256 of the pickled payload, a newline, the payload.
# The digest is checked before unpickling: a damaged file is never resumed from.
MAGIC = b"otarena-checkpoint v1 sha256 "


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a kill leaves the previous checkpoint or the new one, whole."""
    segment = _segment.get()
    if segment is not None:
        payload = {**payload, "wall_seconds": segment.earlier + time.perf_counter() - segment.started}
    body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():  # an exception mid-write (a disk full): no leftover
            tmp.unlink()


def remove_checkpoints(stem: Path) -> None:
    """Every checkpoint of a group of cells, and temporary files of a killed write."""
    for leftover in [*stem.parent.glob(f"{stem.name}-*.pkl"),
                     *stem.parent.glob(f".{stem.name}-*.pkl.*.tmp")]:
        leftover.unlink(missing_ok=True)


def _problem(payload: Any, signature: str, planned: int | None) -> str | None:
    """What is wrong with a checkpoint's payload ({signature, done, curve, states} as the
    engine writes it), or None."""
    if not isinstance(payload, dict):
        return f"a {type(payload).__name__}, not a checkpoint"
    if payload.get("signature") != signature:
        return "written for another configuration"
    done = payload.get("done")
    if not isinstance(done, int) or done < 0:
        return f"iterations done {done!r} is not a count"
    if planned is not None and done > planned:
        return f"{done} iterations done of {planned} planned"
    curve = payload.get("curve", [])
    if not isinstance(curve, list):
        return "its curve is not a list"
    for points in curve:  # a curve ends where the state is, or earlier where its seed stopped
        last = points[-1] if isinstance(points, list) and points else None
        if points and not (isinstance(last, dict) and isinstance(last.get("iteration"), int)
                           and (last["iteration"] == done
                                or (last.get("stopped") and last["iteration"] <= done))):
            return f"{done} iterations done, but its curve ends elsewhere"
    return None


def load_checkpoint(path: Path | None, signature: str,
                    planned: int | None = None) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it is intact (its digest matches) and was written for
    ``signature`` with at most ``planned`` iterations done; else None, with a warning when
    a file was there: training then restarts from the beginning."""
    if path is None or not path.is_file():
        return None
    try:
        raw = path.read_bytes()
        head, _, body = raw.partition(b"\n")
        if not head.startswith(MAGIC):
            why = "no digest: damaged, or written by an older otarena"
        elif hashlib.sha256(body).hexdigest().encode() != head[len(MAGIC):]:
            why = "its digest does not match: the file is damaged"
        else:
            payload = pickle.loads(body)
            why = _problem(payload, signature, planned)
    except OSError as e:
        why = f"unreadable ({e.strerror or e})"
    except Exception as e:  # a payload that unpickles wrongly despite its digest
        why = f"does not unpickle ({type(e).__name__})"
    if why:
        warn(f"checkpoint {path} dropped ({why}); training restarts from the beginning")
        return None
    segment = _segment.get()
    seconds = payload.get("wall_seconds")
    if segment is not None and isinstance(seconds, float) and seconds >= 0:
        segment.earlier = seconds
    return payload
