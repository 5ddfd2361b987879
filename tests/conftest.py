import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tests and CI read the official files from the shared copy unless told otherwise.
if not os.environ.get("OTARENA_DATA") and SHARED_DATA.is_dir():
    os.environ["OTARENA_DATA"] = str(SHARED_DATA)

OFFICIAL_DIMS = (2, 4, 8, 16, 32, 64, 128)


def otarena(*args, check=True):
    """Run the CLI in a fresh process from the repository root."""
    done = subprocess.run([sys.executable, "-m", "otarena.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, env=os.environ.copy())
    if check and done.returncode != 0:
        raise AssertionError(f"otarena {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def pytest_collection_modifyitems(config, items):
    has_gpu = any(d.platform == "gpu" for d in jax.devices())
    asked = config.getoption("-m") or ""
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a GPU"))
        if "long" in item.keywords and "long" not in asked:
            item.add_marker(pytest.mark.skip(reason="long run: select with -m long"))
    # The slow tests first: pytest-xdist deals the first tests out to its workers in turn, so
    # the minutes-long ones start early on both workers instead of one of them ending alone.
    items.sort(key=lambda item: "slow" not in item.keywords)


@pytest.fixture(scope="session")
def hd_module():
    from otarena import plugins

    return next(m for m in plugins.load_folder("datasets") if m.__name__.endswith(".hd"))
