"""Toy distributions you can plot: Gaussian mixtures in 1-D and 2-D, sampled fresh for every batch."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch

from ..config import Component


def ring8() -> Tuple[Component, ...]:
    """8 Gaussians, std 0.02, equally spaced on a circle of radius 2 (Metz et al. 2017; Srivastava et al. 2017)."""
    return tuple(Component(mean=(2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)), std=0.02)
                 for k in range(8))


def grid25() -> Tuple[Component, ...]:
    """25 Gaussians, std 0.05, on the grid {-4, -2, 0, 2, 4}^2 (Srivastava et al. 2017; Lin et al. 2018)."""
    return tuple(Component(mean=(float(x), float(y)), std=0.05) for x in range(-4, 5, 2) for y in range(-4, 5, 2))


DEFAULTS = {
    "gaussian-1d": (Component(mean=(4.0,), std=1.25),),  # "a GAN in 50 lines": N(4, 1.25)
    "ring-8": ring8(),
    "grid-25": grid25(),
}


class Mixture:
    """A mixture of isotropic Gaussians; ``sample`` draws from torch's global RNG (so runs resume exactly)."""

    kind = "toy"

    def __init__(self, components: Sequence[Component], name: str = "mixture") -> None:
        self.name = name
        self.components = tuple(components)
        self.means = torch.tensor([c.mean for c in components], dtype=torch.float32)   # (K, D)
        self.stds = torch.tensor([c.std for c in components], dtype=torch.float32)     # (K,)
        w = torch.tensor([c.weight for c in components], dtype=torch.float64)
        self.weights = (w / w.sum()).float()                                            # (K,)

    @property
    def shape(self) -> Tuple[int, ...]:
        return (self.means.shape[1],)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, device: Optional[torch.device] = None,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator)
        x = self.means[k] + eps * self.stds[k, None]
        return x.to(device) if device is not None else x

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        """The exact CDF of a 1-D mixture at the points ``x`` (float64)."""
        x = x.double().reshape(-1, 1)
        z = (x - self.means[:, 0].double()) / self.stds.double()
        return (torch.special.ndtr(z) * self.weights.double()).sum(1)

    def pdf(self, x: torch.Tensor) -> torch.Tensor:
        """The density of a 1-D mixture at the points ``x`` (float64)."""
        x = x.double().reshape(-1, 1)
        s = self.stds.double()
        z = (x - self.means[:, 0].double()) / s
        return (torch.exp(-0.5 * z ** 2) / (s * math.sqrt(2 * math.pi)) * self.weights.double()).sum(1)

    def to(self, device: torch.device) -> "Mixture":
        return self  # sampled on the CPU, moved per batch
