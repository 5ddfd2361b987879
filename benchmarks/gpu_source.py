"""Which commit a copy of the code without ``.git`` holds (the device machine's copy).

    python -m benchmarks.gpu_source write .gpu-data/source.json   # here, in the checkout
    python -m benchmarks.gpu_source check .gpu-data/source.json   # there, before the runs

``write`` records HEAD, whether tracked code differs from it (as otarena.provenance
counts it: results/ and reports/ aside) and the sha256 of every tracked file. ``check``
hashes the copy: if every file matches, it prints ``export OTARENA_CODE_COMMIT=...`` and
``OTARENA_CODE_DIRTY=...`` for the shell to eval, so records made from the copy name the
commit (otarena.provenance reads them only where git cannot name one); otherwise it says
which files differ on stderr and prints nothing, and records say the commit is unknown.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE_CODE = ("results/", "reports/")  # as otarena.provenance.git_state


def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def write(target: Path) -> dict:
    files = [f for f in _git("ls-files", "-z").split("\0")
             if f and not f.startswith(OUTSIDE_CODE) and (ROOT / f).is_file()]
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".",
                      ":(exclude)results", ":(exclude)reports").strip())
    found = {"commit": _git("rev-parse", "HEAD").strip(), "dirty": dirty,
             "sha256": {f: _sha256(ROOT / f) for f in files}}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(found, indent=0, sort_keys=True) + "\n")
    return found


def check(source: Path) -> list[str]:
    """The files of the copy that differ from the record (empty: the copy is that code)."""
    found = json.loads(source.read_text())
    return [f for f, digest in sorted(found["sha256"].items()) if _sha256(ROOT / f) != digest]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("write", "check"):
        print("usage: python -m benchmarks.gpu_source write|check FILE", file=sys.stderr)
        return 2
    path = Path(argv[1])
    if argv[0] == "write":
        found = write(path)
        print(f"{path}: commit {found['commit'][:12]}{' (dirty)' if found['dirty'] else ''}, "
              f"{len(found['sha256'])} files")
        return 0
    if not path.is_file():
        print(f"{path} not found: records will not name a commit", file=sys.stderr)
        return 0
    differ = check(path)
    if differ:
        print(f"the copy differs from {path} in {len(differ)} files ({', '.join(differ[:5])}"
              f"{', ...' if len(differ) > 5 else ''}): records will not name a commit",
              file=sys.stderr)
        return 0
    found = json.loads(path.read_text())
    print(f"export OTARENA_CODE_COMMIT={found['commit']} "
          f"OTARENA_CODE_DIRTY={int(bool(found['dirty']))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
