"""The Meta OT problem families: MNIST pairs and the spherical supply-demand problem."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otarena import data, plugins
from otarena.errors import DataError


def _module(stem):
    return next(m for m in plugins.load_folder("datasets") if m.__name__.endswith("." + stem))


@pytest.fixture(scope="module")
def mnist():
    return _module("mnist")


@pytest.fixture(scope="module")
def spherical():
    return _module("spherical")


# -- MNIST ----------------------------------------------------------------------------------

def test_idx_files_parse_to_the_published_shapes_and_counts(mnist):
    train, train_labels = mnist.load("train")
    test, test_labels = mnist.load("test")
    assert train.shape == (60000, 784) and test.shape == (10000, 784)
    assert train.dtype == np.uint8 and train.max() == 255 and train.min() == 0
    # Per-digit counts published with the files (../shared/data/mnist/README.md).
    assert np.bincount(train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918,
                                                  6265, 5851, 5949]
    assert np.bincount(test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                 974, 1009]


def test_a_missing_or_damaged_idx_file_is_one_clear_error(mnist, tmp_path, monkeypatch):
    good = data.require("mnist/t10k-images-idx3-ubyte.gz")  # the shared copy
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: missing"):
        mnist.load("test")
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / good.name).write_bytes(good.read_bytes()[:1000])
    with pytest.raises(DataError, match="corrupt, truncated"):
        mnist.load("test")


def test_pixel_grid_is_the_papers_2d_layout(mnist):
    points = mnist.pixel_grid()
    # The paper's construction: rows from y=1 down to y=0, columns from x=0 to x=1.
    expected = [[j, i] for i in np.linspace(1, 0, 28) for j in np.linspace(0, 1, 28)]
    np.testing.assert_allclose(points, expected, atol=1e-15)


def test_grid_is_a_named_option_and_the_1d_grid_of_table_1_is_the_default(mnist):
    """The code that made Table 1 put the 784 pixels at linspace(0, 1, 784) on a line."""
    family = mnist.build()
    assert family.options == {"grid": "1d"} and family.variant == "1-D grid"
    assert family.provenance["grid"] == "1d" and "linspace" in family.provenance["atoms"]
    np.testing.assert_array_equal(family.x, np.linspace(0, 1, 784).reshape(784, 1))
    np.testing.assert_array_equal(family.y, family.x)
    with jax.enable_x64(True):
        cost = np.asarray(family.cost_matrix())
    assert cost.shape == (784, 784)
    np.testing.assert_allclose([cost[0, 783], cost[0, 1]], [1.0, (1 / 783) ** 2])
    two = mnist.build(grid="2d")
    assert two.options == {"grid": "2d"} and two.variant == "2-D grid"
    np.testing.assert_array_equal(two.x, mnist.pixel_grid())
    assert two.provenance != family.provenance  # so a trained model's cache key differs
    with pytest.raises(DataError, match="unknown MNIST grid '3d'; known: 1d, 2d"):
        mnist.build(grid="3d")
    with pytest.raises(DataError, match="unknown mnist family options"):
        mnist.build(pixels=28)


def test_test_pairs_are_the_ones_the_papers_jax_drew(mnist):
    """JAX >= 0.5 draws other digits from PRNGKey(0) (jax_threefry_partitionable=True).

    The pinned indices were computed with JAX 0.4.13, whose default is the old
    non-partitionable threefry (and with JAX 0.10 under partitionable=False); today's
    default draws [5016, 3732, 5460, 822, 7937] and [1048, 1132, 5093, 6425, 3610].
    """
    family = mnist.build()
    before = jax.config.jax_threefry_partitionable
    _, _, info = family.test_instances(10)
    assert info["indices_a"][:5] == [8924, 8830, 7095, 5700, 5938]
    assert info["indices_b"][:5] == [6994, 1664, 4543, 6622, 6232]
    assert "partitionable=False" in info["prng"]
    assert jax.config.jax_threefry_partitionable == before  # scoped to the draws only


def test_test_pairs_are_fixed_normalized_and_dtype_independent(mnist):
    family = mnist.build()
    a32, b32, info = family.test_instances(10)
    with jax.enable_x64(True):
        a64, b64, info64 = family.test_instances(10)
    assert a32.dtype == jnp.float32 and a64.dtype == jnp.float64
    assert info == info64 and len(info["indices_a"]) == 10
    np.testing.assert_allclose(a32, a64, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(a64).sum(1), 1.0, rtol=1e-12)
    assert (np.asarray(a64) >= 0).all() and (np.asarray(a64) == 0).any()  # background pixels
    # The pairs are the first n of the paper's batch of 128: a prefix does not change them.
    a3, _, info3 = family.test_instances(3)
    assert info3["indices_a"] == info["indices_a"][:3]
    images, labels = mnist.load("test")
    i = info["indices_a"][4]
    np.testing.assert_allclose(a64[4], images[i] / images[i].sum(), rtol=1e-12)
    assert info["labels_a"][4] == labels[i]


def test_training_pairs_are_sampled_on_device_inside_jit(mnist):
    family = mnist.build()
    sample = jax.jit(family.sample_train, static_argnums=1)
    a, b = sample(jax.random.key(1), 8)
    a2, _ = sample(jax.random.key(2), 8)
    assert a.shape == b.shape == (8, 784)
    np.testing.assert_allclose(np.asarray(a).sum(1), 1.0, rtol=1e-5)
    assert not np.allclose(a, a2) and not np.allclose(a, b)
    # the measures are the training digits the paper's sampler picks for this key
    train, _ = mnist.load("train")
    i, j = mnist.pair_indices(jax.random.key(1), 8, len(train))
    np.testing.assert_allclose(a, train[np.asarray(i)] / train[np.asarray(i)].sum(1, keepdims=True),
                               rtol=1e-5)
    np.testing.assert_allclose(b, train[np.asarray(j)] / train[np.asarray(j)].sum(1, keepdims=True),
                               rtol=1e-5)


# -- spherical ------------------------------------------------------------------------------

def test_geotiff_and_npy_grids_are_the_same_array(spherical):
    tif = data.require("world/gpw_v4_population_density_rev11_2020_15_min.tif")
    npy = data.require("world/pop-15min.npy")
    a, b = spherical.read_grid(tif), spherical.read_grid(npy)
    assert a.shape == (720, 1440)
    np.testing.assert_array_equal(a, b)
    assert (a > 0).sum() == 229_248  # cells with positive density (world/README.md)


def test_grid_choice_prefers_the_papers_variant_and_says_which(spherical, tmp_path, monkeypatch):
    grid, path = spherical.find_grid()
    assert grid.relpath == "world/pop-15min.npy" and "unadjusted" in grid.variant
    grid, _ = spherical.find_grid("gpw_v4_population_density_rev11_2020_15_min.tif")
    assert grid.relpath.endswith(".tif") and grid.in_manifest
    with pytest.raises(DataError, match="unknown population grid"):
        spherical.find_grid("nope.tif")
    # A data directory holding the paper's file name is taken as the adjusted variant;
    # it is not in the manifest, so its sha256 is recorded rather than checked.
    (tmp_path / "world").mkdir()
    shutil.copy(data.require("world/gpw_v4_population_density_rev11_2020_15_min.tif"),
                tmp_path / "world" / "pop-15min.tif")
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    family = spherical.build()
    grid_info = family.provenance["population_grid"]
    assert grid_info["file"] == "world/pop-15min.tif"
    assert grid_info["variant"].startswith("adjusted") and not grid_info["checked_against_manifest"]
    assert grid_info["sha256"] == data.sha256_of(tmp_path / "world" / "pop-15min.tif")
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "empty"))
    with pytest.raises(DataError, match="no population grid"):
        spherical.find_grid()


def test_locations_follow_population_and_land(spherical):
    path = data.require("world/pop-15min.npy")
    density = np.load(path)
    supply, demand, x, y = spherical.locations(path)
    assert x.shape == (100, 3) and y.shape == (10000, 3)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-12)
    flat = density.ravel()
    assert (flat[demand] > 0).all() and (flat[supply] > 0).all()
    # demand follows population: its cells are far denser than land cells on average
    assert flat[demand].mean() > 20 * flat[flat > 0].mean()
    # reproducible: the paper's numpy seeds
    again = spherical.locations.__wrapped__(path)
    np.testing.assert_array_equal(again[1], demand)


def test_cell_centres_and_great_circle_cost(spherical):
    v = spherical.cell_centres(np.array([0, 719 * 1440 + 1439, 360 * 1440 + 720]))
    lat0, lon0 = np.deg2rad(89.875), np.deg2rad(-179.875)
    np.testing.assert_allclose(v[0], [np.cos(lat0) * np.cos(lon0), np.cos(lat0) * np.sin(lon0),
                                      np.sin(lat0)], atol=1e-12)
    assert v[1][2] < -0.99  # the last row is the south
    with jax.enable_x64(True):
        x = jnp.array([[1.0, 0, 0], [0, 1.0, 0]])
        c = np.asarray(spherical.great_circle(x, x))
    np.testing.assert_allclose(c[0, 1], np.pi / 2)
    np.testing.assert_allclose(np.diag(c), np.arccos(1 / 1.0001))  # the paper's 1e-4 guard


def test_spherical_test_weights_are_the_ones_the_papers_jax_drew(spherical):
    """First test instance, as JAX 0.4.13 (non-partitionable threefry) draws it."""
    family = spherical.build()
    before = jax.config.jax_threefry_partitionable
    with jax.enable_x64(True):
        a, b, info = family.test_instances(2)
    np.testing.assert_allclose(a[0, :6], [0.03613579174041039, 0.0024531561161120485, 0.0,
                                          0.016774148098836105, 0.0, 0.016690563107997446],
                               rtol=1e-14)
    np.testing.assert_allclose(b[0, :4], [4.420935814951177e-05, 0.0001452104491155844,
                                          0.00011322937989608189, 5.5031378852977604e-05],
                               rtol=1e-14)
    assert "partitionable=False" in info["prng"] and family.provenance["test_draws"]
    assert jax.config.jax_threefry_partitionable == before
    assert family.options["population_file"] == "pop-15min.npy"


def test_spherical_weights_as_in_the_paper(spherical):
    with jax.enable_x64(True):
        a, b = spherical.sample_weights(jax.random.key(0), 64)
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == (64, 100) and b.shape == (64, 10000)
    np.testing.assert_allclose(a.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(b.sum(1), 1.0, rtol=1e-12)
    assert (b > 0).all()
    zero_share = (a == 0).mean()  # Bernoulli(0.5) mask on the supply
    assert 0.4 < zero_share < 0.6
