"""The offline image benchmark: image sources, the W2GN build recipe, the built pairs.

The end-to-end test is CI's tiny build: ``otarena build-image-pair mnist64-w2gn`` with one
iteration per potential, then the built pair through W2-images and two ConvNet rows at
the smoke budget.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from benchmarks import torch_reference_images as ref
from otarena import cli, data, image_recipe, map_task, pairs, plugins, solver
from otarena.budgets import Budget
from otarena.errors import DataError
from otarena.models import conv_icnn

SHARED = data.data_dir()  # the real data directory (MNIST), before tests redirect it


def recipe():
    return next(m for m in plugins.load_folder("datasets") if m.__name__.endswith(".mnist64_w2gn")).RECIPE


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    (tmp_path / "mnist").symlink_to(SHARED / "mnist")
    monkeypatch.setenv("OTARENA_DATA", str(tmp_path))
    pairs._forward_pair.cache_clear()
    yield tmp_path
    pairs._forward_pair.cache_clear()


def test_idx_reader_reads_mnist():
    images = image_recipe.read_idx_images(data.require("mnist/t10k-images-idx3-ubyte.gz"))
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert images.max() == 255 and images[:, 0, 0].max() == 0  # strokes on a black ground


def test_image_sampler_makes_64x64_rgb_images():
    images = image_recipe.load_images({"dataset": "mnist", "split": "test", "range": [0, 500]})
    plain = image_recipe.image_sampler(images)(jax.random.key(0), 64)
    assert plain.shape == (64, 12288)
    assert float(plain.min()) >= -1.0 and float(plain.max()) <= 1.0
    rgb = plain.reshape(64, 3, 64, 64)
    np.testing.assert_array_equal(np.asarray(rgb[:, 0]), np.asarray(rgb[:, 2]))  # grey
    assert float(jnp.mean(rgb[:, :, 0, 0])) == -1.0  # background
    tinted = image_recipe.image_sampler(images, blur=2.0, tint=(1.0, 0.8, 0.5))(jax.random.key(0), 64)
    t = (tinted.reshape(64, 3, 64, 64) + 1) / 2
    ratio = float(jnp.sum(t[:, 2]) / jnp.sum(t[:, 0]))
    assert ratio == pytest.approx(0.5, rel=0.05)  # blue at half the red
    roughness = lambda x: float(jnp.mean(jnp.abs(jnp.diff(x.reshape(64, 3, 64, 64), axis=3))))  # noqa: E731
    assert roughness(tinted) < 0.6 * roughness(plain)  # the same digits, blurred


def test_recipe_levels_go_from_far_to_near():
    levels = recipe()["levels"]
    assert list(levels) == ["early", "mid", "late"]
    blur = [levels[k]["v1"]["blur"] for k in levels]
    tint = [min(levels[k]["v1"]["tint"]) for k in levels]
    assert blur == sorted(blur, reverse=True) and tint == sorted(tint)
    src = recipe()["source"]["range"]
    for level in levels.values():  # targets are digits the source never draws
        for target in level.values():
            assert target["range"][0] >= src[1]
    assert pairs.family_of("mnist64-w2gn-mid").names == ("mnist64-w2gn-early", "mnist64-w2gn-mid",
                                                         "mnist64-w2gn-late")


def test_unbuilt_pair_says_how_to_build_it(data_dir):
    with pytest.raises(DataError) as info:
        pairs.load("mnist64-w2gn-late")
    message = str(info.value)
    assert "\n" not in message and "otarena build-image-pair mnist64-w2gn" in message


def test_built_weights_are_reproducible_official_state_dicts(tmp_path):
    params = {k: np.asarray(v) for k, v in conv_icnn.init(jax.random.key(0), std=0.05).items()}
    first, second = image_recipe.state_dict_bytes(params), image_recipe.state_dict_bytes(params)
    assert first == second
    (tmp_path / "x.pt").write_bytes(first)
    state = torch.load(tmp_path / "x.pt", weights_only=True)
    net = ref.ConvICNN64()
    net.load_state_dict(state)  # the official class reads it (strict)
    x = torch.rand(2, 12288) * 2 - 1
    with torch.no_grad():
        want = net.eval()(x)[:, 0].numpy()
    got = np.asarray(conv_icnn.conv_icnn64({k: jnp.asarray(v) for k, v in params.items()},
                                           jnp.asarray(x.numpy())))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_unknown_recipe_and_level_are_one_line(capsys):
    assert cli.main(["build-image-pair", "no-such-family"]) == 2
    assert "mnist64-w2gn" in capsys.readouterr().err
    assert cli.main(["build-image-pair", "mnist64-w2gn", "--levels", "early,final"]) == 2
    assert "no level final" in capsys.readouterr().err


TINY_BUILD = ["build-image-pair", "mnist64-w2gn", "--levels", "early", "--iterations", "1",
              "--pretrain-steps", "1", "--batch-size", "2", "--estimate-size", "8", "--cost-size", "4"]


@pytest.mark.long
@pytest.mark.timeout(2400)  # XLA compiles 64x64 convolution programs slowly on a CPU
def test_tiny_build_then_smoke_runs(data_dir, capsys):
    """A tiny build: one level, 1 iteration, 1 pretraining step, batch 2, tiny constants;
    rebuilding a potential gives the same bytes; the pair loads and its sampler is its map;
    Korotin's W2 and Amos' ConvNet objective row train and score on it; a damaged build is
    refused. ``long`` (make test-long): the build alone compiles convolution programs for
    6-7 min of a CPU core, each row for minutes more; the other image rows' settings are
    tested in test_image_solvers, the built checkpoints' format in the test above."""
    assert cli.main(TINY_BUILD) == 0
    folder = data_dir / "otarena-built" / "mnist64-w2gn"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["files"]) == ["early_v1.pt", "early_v2.pt"]
    assert manifest["w2gn"]["iterations"] == 1 and manifest["constants"]["early"]["estimate_size"] == 8
    first = manifest["files"]["early_v1.pt"]
    (folder / "early_v1.pt").unlink()
    assert cli.main(TINY_BUILD) == 0  # rebuilds v1 only
    out = capsys.readouterr().out
    assert "early_v2.pt: already built, kept" in out
    assert json.loads((folder / "manifest.json").read_text())["files"]["early_v1.pt"] == first

    pair = pairs.load("mnist64-w2gn-early")
    assert "computed at build time" in pair.provenance["constants"]
    x = pair.sample_source(jax.random.key(0), 4)
    np.testing.assert_allclose(np.asarray(pair.sample_target(jax.random.key(0), 4)),
                               np.asarray(pair.true_map(x)), rtol=1e-6, atol=1e-6)
    with pytest.raises(DataError, match="not built"):
        pairs.load("mnist64-w2gn-mid")

    for name in ("W2-images", "conv-objective"):
        cell = map_task.Cell("mnist64-w2gn-early", False, solver.get(name), 0, Budget("smoke"), 4)
        [record] = map_task.run_cells([cell])
        assert record["status"] in ("ok", "diverged")
        assert record["iterations"] >= 1
        assert all(np.isfinite(v) for v in record["metrics"].values()), (name, record["metrics"])

    # a damaged build is refused, with its manifest's sha256 named
    raw = bytearray((folder / "early_v2.pt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (folder / "early_v2.pt").write_bytes(bytes(raw))
    pairs._forward_pair.cache_clear()
    with pytest.raises(DataError, match="differs from its build manifest"):
        pairs.load("mnist64-w2gn-early")
