"""Fully connected G and D: the classic MNIST MLP GAN, PyTorch-GAN's gan.py, and the toy-data GANs."""

from __future__ import annotations

import math
from typing import Sequence, Tuple, Union

import torch
from torch import nn

Acts = Union[str, Sequence[str]]


def _act(name: str, leak: float) -> nn.Module:
    return {"leaky_relu": lambda: nn.LeakyReLU(leak), "relu": nn.ReLU, "elu": nn.ELU,
            "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[name]()


def _per_layer(acts: Acts, n: int) -> Tuple[str, ...]:
    return (acts,) * n if isinstance(acts, str) else tuple(acts)


class MLPGenerator(nn.Module):
    """z (N, z_dim) → Linear blocks → Linear [→ Tanh] → samples (N, *out_shape).

    A block is ``Linear [+ BatchNorm1d] + activation`` (``act``: one name, or one per block); with
    ``norm='batchnorm'`` and ``norm_first=False`` the first block has no BatchNorm, as in gan.py.
    ``out_act='none'`` leaves the output linear (toy data in its own units).
    """

    def __init__(self, z_dim: int, hidden: Sequence[int], out_shape: Tuple[int, ...], act: Acts = "relu",
                 leak: float = 0.2, norm: str = "none", norm_first: bool = True, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1, out_act: str = "tanh") -> None:
        super().__init__()
        self.z_dim, self.out_shape = z_dim, tuple(out_shape)
        layers = []
        width = z_dim
        for i, (h, a) in enumerate(zip(hidden, _per_layer(act, len(hidden)))):
            layers.append(nn.Linear(width, h))
            if norm == "batchnorm" and (i > 0 or norm_first):
                layers.append(nn.BatchNorm1d(h, eps=bn_eps, momentum=bn_momentum))
            layers.append(_act(a, leak))
            width = h
        layers.append(nn.Linear(width, math.prod(self.out_shape)))
        if out_act == "tanh":
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


def minibatch_moments(x: torch.Tensor) -> torch.Tensor:
    """(N, D) → (4·D,): per feature the mean, std, skewness and excess kurtosis over the minibatch
    (population moments, as numpy/scipy compute them by default)."""
    mean = x.mean(0)
    centred = x - mean
    std = centred.pow(2).mean(0).sqrt()
    z = centred / (std + 1e-12)
    return torch.cat([mean, std, z.pow(3).mean(0), z.pow(4).mean(0) - 3.0])


class MLPDiscriminator(nn.Module):
    """samples (N, *in_shape) → Linear blocks → logits.

    ``input`` says what D sees: ``'sample'`` — each sample (one logit each); ``'moments'`` — only the
    minibatch's first four moments per feature (one logit for the whole batch, as in "a GAN in 50
    lines"); ``'sample+stats'`` — each sample with the minibatch's mean and std appended, so D can
    tell a too-narrow batch apart. ``pack`` > 1 judges packs of that many samples jointly (PacGAN):
    N samples → N / pack logits.
    """

    def __init__(self, in_shape: Tuple[int, ...], hidden: Sequence[int], act: Acts = "leaky_relu",
                 leak: float = 0.2, dropout: float = 0.0, input: str = "sample", pack: int = 1) -> None:
        super().__init__()
        self.input, self.pack = input, pack
        self.features = math.prod(in_shape)
        layers = []
        width = self.in_width(in_shape, input, pack)
        for h, a in zip(hidden, _per_layer(act, len(hidden))):
            layers += [nn.Linear(width, h), _act(a, leak)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    @staticmethod
    def in_width(in_shape: Tuple[int, ...], input: str = "sample", pack: int = 1) -> int:
        d = math.prod(in_shape)
        return {"sample": d * pack, "moments": 4 * d, "sample+stats": 3 * d * pack}[input]

    def forward(self, x: torch.Tensor, stats_of: "torch.Tensor | None" = None) -> torch.Tensor:
        """Logits for ``x``; with ``input='sample+stats'`` the statistics come from ``stats_of`` when given
        (to plot D(x) for single points against a reference batch), else from ``x`` itself."""
        x = x.flatten(1)
        if self.input == "moments":
            return self.net(minibatch_moments(x)[None]).reshape(1)
        if self.input == "sample+stats":
            ref = x if stats_of is None else stats_of.flatten(1)
            mean, std = ref.mean(0, keepdim=True), ref.std(0, keepdim=True)
            x = torch.cat([x, mean.expand_as(x), std.expand_as(x)], 1)
        if self.pack > 1:
            x = x.reshape(x.shape[0] // self.pack, -1)
        return self.net(x).squeeze(1)
