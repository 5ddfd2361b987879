"""Missing, truncated, altered and malformed data files give one clear line."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from otarena import data, pairs
from otarena.errors import DataError
from otarena.models import dense_icnn

FILE = "w2-benchmark/Mix3toMix10/4_v1.pt"


SOURCE = data.data_dir()  # the real data directory, before any test redirects it


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    """A private data directory with the dim-4 checkpoints, and no cached pairs."""
    src = SOURCE
    for rel in ("w2-benchmark/Mix3toMix10/4_v1.pt", "w2-benchmark/Mix3toMix10/4_v2.pt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / rel, tmp_path / rel)
    monkeypatch.setenv("OTARENA_DATA", str(tmp_path))
    pairs._forward_pair.cache_clear()
    yield tmp_path
    pairs._forward_pair.cache_clear()


def one_line_error(name="hd-4"):
    with pytest.raises(DataError) as info:
        pairs.load(name)
    message = str(info.value)
    assert "\n" not in message
    return message


def check_message(message, path):
    entry = data.entry(FILE)
    assert message.startswith("4_v1.pt: ")
    assert str(path) in message
    assert entry.sha256 in message
    assert "otarena data fetch hd" in message and entry.url in message


def test_missing_file(data_copy):
    path = data_copy / FILE
    path.unlink()
    message = one_line_error()
    check_message(message, path)
    assert "missing" in message


def test_truncated_file(data_copy):
    path = data_copy / FILE
    path.write_bytes(path.read_bytes()[:1000])
    message = one_line_error()
    check_message(message, path)
    assert "truncated (1000 of" in message


def test_altered_file(data_copy):
    path = data_copy / FILE
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    message = one_line_error()
    check_message(message, path)
    assert "altered" in message


def test_cli_reports_one_line_and_exit_2(data_copy):
    (data_copy / FILE).unlink()
    env = {**os.environ, "OTARENA_DATA": str(data_copy)}
    done = subprocess.run([sys.executable, "-m", "otarena.cli", "run", "--pairs", "hd-4",
                           "--solvers", "linear", "--results", str(data_copy / "store")],
                          capture_output=True, text=True, env=env, cwd=data.repo_root())
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("otarena: error: 4_v1.pt: missing")
    assert not (data_copy / "store").exists() or not any((data_copy / "store").iterdir())


def test_verify_names_the_bad_file(data_copy):
    path = data_copy / FILE
    path.write_bytes(path.read_bytes()[:10])
    states = {f.path: data.status(f)[0] for f in data.files_of("hd")}
    assert states[FILE] == "corrupt"
    assert states["w2-benchmark/Mix3toMix10/4_v2.pt"] == "ok"
    assert states["w2-benchmark/Mix3toMix10/8_v1.pt"] == "missing"


def test_fetch_checks_the_checksum(data_copy, monkeypatch):
    """fetch() installs a file whose sha256 matches and refuses one that does not."""
    good = data.entry(FILE)
    (data_copy / FILE).unlink()
    source = SOURCE
    local = data.DataFile(**{**good.__dict__, "url": (source / FILE).as_uri()})
    assert data.fetch(local) == data_copy / FILE
    assert data.status(good)[0] == "ok"

    wrong = data.DataFile(**{**good.__dict__, "path": "w2-benchmark/Mix3toMix10/x.pt",
                             "url": (source / "w2-benchmark/Mix3toMix10/8_v1.pt").as_uri()})
    with pytest.raises(DataError, match="expected " + good.sha256):
        data.fetch(wrong)
    assert not (data_copy / "w2-benchmark/Mix3toMix10/x.pt").exists()
    leftovers = [p for p in (data_copy / "w2-benchmark/Mix3toMix10").iterdir() if p.suffix == ".part"]
    assert leftovers == []


def test_unreachable_download_is_one_line(data_copy):
    entry = data.DataFile(**{**data.entry(FILE).__dict__, "url": "http://127.0.0.1:9/none.pt"})
    (data_copy / FILE).unlink()
    with pytest.raises(DataError) as info:
        data.fetch(entry, timeout=5)
    assert "\n" not in str(info.value) and "download from" in str(info.value)


def random_dense_icnn_state(dim, seed):
    """A convex DenseICNN of dimension ``dim`` in the official state-dict format."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in dense_icnn.expected_shapes(dim, dense_icnn.hidden_sizes(dim)).items():
        w = rng.normal(scale=0.1, size=shape).astype(np.float32)
        if key.startswith(("convex_layers", "final_layer")):
            w = np.abs(w) / shape[-1]
        state[key] = torch.from_numpy(w)
    return state


def test_dim_256_loads_from_user_files(tmp_path, monkeypatch, hd_module):
    """No official 256 files here: the loader runs on files in the official format."""
    folder = tmp_path / "w2-benchmark" / "Mix3toMix10"
    folder.mkdir(parents=True)
    for i, version in enumerate(("v1", "v2")):
        torch.save(random_dense_icnn_state(256, i), folder / f"256_{version}.pt")
    monkeypatch.setenv("OTARENA_DATA", str(tmp_path))
    monkeypatch.setattr(hd_module, "COMPUTED_CONSTANTS_SIZE", 2**13)
    pairs._forward_pair.cache_clear()
    try:
        pair = pairs.load("hd-256")
        assert pair.dim == 256 and "computed by otarena" in pair.provenance["constants"]
        x, y = pair.sample_coupled(__import__("jax").random.key(0), 1024)
        assert x.shape == y.shape == (1024, 256)
        # standardized the official way: zero mean, mean coordinate variance 1
        assert abs(float(y.mean())) < 0.1
        assert float(y.var(0).mean()) == pytest.approx(1.0, rel=0.1)
        assert data.status(data.entry("w2-benchmark/Mix3toMix10/256_v1.pt"))[0] == "unverified"

        torch.save({"final_layer.weight": torch.zeros(1, 3)}, folder / "256_v2.pt")
        pairs._forward_pair.cache_clear()
        with pytest.raises(DataError, match=r"^256_v2.pt: not a DenseICNN checkpoint of dimension 256"):
            pairs.load("hd-256")
    finally:
        pairs._forward_pair.cache_clear()
