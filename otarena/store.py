"""The result store: JSON-lines files of result records, one record per run id.

A record is appended as one line under an exclusive ``flock`` on the file, then flushed
and fsynced, so concurrent writers never interleave and a reader never sees half a
record. A writer killed mid-line leaves a tail without a newline; the next writer cuts
it off before appending, and readers ignore it. A run id already in the store is not
written again unless ``replace`` is asked for or its record there is a failure (status
``failed``: the cell is tried again); readers keep the last record of an id.

A store reads only its own files (:data:`PATTERNS`). A complete line that is not a record
(torn by a crash in the middle of the file, a git conflict marker, an object without a
run id) is skipped with a warning naming the file and line. Records are strict JSON: a
non-finite number is written as ``null`` and listed under ``non_finite`` with its value.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from otarena.errors import OtarenaError, warn

SCHEMA = 1
DEFAULT_FILE = "records.jsonl"
# What otarena writes (records.jsonl: map cells; metaot-sinkhorn.jsonl: Sinkhorn cells; each
# task names its file), and copies merged in from other machines named like them
# (records-gpu.jsonl). Any other *.jsonl in the folder is not read.
PATTERNS = ("records*.jsonl", "metaot-sinkhorn*.jsonl")


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def run_id(identity: Mapping[str, Any]) -> str:
    """A short hash of everything that determines a result."""
    return hashlib.sha256(canonical(identity).encode()).hexdigest()[:16]


def writable_folder(path: str | Path, what: str, probe: str | None = None) -> Path:
    """``path`` as a folder that can be written (created if needed), else one OtarenaError.

    ``probe``: a file in it to open for appending (created if missing), so a read-only file
    is found too.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if probe is not None:
            with open(path / probe, "ab"):
                pass
        elif not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except (FileExistsError, NotADirectoryError):
        raise OtarenaError(f"cannot write {what} {path}: a file is in the way, not a folder") from None
    except OSError as e:
        raise OtarenaError(f"cannot write {what} {path}: {e.strerror or e}") from None
    return path


def _strict(obj: Any, path: str, found: dict[str, str]) -> Any:
    """``obj`` with each non-finite float replaced by None, its path and value in ``found``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        found[path] = "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
        return None
    if isinstance(obj, Mapping):
        return {k: _strict(v, f"{path}.{k}" if path else str(k), found) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v, f"{path}.{i}", found) for i, v in enumerate(obj)]
    return obj


def encode(record: Mapping[str, Any]) -> str:
    """One line of strict JSON (no bare NaN or Infinity, which most JSON readers reject)."""
    found: dict[str, str] = {}
    clean = _strict(record, "", found)
    if found:
        clean["non_finite"] = {**clean.get("non_finite", {}), **found}
    return json.dumps(clean, sort_keys=True, separators=(",", ":"), default=str, allow_nan=False)


def _parse_lines(raw: bytes, path: Path) -> Iterator[dict]:
    # the last piece is empty or an unfinished line (a writer killed mid-record)
    for number, line in enumerate(raw.split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))  # old records may hold bare NaN: read them
        except UnicodeDecodeError:
            warn(f"{path} line {number}: not UTF-8 text; skipped")
            continue
        except ValueError as e:
            warn(f"{path} line {number}: not JSON ({e}); skipped")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("run_id"), str):
            warn(f"{path} line {number}: not a result record (no run_id); skipped")
            continue
        yield record


class Store:
    def __init__(self, root: str | Path, filename: str = DEFAULT_FILE):
        self.root = Path(root)
        self.filename = filename

    @property
    def path(self) -> Path:
        return self.root / self.filename

    def files(self) -> list[Path]:
        """The store's own files (:data:`PATTERNS` and this store's file), sorted by name."""
        if not self.root.is_dir():
            return []
        own = {p for pattern in PATTERNS for p in self.root.glob(pattern)}
        own |= {self.path} if self.path.is_file() else set()
        for other in sorted(set(self.root.glob("*.jsonl")) - own):
            warn(f"{other} is not read: a store reads {' and '.join(PATTERNS)}")
        return sorted(own)

    def check_writable(self, filename: str | None = None) -> None:
        """Fail now, not after the training, if records cannot be written here (to
        ``filename``, default the store's file)."""
        writable_folder(self.root, "the result store", probe=filename or self.filename)
        if not os.access(self.root, os.W_OK | os.X_OK):  # room for checkpoints beside it
            raise OtarenaError(f"cannot write the result store {self.root}: Permission denied")

    @contextmanager
    def _locked(self, path: Path):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def records(self) -> list[dict]:
        """Every record of the store's files, the last one per run id."""
        latest: dict[str, dict] = {}
        for path in self.files():
            for record in _parse_lines(path.read_bytes(), path):
                latest[record["run_id"]] = record
        return list(latest.values())

    def ids(self) -> set[str]:
        return {r["run_id"] for r in self.records()}

    def add(self, record: Mapping[str, Any], replace: bool = False,
            filename: str | None = None) -> bool:
        """Append ``record`` to ``filename`` (default the store's file; a task names its
        own); False (and nothing written) if its run id is there already, unless as a
        failure."""
        line = (encode(record) + "\n").encode()
        path = self.root / (filename or self.filename)
        with self._locked(path) as f:
            f.seek(0)
            raw = f.read()
            complete = raw.rfind(b"\n") + 1
            if complete < len(raw):  # a writer died mid-line: drop its partial record
                f.truncate(complete)
            if not replace and any(r["run_id"] == record["run_id"] and r.get("status") != "failed"
                                  for r in _parse_lines(raw, path)):
                return False
            f.seek(0, os.SEEK_END)
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        return True
