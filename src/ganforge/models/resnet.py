"""R3GAN's normalisation-free residual G and D (Huang et al. 2024, "The GAN is dead; long live the GAN!",
code brownvc/R3GAN), for square images of 28, 32, 64 or 128 px and 1 or 3 channels.

G: z → a learned 4 × 4 basis (7 × 7 at 28 px) scaled per channel by a linear map of z → per stage: ×2
bilinear upsampling (and a 1 × 1 convolution where the width changes), then ``blocks`` residual blocks
→ a 1 × 1 convolution to the image's channels (→ Tanh when ``out`` is 'tanh'). D mirrors it: a 1 × 1
convolution from the image → per stage: ``blocks`` residual blocks, then 2 × 2 average pooling (and a
1 × 1 convolution where the width changes), or at the last stage a depthwise convolution over the
whole 4 × 4 map and a linear map to one logit. R3GAN filters its resampling with a [1, 2, 1] kernel;
bilinear and average pooling are the nearest built-ins.

A residual block is an inverted bottleneck without normalisation: 1 × 1 convolution to ``expansion`` ×
the width → biased LeakyReLU → grouped 3 × 3 convolution (``group_channels`` per group) → biased
LeakyReLU → 1 × 1 convolution back, added to the input. The initialisation is the paper's fix-up: every
convolution draws N(0, gain² / fan-in), the first two of a block scaled down by L^(-1/4) for L blocks in
the net, and the last convolution of every residual branch starts at zero, so each block starts as the
identity.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DCGAN_SIZES as SIZES


def stages(image_size: int) -> Tuple[int, ...]:
    """The side of each stage's feature map, coarsest first: 28 → (7, 14, 28), 32 → (4, 8, 16, 32)."""
    if image_size not in SIZES:
        raise ValueError(f"resnet image size must be one of {SIZES}, got {image_size}")
    base = 7 if image_size == 28 else 4
    return tuple(base * 2 ** i for i in range(int(math.log2(image_size // base)) + 1))


def stage_widths(widths: Sequence[int], image_size: int) -> Tuple[int, ...]:
    """``widths`` per stage (one number: the same at every stage); a ValueError when the count is wrong."""
    n = len(stages(image_size))
    if len(widths) == 1:
        return tuple(widths) * n
    if len(widths) != n:
        raise ValueError(f"{image_size} px has {n} stages {list(stages(image_size))}: give model.widths one "
                         f"number or {n}, got {len(widths)}")
    return tuple(widths)


def _msr(conv: nn.Module, gain: float) -> nn.Module:
    """MSR (He) initialisation with ``gain``: weights ~ N(0, gain² / fan-in), no bias (gain 0: zeros)."""
    fan_in = conv.weight[0].numel()
    with torch.no_grad():
        conv.weight.normal_(0.0, gain / math.sqrt(fan_in)) if gain else conv.weight.zero_()
    return conv


class BiasedActivation(nn.Module):
    """LeakyReLU(x + b) with a learned bias per channel (the convolutions carry none)."""

    def __init__(self, channels: int, leak: float) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.leak = leak

    @staticmethod
    def gain(leak: float) -> float:
        return math.sqrt(2.0 / (1.0 + leak ** 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1).to(x.dtype), self.leak)


class ResidualBlock(nn.Module):
    def __init__(self, width: int, expansion: int, group_channels: int, n_blocks: int, leak: float) -> None:
        super().__init__()
        inner = width * expansion
        gain = BiasedActivation.gain(leak) * n_blocks ** (-1 / 4)  # L^(-1/(2m-2)) for m = 3 layers
        self.branch = nn.Sequential(
            _msr(nn.Conv2d(width, inner, 1, bias=False), gain), BiasedActivation(inner, leak),
            _msr(nn.Conv2d(inner, inner, 3, padding=1, groups=inner // group_channels, bias=False), gain),
            BiasedActivation(inner, leak),
            _msr(nn.Conv2d(inner, width, 1, bias=False), 0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class Resample(nn.Module):
    """×2 bilinear upsampling or 2 × 2 average pooling, with a 1 × 1 convolution where the width changes
    (before pooling down, after upsampling up: the convolution runs at the lower resolution)."""

    def __init__(self, cin: int, cout: int, up: bool) -> None:
        super().__init__()
        self.up = up
        self.proj = _msr(nn.Conv2d(cin, cout, 1, bias=False), 1.0) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            return F.interpolate(self.proj(x), scale_factor=2, mode="bilinear", align_corners=False)
        return self.proj(F.avg_pool2d(x, 2))


class GenerativeBasis(nn.Module):
    """z → a learned basis (width, b, b), each channel scaled by a linear map of z."""

    def __init__(self, z_dim: int, width: int, side: int) -> None:
        super().__init__()
        self.basis = nn.Parameter(torch.randn(width, side, side))
        self.linear = nn.Linear(z_dim, width, bias=False)
        with torch.no_grad():
            self.linear.weight.normal_(0.0, 1.0 / math.sqrt(z_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.basis.unsqueeze(0) * self.linear(z).view(z.shape[0], -1, 1, 1)


class ResNetGenerator(nn.Module):
    def __init__(self, z_dim: int = 64, image_size: int = 32, channels: int = 3, widths: Sequence[int] = (96,),
                 blocks: int = 1, group_channels: int = 16, expansion: int = 2, leak: float = 0.2,
                 out: str = "tanh") -> None:
        super().__init__()
        sides, widths = stages(image_size), stage_widths(widths, image_size)
        self.z_dim, self.out_shape = z_dim, (channels, image_size, image_size)
        n_blocks = blocks * len(sides)
        layers = [GenerativeBasis(z_dim, widths[0], sides[0])]
        for s, width in enumerate(widths):
            if s:
                layers.append(Resample(widths[s - 1], width, up=True))
            layers += [ResidualBlock(width, expansion, group_channels, n_blocks, leak) for _ in range(blocks)]
        layers.append(_msr(nn.Conv2d(widths[-1], channels, 1, bias=False), 1.0))
        if out == "tanh":
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], self.z_dim))


class ResNetDiscriminator(nn.Module):
    """``net[:-1]`` ends in the pooled features (width, 1, 1) and ``net[-1]`` is the 1 × 1 convolution to
    the logit, so the projection discriminator wraps it as it wraps DCGAN's."""

    def __init__(self, image_size: int = 32, channels: int = 3, widths: Sequence[int] = (96,), blocks: int = 1,
                 group_channels: int = 16, expansion: int = 2, leak: float = 0.2) -> None:
        super().__init__()
        sides = stages(image_size)
        widths = stage_widths(widths, image_size)[::-1]  # finest first
        n_blocks = blocks * len(sides)
        layers = [_msr(nn.Conv2d(channels, widths[0], 1, bias=False), 1.0)]
        for s, width in enumerate(widths):
            layers += [ResidualBlock(width, expansion, group_channels, n_blocks, leak) for _ in range(blocks)]
            if s + 1 < len(widths):
                layers.append(Resample(width, widths[s + 1], up=False))
        side = sides[0]
        layers.append(_msr(nn.Conv2d(widths[-1], widths[-1], side, groups=widths[-1], bias=False), 1.0))
        layers.append(_msr(nn.Conv2d(widths[-1], 1, 1, bias=False), 1.0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(x.shape[0])
