"""The celeba64 loader reads checkpoints in the official format as it will read the real ones.

Randomly initialized PyTorch networks (``benchmarks/torch_reference_images.py``) are saved
with ``torch.save(module.state_dict())`` at the official paths of a private data directory;
``pairs.load("celeba64-early")`` then goes through the real path: manifest entry (sha256
unknown), ``torch.load(weights_only=True)``, state-dict checks, constants computed the
official way and cached by sha256. The pair's source, potential and map are compared with
the PyTorch pipeline of ``CelebA64Benchmark`` on the same latents and noise.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from benchmarks import torch_reference_images as ref
from otarena import data, image_pairs, pairs, plugins
from otarena.errors import DataError

FOLDER = "w2-benchmark/CelebA64"
N = 8  # images per batch in these tests


def celeba_module():
    return next(m for m in plugins.load_folder("datasets") if m.__name__.endswith(".celeba64"))


def write_checkpoints(root, seed=0, which="Early"):
    torch.manual_seed(seed)
    nets = {"Final_G.pt": ref.Generator(), f"{which}_v1.pt": ref.ConvICNN64(std=0.02),
            f"{which}_v2.pt": ref.ConvICNN64(std=0.02)}
    ref.wgan_qc_init(nets["Final_G.pt"])
    ref.randomize_batch_norms(nets["Final_G.pt"], torch.Generator().manual_seed(seed))
    with torch.no_grad():  # convex potentials, as the official ones are
        for name in (f"{which}_v1.pt", f"{which}_v2.pt"):
            for k, p in nets[name].named_parameters():
                if k.startswith(("convex_layers", "pos_features")) and k.endswith("weight"):
                    p.abs_()
    (root / FOLDER).mkdir(parents=True, exist_ok=True)
    for name, net in nets.items():
        torch.save(net.state_dict(), root / FOLDER / name)
    return {name: net.eval() for name, net in nets.items()}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("OTARENA_DATA", str(tmp_path))
    # tiny constant estimates on a CPU (the official sizes are the defaults), with the batch
    # the tests draw: every network then compiles for one batch size only
    monkeypatch.setattr(image_pairs, "ESTIMATE_SIZE", N)
    monkeypatch.setattr(image_pairs, "COST_SIZE", N)
    pairs._forward_pair.cache_clear()
    yield tmp_path
    pairs._forward_pair.cache_clear()


def test_manifest_lists_the_official_files():
    for name in ["Final_G.pt"] + [f"{w}_{v}.pt" for w in ("Early", "Mid", "Late")
                                  for v in ("v1", "v2", "G_v1", "G_v2")]:
        entry = data.entry(f"{FOLDER}/{name}")
        assert entry.sha256 is None and entry.note
        assert entry.url == ("https://raw.githubusercontent.com/iamalexkorotin/"
                             f"Wasserstein2Benchmark/main/benchmarks/CelebA64/{name}")
    fam = pairs.family_of("celeba64-mid")
    assert fam.data_files("celeba64-mid") == [f"{FOLDER}/Final_G.pt", f"{FOLDER}/Mid_v1.pt",
                                              f"{FOLDER}/Mid_v2.pt"]


def test_missing_official_file_is_one_line(data_dir):
    with pytest.raises(DataError) as info:
        pairs.load("celeba64-late")
    message = str(info.value)
    assert "\n" not in message and "Final_G.pt" in message and "missing" in message
    assert "benchmarks/CelebA64/Final_G.pt" in message  # where to get it


def test_wrong_checkpoint_is_named(data_dir):
    write_checkpoints(data_dir)
    torch.save(ref.Discriminator().state_dict(), data_dir / FOLDER / "Early_v2.pt")
    with pytest.raises(DataError) as info:
        pairs.load("celeba64-early")
    assert "Early_v2.pt" in str(info.value) and "not a ConvICNN64 checkpoint" in str(info.value)


def test_pickled_objects_are_refused(data_dir):
    write_checkpoints(data_dir)
    torch.save({"net": ref.ConvICNN64()}, data_dir / FOLDER / "Early_v1.pt")  # a module, not tensors
    with pytest.raises(DataError) as info:
        pairs.load("celeba64-early")
    assert "Early_v1.pt" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow  # the ResNet generator and ConvICNN64 gradients compile for minutes on a CPU
def test_pair_matches_the_official_pipeline(data_dir):
    nets = write_checkpoints(data_dir)
    pair = pairs.load("celeba64-early")
    assert pair.dim == 12288 and pair.name == "celeba64-early"

    key = jax.random.key(3)
    x = pair.sample_source(key, N)
    k_clean, k_noise = jax.random.split(key)
    z = torch.tensor(np.asarray(jax.random.normal(k_clean, (N, 128))))
    noise = np.asarray(jax.random.normal(k_noise, (N, 12288)))
    with torch.no_grad():
        x_ref = nets["Final_G.pt"](z).numpy() + 0.01 * noise
    # float32 generators in two frameworks: the convolutions sum in a different order (and
    # differently on different CPUs: CI measured 2.07e-6 on one pixel of 49152), so a few
    # float32 ulps of the ~1-sized outputs
    np.testing.assert_allclose(np.asarray(x), x_ref, rtol=1e-5, atol=5e-6)

    x_t = torch.tensor(np.asarray(x))
    psi_ref, map_ref = ref.input_gradient(
        lambda v: 0.5 * (nets["Early_v1.pt"](v) + nets["Early_v2.pt"](v))[:, 0], x_t)
    psi, t = np.asarray(pair.potential(x)), np.asarray(pair.true_map(x))
    assert np.linalg.norm(psi - psi_ref) <= 1e-5 * np.linalg.norm(psi_ref)
    assert np.linalg.norm(t - map_ref) <= 1e-5 * np.linalg.norm(map_ref)
    np.testing.assert_allclose(np.asarray(pair.sample_target(key, N)), t, rtol=1e-6, atol=1e-7)

    # the constants: official estimators, on the monkeypatched tiny sizes, and said so
    shas = [data.sha256_of(data_dir / FOLDER / n) for n in ("Final_G.pt", "Early_v1.pt", "Early_v2.pt")]
    assert pair.provenance["sha256"] == shas
    assert "computed by otarena" in pair.provenance["constants"]
    assert "no official values are published" in pair.provenance["constants"]
    assert pair.source_var > 12288 * 1e-4 and pair.target_var > 0 and pair.cost > 0
    xs = pair.sample_source(jax.random.key(0), N)
    assert 0.1 * pair.cost < 0.5 * float(jnp.mean(jnp.sum((xs - pair.true_map(xs)) ** 2, 1))) < 10 * pair.cost


@pytest.mark.slow  # the ResNet generator and ConvICNN64 gradients compile for minutes on a CPU
def test_constants_are_cached_by_sha256(data_dir, monkeypatch):
    write_checkpoints(data_dir)
    first = pairs.load("celeba64-early")
    cache = json.loads((data_dir / image_pairs.CACHE_FILE).read_text())
    assert len(cache) == 1
    (entry,) = cache.values()
    assert entry["identity"]["files"][f"{FOLDER}/Final_G.pt"] == first.provenance["sha256"][0]

    def no_recompute(*args, **kwargs):
        raise AssertionError("constants recomputed although cached")

    monkeypatch.setattr(image_pairs, "compute_constants", no_recompute)
    pairs._forward_pair.cache_clear()
    again = pairs.load("celeba64-early")
    assert (again.source_var, again.target_var, again.cost) == (first.source_var, first.target_var,
                                                                first.cost)
    # other weights: other sha256, so the cache does not apply
    write_checkpoints(data_dir, seed=1)
    pairs._forward_pair.cache_clear()
    with pytest.raises(AssertionError, match="recomputed"):
        pairs.load("celeba64-early")


def test_constants_follow_the_official_definitions():
    """in_var = Var(G(z)) + D 0.01^2, out_var = Var(T(x)), cost = 1/2 E|x - T(x)|^2."""
    scale = jnp.linspace(0.5, 1.5, 12288)

    def clean(key, n):
        return scale * jax.random.normal(key, (n, 12288))

    got = image_pairs.compute_constants(clean, lambda x: 2.0 * x, estimate_size=4096, cost_size=2048)
    var = float(jnp.sum(scale**2))
    assert got["in_var"] == pytest.approx(var + 12288e-4, rel=0.01)
    assert got["out_var"] == pytest.approx(4 * (var + 12288e-4), rel=0.01)
    assert got["cost"] == pytest.approx(0.5 * (var + 12288e-4), rel=0.01)
