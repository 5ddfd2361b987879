"""The data directory, the manifest of official files, checksums and downloads.

Layout of the data directory (``$OTARENA_DATA`` or a per-user cache)::

    w2-benchmark/Mix3toMix10/{D}_v1.pt ...   official HD potentials
    mnist/*.gz                               the four MNIST IDX files
    world/*                                  population grid for the spherical problem

Every file otarena reads is listed in ``datasets/manifest.json`` with the URL it comes
from and its sha256, so a missing or damaged file is reported with what was expected.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from otarena.errors import DataError
from otarena.plugins import repo_root

DATA_ENV = "OTARENA_DATA"
UNUSABLE = ("missing", "corrupt", "unreadable")


def data_dir() -> Path:
    """``$OTARENA_DATA`` if set, else ``$XDG_CACHE_HOME/otarena/data`` (~/.cache/...)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser().resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return (cache / "otarena" / "data").resolve()


@dataclass(frozen=True)
class DataFile:
    path: str  # relative to the data directory
    family: str
    url: str
    sha256: str | None  # None: no published checksum known (see `note`)
    size: int | None
    note: str = ""

    @property
    def name(self) -> str:
        return Path(self.path).name

    def local_path(self) -> Path:
        return data_dir() / self.path


@lru_cache(maxsize=1)
def manifest() -> dict[str, DataFile]:
    path = repo_root() / "datasets" / "manifest.json"
    entries = json.loads(path.read_text())["files"]
    return {e["path"]: DataFile(**e) for e in entries}


def entry(relpath: str) -> DataFile:
    try:
        return manifest()[relpath]
    except KeyError:
        raise DataError(f"{relpath} is not in datasets/manifest.json") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _how_to_get(f: DataFile) -> str:
    return (f"get it with `otarena data fetch {f.family}` (from {f.url}) or point "
            f"{DATA_ENV} at a directory that has {f.path}")


def describe_problem(f: DataFile, problem: str) -> str:
    """The one-line message for a missing or damaged file."""
    expected = f.sha256 or "unknown (no published checksum; see datasets/manifest.json)"
    return (f"{f.name}: {problem} at {f.local_path()}; expected sha256 {expected}; "
            f"{_how_to_get(f)}")


def status(f: DataFile) -> tuple[str, str]:
    """('ok' | 'missing' | 'corrupt' | 'unreadable' | 'unverified', detail)."""
    p = f.local_path()
    if not p.is_file():
        return "missing", "missing"
    try:
        found = sha256_of(p)
    except OSError as e:  # no read permission, an I/O error
        return "unreadable", f"unreadable ({e.strerror or e})"
    if f.sha256 is None:
        return "unverified", f"sha256 {found} (no published checksum to compare with)"
    if found != f.sha256:
        size = p.stat().st_size
        why = f"truncated ({size} of {f.size} bytes)" if f.size and size < f.size else "altered"
        return "corrupt", f"corrupt, {why}: found sha256 {found}"
    return "ok", "ok"


_verified: dict[tuple[str, int, int], str] = {}


def require(relpath: str) -> Path:
    """The local path of a manifest file, after checking that it is there and intact."""
    f = entry(relpath)
    p = f.local_path()
    if p.is_file():
        st = p.stat()
        memo = (str(p), st.st_size, st.st_mtime_ns)
        if _verified.get(memo) == f.sha256:
            return p
    state, detail = status(f)
    if state in UNUSABLE:
        raise DataError(describe_problem(f, detail))
    st = p.stat()
    _verified[(str(p), st.st_size, st.st_mtime_ns)] = f.sha256
    return p


def files_of(family: str | None = None) -> list[DataFile]:
    files = [f for f in manifest().values() if family in (None, f.family)]
    if family is not None and not files:
        families = sorted({f.family for f in manifest().values()})
        raise DataError(f"no data family {family!r}; known: {', '.join(families)}")
    return files


def fetch(f: DataFile, force: bool = False, timeout: float = 60.0) -> Path:
    """Download one file to the data directory, atomically and checked against its sha256."""
    dest = f.local_path()
    if dest.is_file() and not force and status(f)[0] in ("ok", "unverified"):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{f.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(f.url, timeout=timeout) as response:
                    shutil.copyfileobj(response, out)
            except OSError as e:  # URLError and socket errors are OSErrors
                raise DataError(f"{f.name}: download from {f.url} failed ({e}); "
                                f"copy the file to {dest} by hand") from None
        found = sha256_of(Path(tmp))
        if f.sha256 is not None and found != f.sha256:
            raise DataError(f"{f.name}: downloaded file from {f.url} has sha256 {found}, "
                            f"expected {f.sha256}; not installed")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
