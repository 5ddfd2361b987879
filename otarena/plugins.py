"""Plugin folders (``solvers/``, ``datasets/``) loaded by path.

They are not importable packages: a top-level name ``datasets`` would shadow the popular
package of that name. Each file is imported once under a private module name.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from otarena.errors import OtarenaError


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def load_file(path: Path, namespace: str = "otarena_plugins") -> ModuleType:
    """Import one Python file as module ``{namespace}.{stem}`` (once per path)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise OtarenaError(f"no such plugin file: {path}")
    name = f"{namespace}.{path.parent.name}.{path.stem}"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:  # a user's file: say where, in one line
        del sys.modules[name]
        raise OtarenaError(f"{e.filename}, line {e.lineno}: {e.msg}") from None
    except Exception:
        del sys.modules[name]
        raise
    return module


@lru_cache(maxsize=None)
def load_folder(folder: str) -> tuple[ModuleType, ...]:
    """Every ``*.py`` file of a plugin folder of the repository, sorted by name."""
    root = repo_root() / folder
    return tuple(load_file(p) for p in sorted(root.glob("*.py")) if not p.name.startswith("_"))


def collect(folder: str, attribute: str, key) -> dict:
    """The module-level ``attribute`` of every plugin file of ``folder`` that defines it,
    keyed by ``key(entry)``, in the order of the files (a pair or Sinkhorn family registry)."""
    found = {}
    for module in load_folder(folder):
        entry = getattr(module, attribute, None)
        if entry is not None:
            found[key(entry)] = entry
    return found
