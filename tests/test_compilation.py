"""JAX's persistent compilation cache is on by default: a second identical run (another
process, another store) loads every program it needs and compiles none."""

import json
import os
import subprocess
import sys

import pytest

from otarena import compilation
from otarena.plugins import repo_root


def test_cache_folder_defaults_to_the_user_cache_and_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.delenv(compilation.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compilation.cache_dir() == tmp_path / "otarena" / "jax"
    monkeypatch.setenv(compilation.ENV, "off")
    assert compilation.cache_dir() is None
    monkeypatch.setenv(compilation.ENV, str(tmp_path / "elsewhere"))
    assert compilation.cache_dir() == tmp_path / "elsewhere"


def _run(store, cache):
    env = {**os.environ, compilation.ENV: str(cache)}
    done = subprocess.run(
        [sys.executable, "-m", "otarena.cli", "run", "--pairs", "hd-2", "--solvers",
         "W2", "--budget", "smoke", "--iterations", "20", "--eval-every", "10",
         "--eval-size", "1024", "--results", str(store), "--quiet"],
        cwd=repo_root(), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    [line] = (store / "records.jsonl").read_text().splitlines()
    return json.loads(line)


@pytest.mark.slow
def test_a_second_identical_run_compiles_nothing(tmp_path):
    cache = tmp_path / "cache"
    first = _run(tmp_path / "first", cache)
    entries = set(os.listdir(cache))
    assert entries, "the first run wrote no compiled program to the cache"
    second = _run(tmp_path / "second", cache)
    assert set(os.listdir(cache)) == entries  # nothing new was compiled
    assert second["metrics"] == first["metrics"]
    # loading is not compiling: the recorded compile time drops
    assert second["timing"]["compile_seconds"] < 0.5 * first["timing"]["compile_seconds"]
