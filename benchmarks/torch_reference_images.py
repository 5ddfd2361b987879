"""PyTorch references of the CelebA64 benchmark's networks, written from their definitions.

Independent implementations (module trees named like the official ones, so their state
dicts have the official keys) of: ConvICNN64 with its rank-4 convex-quadratic convolutions
(Wasserstein2Benchmark ``src/icnn.py``), the WGAN-QC ResNet generator and discriminator
(``src/resnet2.py``) and the base-factor UNet of [MM] (``src/unet.py``). Used by the tests
to check the JAX ports output for output and gradient for gradient, and to write
randomly initialized checkpoints in the official format.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


# -- ConvICNN64 -------------------------------------------------------------------------------
class ConvexQuadraticConv(nn.Module):
    """x -> sum_r (A * x)_{o r}^2 + B * x: rank-r squared convolution plus a linear one."""

    def __init__(self, cin, cout, kernel, rank, stride, padding):
        super().__init__()
        self.rank, self.cout = rank, cout
        self.quadratic_decomposed = nn.Conv2d(cin, cout * rank, kernel, stride, padding, bias=False)
        self.linear = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)

    def forward(self, x):
        sq = self.quadratic_decomposed(x) ** 2
        n, _, h, w = sq.shape
        return sq.view(n, self.cout, self.rank, h, w).sum(dim=2) + self.linear(x)


class Flatten1(nn.Module):
    def forward(self, x):
        return x.reshape(-1, 1)


class ConvICNN64(nn.Module):
    def __init__(self, strong_convexity=0.01, dropout=0.02, rank=4, std=0.01):
        super().__init__()
        self.strong_convexity, self.p = strong_convexity, dropout
        self.quadratic_layers = nn.ModuleList([ConvexQuadraticConv(3, 128, 4, rank, 2, 1),
                                               ConvexQuadraticConv(3, 256, 7, rank, 4, 2)])
        self.convex_layers = nn.ModuleList([nn.Conv2d(128, 256, 4, 2, 1)])
        self.pos_features = nn.Sequential(
            nn.Dropout(dropout), nn.Conv2d(256, 512, 4, 2, 1), nn.CELU(0.2),
            nn.Dropout(dropout), nn.Conv2d(512, 1024, 4, 2, 1), nn.CELU(0.2),
            nn.Dropout(dropout), nn.Conv2d(1024, 1, 4, 1, 0), Flatten1())
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0.0, std)

    def forward(self, x):
        img = x.reshape(len(x), 3, 64, 64)
        z = self.quadratic_layers[0](img)
        z = torch.celu(self.convex_layers[0](z) + self.quadratic_layers[1](img))
        if self.training:
            z = F.dropout2d(z, p=self.p)
        out = self.pos_features(z)
        return out + 0.5 * self.strong_convexity * (x ** 2).flatten(1).sum(1, keepdim=True)


# -- WGAN-QC ResNets ------------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self, fin, fout, bn, res_ratio=0.1):
        super().__init__()
        hidden = min(fin, fout)
        self.use_bn, self.res_ratio, self.learned = bn, res_ratio, fin != fout
        self.conv_0 = nn.Conv2d(fin, hidden, 3, 1, 1, bias=not bn)
        if bn:
            self.bn2d_0 = nn.BatchNorm2d(hidden)
        self.conv_1 = nn.Conv2d(hidden, fout, 3, 1, 1, bias=not bn)
        if bn:
            self.bn2d_1 = nn.BatchNorm2d(fout)
        if self.learned:
            self.conv_s = nn.Conv2d(fin, fout, 1, 1, 0, bias=False)
            if bn:
                self.bn2d_s = nn.BatchNorm2d(fout)

    def forward(self, x):
        s = x
        if self.learned:
            s = self.conv_s(x)
            if self.use_bn:
                s = self.bn2d_s(s)
        d = self.conv_0(x)
        if self.use_bn:
            d = self.bn2d_0(d)
        d = F.leaky_relu(d, 0.2)
        d = self.conv_1(d)
        if self.use_bn:
            d = self.bn2d_1(d)
        return F.leaky_relu(s + self.res_ratio * d, 0.2)


class Generator(nn.Module):
    """ResNet_G(z_dim=128, size=64, nfilter=64, nfilter_max=512, res_ratio=0.1)."""

    def __init__(self, z_dim=128, size=64, nf=64, nf_max=512):
        super().__init__()
        nlayers = int(np.log2(size / 4))
        self.nf0 = min(nf_max, nf * 2 ** (nlayers + 1))
        self.fc = nn.Linear(z_dim, self.nf0 * 16)
        self.bn1d = nn.BatchNorm1d(self.nf0 * 16)
        layers = []
        for i in range(nlayers, 0, -1):
            a, b = min(nf * 2 ** (i + 1), nf_max), min(nf * 2 ** i, nf_max)
            layers += [Block(a, b, True), Block(b, b, True), nn.Upsample(scale_factor=2)]
        a, b = min(nf * 2, nf_max), min(nf, nf_max)
        layers += [Block(a, b, True), Block(b, b, True)]
        self.resnet = nn.Sequential(*layers)
        self.conv_img = nn.Conv2d(nf, 3, 3, padding=1)

    def forward(self, z):
        h = F.leaky_relu(self.bn1d(self.fc(z)), 0.2).view(len(z), self.nf0, 4, 4)
        return torch.tanh(self.conv_img(self.resnet(h))).flatten(1)


class Discriminator(nn.Module):
    """ResNet_D(size=64, nfilter=64, nfilter_max=512, res_ratio=0.1)."""

    def __init__(self, size=64, nf=64, nf_max=512):
        super().__init__()
        nlayers = int(np.log2(size / 4))
        self.nf0 = min(nf_max, nf * 2 ** nlayers)
        layers = [Block(nf, nf, False), Block(nf, min(2 * nf, nf_max), False)]
        for i in range(1, nlayers + 1):
            a, b = min(nf * 2 ** i, nf_max), min(nf * 2 ** (i + 1), nf_max)
            layers += [nn.AvgPool2d(3, stride=2, padding=1), Block(a, a, False), Block(a, b, False)]
        self.conv_img = nn.Conv2d(3, nf, 3, padding=1)
        self.resnet = nn.Sequential(*layers)
        self.fc = nn.Linear(self.nf0 * 16, 1)

    def forward(self, x):
        h = self.resnet(F.leaky_relu(self.conv_img(x.reshape(len(x), 3, 64, 64)), 0.2))
        return self.fc(h.flatten(1))[:, 0]


def resnet_potential(d: Discriminator, x):
    """[MM]'s image potential |x|^2 / 2 - D(x)."""
    return 0.5 * (x ** 2).sum(1) - d(x)


