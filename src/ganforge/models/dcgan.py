"""DCGAN (Radford et al. 2016) as in pytorch/examples' dcgan/main.py, for square images of 28, 32, 64 or 128 px.

G: z (N, z_dim) → reshaped to z_dim × 1 × 1 → ConvTranspose2d 4×4 (stride 1) to 4 × 4 → one
ConvTranspose2d (4, stride 2, pad 1) + BatchNorm + ReLU block per doubling → ConvTranspose2d to
``channels`` → Tanh. D mirrors it: Conv2d (4, stride 2, pad 1) + LeakyReLU(0.2) blocks, BatchNorm on
all but the first, down to 4 × 4, then a 4 × 4 Conv2d to one logit (no Sigmoid: losses take logits).
At 64 px with ``features`` 64 these are exactly the example's netG and netD. At 28 px (MNIST's own
size) the base is 7 × 7 instead of 4 × 4, with a 7 × 7 kernel at each end: 7 → 14 → 28, the shape of
the MNIST nets of Chen et al. 2016 (InfoGAN) and Lucic et al. 2018 without their fully connected layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import DCGAN_SIZES as SIZES


def _doublings(image_size: int) -> int:
    """Number of stride-2 blocks between the base (4 × 4; 7 × 7 at 28 px) and ``image_size`` (64 px → 4)."""
    if image_size not in SIZES:
        raise ValueError(f"DCGAN image size must be one of {SIZES}, got {image_size}")
    return 2 if image_size == 28 else int(math.log2(image_size)) - 2


def _base(image_size: int) -> int:
    """Side of the first (G) and last (D) feature map, which the end kernels span."""
    return 7 if image_size == 28 else 4


class DCGANGenerator(nn.Module):
    """``fc`` > 0 puts a fully connected hidden layer of that width (+ BatchNorm + ReLU) between z and the
    first feature map, as the MNIST generators of Chen et al. 2016 and Lucic et al. 2018 do (their 1024);
    written as 1 × 1 convolutions, which are the same arithmetic as a Linear layer."""

    def __init__(self, z_dim: int = 100, image_size: int = 64, channels: int = 3, features: int = 64,
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1, fc: int = 0) -> None:
        super().__init__()
        self.z_dim, self.out_shape = z_dim, (channels, image_size, image_size)
        n = _doublings(image_size)
        width = features * 2 ** (n - 1)  # 64 px: 512 → 256 → 128 → 64 → channels
        layers = [nn.ConvTranspose2d(z_dim, fc, 1, 1, 0, bias=False),
                  nn.BatchNorm2d(fc, eps=bn_eps, momentum=bn_momentum), nn.ReLU(True)] if fc else []
        layers += [nn.ConvTranspose2d(fc or z_dim, width, _base(image_size), 1, 0, bias=False),
                   nn.BatchNorm2d(width, eps=bn_eps, momentum=bn_momentum), nn.ReLU(True)]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width // 2, eps=bn_eps, momentum=bn_momentum), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], self.z_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """``norm='batchnorm'`` as in DCGAN; ``'none'`` for critics whose penalty is per sample (WGAN-GP,
    R1), where BatchNorm would couple the samples of a batch. ``fc`` > 0: a fully connected hidden layer
    of that width (+ LeakyReLU) between the last feature map and the logit (Lucic et al. 2018's 1024)."""

    def __init__(self, image_size: int = 64, channels: int = 3, features: int = 64, norm: str = "batchnorm",
                 leak: float = 0.2, bn_eps: float = 1e-5, bn_momentum: float = 0.1, fc: int = 0) -> None:
        super().__init__()
        n = _doublings(image_size)
        width = features
        layers = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(leak, inplace=True)]
        for _ in range(n - 1):
            layers.append(nn.Conv2d(width, width * 2, 4, 2, 1, bias=norm == "none"))
            if norm == "batchnorm":
                layers.append(nn.BatchNorm2d(width * 2, eps=bn_eps, momentum=bn_momentum))
            layers.append(nn.LeakyReLU(leak, inplace=True))
            width *= 2
        if fc:
            layers += [nn.Conv2d(width, fc, _base(image_size), 1, 0), nn.LeakyReLU(leak, inplace=True)]
        layers.append(nn.Conv2d(fc or width, 1, 1 if fc else _base(image_size), 1, 0, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(x.shape[0])


@torch.no_grad()
def dcgan_init(module: nn.Module, generator: "torch.Generator | None" = None) -> nn.Module:
    """DCGAN's initialisation: conv weights ~ N(0, 0.02); BatchNorm γ ~ N(1, 0.02), β = 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.weight.normal_(0.0, 0.02, generator=generator)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.normal_(1.0, 0.02, generator=generator)
            m.bias.zero_()
    return module
