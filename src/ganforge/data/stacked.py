"""Stacked MNIST (Metz et al. 2017; Srivastava et al. 2017, VEEGAN's protocol): three digits drawn
independently and stacked as the R, G and B channels, so 10³ = 1,000 modes.

The digits are mnist5k's 5,000. Training draws fresh triples for every batch, seeded by (seed, batch
position), so the stream is infinite, deterministic for a seed, and resumes exactly from its position.
``x`` is a fixed set of stacked images (seed 0) for what needs real images at hand: the real-sample
grid and the reference features. The labels (the three digits of each image) are kept as ``digits`` and
are not class labels for G: a 1,000-class conditional G would be told the very modes it should find.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

REFERENCE_SIZE = 10_000  # stacked images in ``x`` (the reference set)


class StackedMnist:
    kind = "image"

    def __init__(self, source: torch.Tensor, source_y: torch.Tensor, n: int = REFERENCE_SIZE) -> None:
        self.source, self.source_y = source, source_y  # (M, 1, S, S) single digits in [-1, 1], (M,)
        triples = draw_triples(source.shape[0], n, torch.Generator().manual_seed(0))
        self.x = stack(source, triples)
        self.digits = source_y[triples]  # (n, 3): the digit in R, G, B
        self.y: Optional[torch.Tensor] = None
        self.name = "stacked-mnist"
        self.info: Dict = {"source": "mnist5k", "source_digits": source.shape[0], "modes": 1000}

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, index: torch.Tensor) -> torch.Tensor:
        return self.x[index]


def draw_triples(m: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` rows of three independent uniform indices into ``m`` digits."""
    return torch.randint(m, (n, 3), generator=gen)


def stack(source: torch.Tensor, triples: torch.Tensor) -> torch.Tensor:
    """(M, 1, S, S) digits, (n, 3) indices → (n, 3, S, S) images, digit ``triples[:, c]`` in channel c."""
    return source[triples.to(source.device)].squeeze(2)


class StackedBatches:
    """Fresh stacked triples for every batch: batch ``p`` is drawn from a generator seeded by (seed, p), so
    ``position`` is all a checkpoint needs. In a world of ``world`` processes each rank takes its slice of
    the global batch; ``samples_per_epoch`` real samples make an epoch."""

    def __init__(self, data: StackedMnist, batch_size: int, seed: int, device: torch.device,
                 samples_per_epoch: int, rank: int = 0, world: int = 1) -> None:
        self.source = data.source.to(device)
        self.seed, self.global_batch = seed, batch_size * world
        self.shard = slice(rank * batch_size, (rank + 1) * batch_size)
        self.per_epoch = max(1, samples_per_epoch // self.global_batch)
        self.position = 0
        self.labels: Optional[torch.Tensor] = None

    def next(self) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.position)
        self.position += 1
        return stack(self.source, draw_triples(self.source.shape[0], self.global_batch, gen)[self.shard])
