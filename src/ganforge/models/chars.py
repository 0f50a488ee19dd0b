"""The character-level nets of Gulrajani et al. 2017 (Improved Training of Wasserstein GANs, §5 and its
``gan_language.py``): 1-D residual CNNs over sequences of one-hot characters.

G: z → Linear to ``width`` × L → ``blocks`` residual blocks → 1 × 1 convolution to V → softmax over the
alphabet at each position: (N, V, L) rows that sum to 1. D reads the same layout (real text one-hot):
1 × 1 convolution V → ``width`` → ``blocks`` residual blocks → Linear(width × L → 1), a logit.
A block is ReLU → Conv1d(5) → ReLU → Conv1d(5), added to its input at 0.3 (the paper's code).
The paper: width 512, 5 blocks, z 128, L 32. With ``gumbel`` τ > 0, G in training mode emits a straight-through
Gumbel-softmax sample instead (Jang et al. 2017: one-hot rows forward, the softmax's gradient backward), so D
sees one-hot sequences from both sides; in eval mode it emits the softmax, read by its most likely characters.
"""

from __future__ import annotations

import torch
from torch import nn


class ResBlock1d(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv1d(width, width, 5, padding=2),
                                  nn.ReLU(), nn.Conv1d(width, width, 5, padding=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.3 * self.body(x)


class CharGenerator(nn.Module):
    def __init__(self, z_dim: int, vocab: int, length: int, width: int = 512, blocks: int = 5,
                 gumbel: float = 0.0) -> None:
        super().__init__()
        self.z_dim, self.width, self.length, self.out_shape = z_dim, width, length, (vocab, length)
        self.gumbel = gumbel
        self.input = nn.Linear(z_dim, width * length)
        self.blocks = nn.Sequential(*(ResBlock1d(width) for _ in range(blocks)))
        self.output = nn.Conv1d(width, vocab, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.input(z).view(z.shape[0], self.width, self.length)
        logits = self.output(self.blocks(h))
        if self.training and self.gumbel > 0:
            return nn.functional.gumbel_softmax(logits, tau=self.gumbel, hard=True, dim=1)
        return torch.softmax(logits, dim=1)


class CharDiscriminator(nn.Module):
    def __init__(self, vocab: int, length: int, width: int = 512, blocks: int = 5) -> None:
        super().__init__()
        self.input = nn.Conv1d(vocab, width, 1)
        self.blocks = nn.Sequential(*(ResBlock1d(width) for _ in range(blocks)))
        self.output = nn.Linear(width * length, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.blocks(self.input(x)).flatten(1)).reshape(x.shape[0])
