"""Fully connected G and D: the classic MNIST MLP GAN and PyTorch-GAN's gan.py."""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
from torch import nn


def _act(name: str, leak: float) -> nn.Module:
    return nn.LeakyReLU(leak) if name == "leaky_relu" else nn.ReLU()


class MLPGenerator(nn.Module):
    """z (N, z_dim) → Linear blocks → Linear → Tanh → images (N, *out_shape) in [-1, 1].

    A block is ``Linear [+ BatchNorm1d] + activation``; with ``norm='batchnorm'`` and
    ``norm_first=False`` the first block has no BatchNorm, as in PyTorch-GAN's gan.py.
    """

    def __init__(self, z_dim: int, hidden: Sequence[int], out_shape: Tuple[int, ...], act: str = "relu",
                 leak: float = 0.2, norm: str = "none", norm_first: bool = True, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.z_dim, self.out_shape = z_dim, tuple(out_shape)
        layers = []
        width = z_dim
        for i, h in enumerate(hidden):
            layers.append(nn.Linear(width, h))
            if norm == "batchnorm" and (i > 0 or norm_first):
                layers.append(nn.BatchNorm1d(h, eps=bn_eps, momentum=bn_momentum))
            layers.append(_act(act, leak))
            width = h
        layers += [nn.Linear(width, math.prod(self.out_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """images (N, *in_shape) → flatten → Linear blocks → one logit per image (N,)."""

    def __init__(self, in_shape: Tuple[int, ...], hidden: Sequence[int], act: str = "leaky_relu",
                 leak: float = 0.2, dropout: float = 0.0) -> None:
        super().__init__()
        layers = []
        width = math.prod(in_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), _act(act, leak)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)
