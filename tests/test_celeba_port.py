"""The JAX ports of the CelebA64 networks agree with independent PyTorch implementations.

Each network is built in PyTorch from its published definition
(``benchmarks/torch_reference_images.py``) with random weights, its state dict is handed to
the JAX function unchanged, and outputs, input gradients and parameter gradients are
compared in float32. Tolerances: relative L2 error <= 1e-5 on outputs and input gradients,
<= 1e-4 on parameter gradients (sums over many products), max-abs error <= 1e-4 relative.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks import torch_reference_images as ref
from otarena.models import conv_icnn, resnet_d, resnet_g, torch_layers, unet

N = 3


def close(a, b, rel=1e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    scale = np.linalg.norm(b)
    assert scale > 0
    err = np.linalg.norm(a - b) / scale
    assert err <= rel, f"relative L2 error {err:.2e} > {rel:.0e}"
    assert np.abs(a - b).max() <= 10 * rel * np.abs(b).max() + 1e-30


def jax_params(module, drop=("num_batches_tracked",)):
    return {k: jnp.asarray(v) for k, v in ref.state_numpy(module).items() if not k.endswith(drop)}


def torch_param_grads(module, scalar):
    module.zero_grad()
    scalar.backward()
    return {k: p.grad.numpy().copy() for k, p in module.named_parameters()}


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(7)
    return 2 * torch.rand(N, 12288, generator=g) - 1


def test_published_parameter_counts():
    """22,933,441 (ResNet_D) and 9,715,827 (UNet 48) as printed by the [MM] notebook."""
    count = lambda shapes: sum(int(np.prod(s)) for k, s in shapes.items() if "running_" not in k)  # noqa: E731
    assert count(resnet_d.expected_shapes()) == 22_933_441
    assert unet.num_trainable() == 9_715_827
    assert count(conv_icnn.expected_shapes()) == ref.num_parameters(ref.ConvICNN64())
    assert count(resnet_g.expected_shapes()) == ref.num_parameters(ref.Generator())


def test_state_dict_layouts_match_the_published_modules():
    torch.manual_seed(0)
    assert conv_icnn.shape_mismatch(ref.state_numpy(ref.ConvICNN64())) is None
    assert resnet_g.shape_mismatch(ref.state_numpy(ref.Generator())) is None
    assert torch_layers.shape_problem(ref.state_numpy(ref.Discriminator()),
                                      resnet_d.expected_shapes()) is None
    assert torch_layers.shape_problem(ref.state_numpy(ref.UNet()), unet.expected_shapes()) is None
    bad = ref.state_numpy(ref.ConvICNN64(rank=2))
    assert "quadratic_decomposed" in conv_icnn.shape_mismatch(bad)


def test_conv_icnn64(images):
    torch.manual_seed(1)
    net = ref.ConvICNN64(std=0.05).eval()
    params = jax_params(net)
    x = jnp.asarray(images.numpy())
    psi_ref, grad_ref = ref.input_gradient(lambda v: net(v)[:, 0], images)
    psi = conv_icnn.conv_icnn64(params, x)
    close(psi, psi_ref)
    close(jax.grad(lambda v: conv_icnn.conv_icnn64(params, v).sum())(x), grad_ref)
    # parameter gradients of a weighted sum, as the solvers train it
    w = torch.linspace(-1, 2, N)
    want = torch_param_grads(net, (w * net(images)[:, 0]).sum())
    got = jax.grad(lambda p: jnp.sum(jnp.asarray(w.numpy()) * conv_icnn.conv_icnn64(p, x)))(params)
    for k in want:
        close(got[k], want[k], rel=1e-4)


def test_conv_icnn64_training_mode_is_dropout_only(images):
    torch.manual_seed(2)
    params = jax_params(ref.ConvICNN64(std=0.05))
    x = jnp.asarray(images.numpy())
    evaluated = conv_icnn.conv_icnn64(params, x)
    no_drop = conv_icnn.conv_icnn64(params, x, key=jax.random.key(0), dropout=0.0)
    np.testing.assert_array_equal(np.asarray(no_drop), np.asarray(evaluated))
    a = conv_icnn.conv_icnn64(params, x, key=jax.random.key(0))
    b = conv_icnn.conv_icnn64(params, x, key=jax.random.key(1))
    assert not np.allclose(np.asarray(a), np.asarray(b))  # masks are drawn


def test_dropout_semantics_match_pytorch():
    """nn.Dropout zeroes entries, F.dropout2d whole channels; both rescale by 1 / (1 - p)."""
    x = jnp.ones((64, 256, 4, 4))
    for ours, theirs in ((torch_layers.dropout, F.dropout), (torch_layers.dropout2d, F.dropout2d)):
        got = np.asarray(ours(x, 0.25, jax.random.key(3)))
        want = theirs(torch.ones(64, 256, 4, 4), p=0.25, training=True).numpy()
        assert set(np.unique(got)) == set(np.unique(want)) == {0.0, np.float32(1 / 0.75)}
        for arr in (got, want):
            zero = arr == 0
            per_channel = zero.reshape(64, 256, 16).mean(axis=2)
            channelwise = np.all((per_channel == 0) | (per_channel == 1))
            assert channelwise == (ours is torch_layers.dropout2d)
            assert abs(zero.mean() - 0.25) < 0.02


def test_resnet_generator_eval_mode():
    torch.manual_seed(3)
    net = ref.Generator()
    ref.wgan_qc_init(net)
    ref.randomize_batch_norms(net, torch.Generator().manual_seed(3))
    net.eval()
    params = jax_params(net)
    z = torch.randn(N, 128, generator=torch.Generator().manual_seed(4))
    out_ref, grad_ref = ref.input_gradient(lambda v: (net(v) * torch.linspace(-1, 1, 12288)).sum(1), z)
    weights = jnp.linspace(-1, 1, 12288)
    zj = jnp.asarray(z.numpy())
    images = resnet_g.generate(params, zj)
    with torch.no_grad():
        close(images, net(z).numpy())
    assert float(jnp.std(images)) > 0.1  # a non-degenerate test
    close(jax.grad(lambda v: jnp.sum(resnet_g.generate(params, v) * weights))(zj), grad_ref, rel=2e-5)


def test_resnet_discriminator_potential(images):
    torch.manual_seed(5)
    net = ref.Discriminator()
    params = jax_params(net)
    x = jnp.asarray(images.numpy())
    f_ref, grad_ref = ref.input_gradient(lambda v: ref.resnet_potential(net, v), images)
    close(resnet_d.potential(params, x), f_ref)
    close(jax.grad(lambda v: resnet_d.potential(params, v).sum())(x), grad_ref)
    with torch.no_grad():
        d_ref = net(images).numpy()
    close(resnet_d.discriminator(params, x), d_ref)
    want = torch_param_grads(net, net(images).sum())
    got = jax.grad(lambda p: resnet_d.discriminator(p, x).sum())(params)
    for k in want:
        close(got[k], want[k], rel=1e-4)


def test_unet_eval_and_training_modes(images):
    torch.manual_seed(6)
    net = ref.UNet()
    ref.randomize_batch_norms(net, torch.Generator().manual_seed(6))
    params = jax_params(net)
    x = jnp.asarray(images.numpy())
    net.eval()
    with torch.no_grad():
        close(unet.unet(params, x), net(images).numpy())
    _, grad_ref = ref.input_gradient(lambda v: (net(v) ** 2).sum(1), images)
    close(jax.grad(lambda v: jnp.sum(unet.unet(params, v) ** 2))(x), grad_ref)
    # training mode: batch statistics; the forward moves PyTorch's running statistics
    net.train()
    with torch.no_grad():
        out_ref = net(images).numpy()
    close(unet.unet(params, x, train=True)[0], out_ref)
    refreshed = unet.update_stats(params, params, x)
    after = ref.state_numpy(net)
    for k, v in refreshed.items():
        if "running_" in k:
            close(v, after[k])
    got = jax.grad(lambda p: jnp.sum(unet.unet(p, x, train=True)[0] ** 2))(params)
    assert all(float(jnp.abs(got[k]).max()) == 0.0 for k in got if "running_" in k)


def _unet_training_gradients(net, images, dtype):
    """(PyTorch, JAX) parameter gradients of sum H(x)^2 in training mode, in ``dtype``."""
    net = net.to(dtype).train()
    net.zero_grad()
    (net(images.to(dtype)) ** 2).sum().backward()
    want = {k: p.grad.numpy() for k, p in net.named_parameters()}
    params = {k: jnp.asarray(v) for k, v in ref.state_numpy(net).items()
              if not k.endswith("num_batches_tracked")}
    x = jnp.asarray(images.to(dtype).numpy())
    got = jax.grad(lambda p: jnp.sum(unet.unet(p, x, train=True)[0] ** 2))(params)
    # conv biases right before a batch norm have a zero gradient (rounding noise only)
    keep = [k for k in want if not k.endswith(("double_conv.0.bias", "double_conv.3.bias"))]
    return {k: want[k] for k in keep}, {k: got[k] for k in keep}


def test_unet_training_gradients():
    """Training-mode parameter gradients: JAX and PyTorch agree to 1e-7 in float64. In
    float32 this gradient is ill-conditioned (batch norms after convolutions): PyTorch's own
    float32 gradients are up to ~5e-3 away from the float64 ones, so the float32 port is held
    to PyTorch's float32 error: every layer within twice PyTorch's worst layer. (Layer by layer
    the two roundings are independent draws: PyTorch is lucky on some layer by 6x, and which
    layer varies with the CPU's kernels.) Reduced precision (bf16, ~1e-2) still fails."""
    torch.manual_seed(8)
    net = ref.UNet()
    ref.randomize_batch_norms(net, torch.Generator().manual_seed(8))
    images = 2 * torch.rand(N, 12288, generator=torch.Generator().manual_seed(9)) - 1
    with jax.enable_x64(True):
        truth, got64 = _unet_training_gradients(net, images, torch.float64)
        for k in truth:
            close(got64[k], truth[k], rel=1e-7)
    torch32, got32 = _unet_training_gradients(net, images, torch.float32)

    def error(g, k):
        return np.linalg.norm(np.asarray(g[k], np.float64) - truth[k]) / np.linalg.norm(truth[k])

    worst_torch = max(error(torch32, k) for k in truth)
    for k in truth:
        assert error(got32, k) <= 2 * worst_torch, (k, error(got32, k), worst_torch)