# -- UNet -------------------------------------------------------------------------------------
def _double_conv(cin, cout, mid):
    return nn.Sequential(nn.Conv2d(cin, mid, 3, padding=1), nn.BatchNorm2d(mid), nn.ReLU(),
                         nn.Conv2d(mid, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class _DC(nn.Module):
    def __init__(self, cin, cout, mid=None):
        super().__init__()
        self.double_conv = _double_conv(cin, cout, mid or cout)

    def forward(self, x):
        return self.double_conv(x)


class _Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), _DC(cin, cout))

    def forward(self, x):
        return self.maxpool_conv(x)


class _Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = _DC(cin, cout, cin // 2)

    def forward(self, low, skip):
        up = F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=True)
        dy, dx = skip.shape[2] - up.shape[2], skip.shape[3] - up.shape[3]
        up = F.pad(up, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, up], dim=1))


class _OutConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    """UNet(3, 3, base_factor=48, bilinear=True) on flattened 3x64x64 images."""

    def __init__(self, b=48, channels=3):
        super().__init__()
        self.inc = _DC(channels, b)
        self.down1, self.down2 = _Down(b, 2 * b), _Down(2 * b, 4 * b)
        self.down3, self.down4 = _Down(4 * b, 8 * b), _Down(8 * b, 8 * b)
        self.up1, self.up2 = _Up(16 * b, 4 * b), _Up(8 * b, 2 * b)
        self.up3, self.up4 = _Up(4 * b, b), _Up(2 * b, b)
        self.outc = _OutConv(b, channels)

    def forward(self, x):
        x1 = self.inc(x.reshape(len(x), 3, 64, 64))
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        h = self.up4(self.up3(self.up2(self.up1(x5, x4), x3), x2), x1)
        return self.outc(h).flatten(1)


# -- helpers ---------------------------------------------------------------------------------
def randomize_batch_norms(module: nn.Module, generator: torch.Generator):
    """Non-trivial affine parameters and running statistics, so eval mode is really tested."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.weight.copy_(1.0 + 0.2 * torch.randn(n, generator=generator))
                m.bias.copy_(0.1 * torch.randn(n, generator=generator))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                m.running_var.copy_(torch.exp(0.3 * torch.randn(n, generator=generator)))
                m.num_batches_tracked.fill_(1000)


def wgan_qc_init(module: nn.Module):
    """WGAN-QC's generator initialization: Kaiming-normal (fan in, leaky-ReLU gain) convs."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="leaky_relu")


def state_numpy(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def input_gradient(fn, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(fn(x), d sum fn(x) / dx) as NumPy."""
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    (grad,) = torch.autograd.grad(out.sum(), x)
    return out.detach().numpy(), grad.numpy()
