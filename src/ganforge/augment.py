"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real and fake images alike
before D, so D cannot memorise a small dataset while G still gets gradients through the augmentation.

The three policies follow the authors' reference code (mit-han-lab/data-efficient-gans): ``color``
(brightness, saturation, contrast), ``translation`` (up to 1/8 of the size, zero padding) and ``cutout``
(a square of half the size). Randomness comes from torch's RNG, so runs resume exactly.
"""

from __future__ import annotations

from typing import Callable, Dict, Sequence

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _per_sample(x: Tensor) -> Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def color(x: Tensor) -> Tensor:
    x = x + (_per_sample(x) - 0.5)                                    # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_per_sample(x) * 2) + mean                       # saturation
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_per_sample(x) + 0.5) + mean                  # contrast


def _grid(x: Tensor):
    return torch.meshgrid(torch.arange(x.shape[0], device=x.device), torch.arange(x.shape[2], device=x.device),
                          torch.arange(x.shape[3], device=x.device), indexing="ij")


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    sx, sy = int(x.shape[2] * ratio + 0.5), int(x.shape[3] * ratio + 0.5)
    tx = torch.randint(-sx, sx + 1, size=(x.shape[0], 1, 1), device=x.device)
    ty = torch.randint(-sy, sy + 1, size=(x.shape[0], 1, 1), device=x.device)
    b, gx, gy = _grid(x)
    gx = torch.clamp(gx + tx + 1, 0, x.shape[2] + 1)
    gy = torch.clamp(gy + ty + 1, 0, x.shape[3] + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[b, gx, gy].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    cx, cy = int(x.shape[2] * ratio + 0.5), int(x.shape[3] * ratio + 0.5)
    ox = torch.randint(0, x.shape[2] + (1 - cx % 2), size=(x.shape[0], 1, 1), device=x.device)
    oy = torch.randint(0, x.shape[3] + (1 - cy % 2), size=(x.shape[0], 1, 1), device=x.device)
    b, gx, gy = torch.meshgrid(torch.arange(x.shape[0], device=x.device), torch.arange(cx, device=x.device),
                               torch.arange(cy, device=x.device), indexing="ij")
    gx = torch.clamp(gx + ox - cx // 2, 0, x.shape[2] - 1)
    gy = torch.clamp(gy + oy - cy // 2, 0, x.shape[3] - 1)
    mask = torch.ones(x.shape[0], x.shape[2], x.shape[3], dtype=x.dtype, device=x.device)
    mask[b, gx, gy] = 0
    return x * mask.unsqueeze(1)


POLICIES: Dict[str, Callable[[Tensor], Tensor]] = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: Tensor, policies: Sequence[str], p: "float | None" = None) -> Tensor:
    """Apply the named policies, in order, to a batch of images (N, C, H, W); with ``p`` (ADA), each policy
    to each image with probability p (p = 0: the batch as it is)."""
    if p is not None and p <= 0:
        return x
    for name in policies:
        out = POLICIES[name](x)
        if p is not None and p < 1:
            out = torch.where(torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p, out, x)
        x = out
    return x


def real_augment(x: Tensor, degrees: float = 5.0, translate=(0.05, 0.025), scale=(0.95, 1.05),
                 shear: float = 0.025) -> Tensor:
    """``data.augment``: the DCGAN tutorial's light augmentation of *real* images, done on a whole
    batch on its device: a random horizontal flip (p = 0.5) and a random affine per image, drawn as
    torchvision's RandomAffine draws it (angle and x-shear in degrees, translation as a fraction of the
    size), sampled bilinearly with black (-1) outside the image. Uses torch's RNG (resumes exactly)."""
    n, dev, dt = x.shape[0], x.device, x.dtype
    flip = torch.rand(n, device=dev) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)

    def uniform(lo: float, hi: float) -> Tensor:
        return torch.rand(n, device=dev, dtype=dt) * (hi - lo) + lo

    angle = torch.deg2rad(uniform(-degrees, degrees))
    phi = torch.deg2rad(uniform(-shear, shear))
    s = uniform(*scale)
    tx, ty = uniform(-translate[0], translate[0]) * 2, uniform(-translate[1], translate[1]) * 2  # [-1, 1] coords
    cos, sin = torch.cos(angle), torch.sin(angle)
    # forward map A = s · R(angle) · Shear_x(phi); affine_grid wants output → input: A⁻¹ (p − t)
    a = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2) @ \
        torch.stack([torch.stack([torch.ones_like(phi), torch.tan(phi)], -1),
                     torch.stack([torch.zeros_like(phi), torch.ones_like(phi)], -1)], -2) * s.view(n, 1, 1)
    inv = torch.linalg.inv(a)
    t = torch.stack([tx, ty], -1).unsqueeze(-1)
    theta = torch.cat([inv, -inv @ t], dim=2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1
