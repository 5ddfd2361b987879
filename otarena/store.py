"""The result store: JSON-lines files of result records, one record per run id.

A record is appended as one line under an exclusive ``flock`` on the file, then flushed
and fsynced, so concurrent writers never interleave and a reader never sees half a
record. A writer killed mid-line leaves a tail without a newline; the next writer cuts
it off before appending, and readers ignore it. A run id already in the store is not
written again unless ``replace`` is asked for; readers keep the last record of an id.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = 1
DEFAULT_FILE = "records.jsonl"


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def run_id(identity: Mapping[str, Any]) -> str:
    """A short hash of everything that determines a result."""
    return hashlib.sha256(canonical(identity).encode()).hexdigest()[:16]


def _parse_lines(raw: bytes) -> Iterator[dict]:
    for line in raw.split(b"\n")[:-1]:  # the last piece is empty or an unfinished line
        if line.strip():
            yield json.loads(line)


class Store:
    def __init__(self, root: str | Path, filename: str = DEFAULT_FILE):
        self.root = Path(root)
        self.filename = filename

    @property
    def path(self) -> Path:
        return self.root / self.filename

    def files(self) -> list[Path]:
        return sorted(self.root.glob("*.jsonl")) if self.root.is_dir() else []

    @contextmanager
    def _locked(self):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def records(self) -> list[dict]:
        """Every record of every ``*.jsonl`` file in the store, the last one per run id."""
        latest: dict[str, dict] = {}
        for path in self.files():
            for record in _parse_lines(path.read_bytes()):
                latest[record["run_id"]] = record
        return list(latest.values())

    def ids(self) -> set[str]:
        return {r["run_id"] for r in self.records()}

    def add(self, record: Mapping[str, Any], replace: bool = False) -> bool:
        """Append ``record``; False (and nothing written) if its run id is there already."""
        line = (canonical(record) + "\n").encode()
        with self._locked() as f:
            f.seek(0)
            raw = f.read()
            complete = raw.rfind(b"\n") + 1
            if complete < len(raw):  # a writer died mid-line: drop its partial record
                f.truncate(complete)
            if not replace and any(r["run_id"] == record["run_id"] for r in _parse_lines(raw)):
                return False
            f.seek(0, os.SEEK_END)
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        return True
