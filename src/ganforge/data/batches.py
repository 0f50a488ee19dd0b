"""Minibatch streams: what the training loop draws real batches from, with a position to resume at.

* :class:`BatchStream` — the order: a seeded permutation per epoch, a pure function of (seed, epoch).
* :class:`TensorBatches` — a dataset held as one tensor on the device, batched by indexing.
* :class:`LoaderBatches` — an image folder too large to hold, decoded by DataLoader workers in the same order.
* :class:`ToyBatches` — fresh samples of a toy distribution for every batch.
* :class:`~.stacked.StackedBatches` — fresh Stacked MNIST triples for every batch.
* :class:`TextBatches` — windows of a text file, one-hot, in the order of a :class:`BatchStream`.

Each has ``next()`` (the next real batch), ``position`` (batches drawn: all a checkpoint needs to
continue the same order), ``per_epoch`` and, for labelled data, ``labels`` of the last batch.
:func:`batches_for` picks the right one for a dataset.
"""

from __future__ import annotations

from typing import Iterator, Optional, Union

import torch

from ..errors import GanforgeError
from .folder import FolderImages
from .stacked import StackedBatches, StackedMnist
from .text import TextData
from .toy import Mixture


class BatchStream:
    """Minibatch indices over N items: a fresh seeded permutation per epoch, the last partial batch dropped.

    The order is a pure function of (seed, epoch), so ``position`` (batches consumed) is all a
    checkpoint needs to continue the exact same data order.
    """

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device, position: int = 0) -> None:
        if batch_size > n:
            raise GanforgeError(f"train.batch_size ({batch_size}) is larger than the dataset ({n} items)")
        self.n, self.batch_size, self.seed, self.device = n, batch_size, seed, device
        self.per_epoch = n // batch_size
        self.position = position
        self._epoch, self._perm = -1, None

    def next(self) -> torch.Tensor:
        epoch, i = divmod(self.position, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._epoch = torch.randperm(self.n, generator=gen).to(self.device), epoch
        self.position += 1
        return self._perm[i * self.batch_size : (i + 1) * self.batch_size]


class TensorBatches:
    """Real minibatches of a dataset held as one tensor on the device. In a world of ``world`` processes
    the stream draws global batches of ``batch_size × world`` and this rank takes its slice."""

    def __init__(self, data, batch_size: int, seed: int, device: torch.device, rank: int = 0, world: int = 1) -> None:
        self.x = data.x.to(device)
        self.y = data.y.to(device) if data.y is not None else None
        self.labels: Optional[torch.Tensor] = None  # the labels of the last batch (labelled data)
        self.order = BatchStream(len(data), batch_size * world, seed, device)
        self.per_epoch = self.order.per_epoch
        self.shard = slice(rank * batch_size, (rank + 1) * batch_size)

    position = property(lambda self: self.order.position,
                        lambda self, v: setattr(self.order, "position", v))

    def next(self) -> torch.Tensor:
        idx = self.order.next()[self.shard]
        if self.y is not None:
            self.labels = self.y[idx]
        return self.x[idx]


class LoaderBatches:
    """Real minibatches of a folder too large to hold, decoded by a DataLoader's worker processes in the
    same order as :class:`BatchStream` gives (so resume is exact). ``position`` counts the batches
    handed to the loop, not those the workers have prefetched; setting it restarts the loader there."""

    def __init__(self, data, batch_size: int, seed: int, device: torch.device, workers: int,
                 rank: int = 0, world: int = 1) -> None:
        self.data, self.seed, self.device, self.workers = data, seed, device, workers
        self.global_batch = batch_size * world
        self.per_epoch = BatchStream(len(data), self.global_batch, seed, torch.device("cpu")).per_epoch
        self.shard = slice(rank * batch_size, (rank + 1) * batch_size)
        self._position, self._it = 0, None
        self.labels: Optional[torch.Tensor] = None

    @property
    def position(self) -> int:
        return self._position

    @position.setter
    def position(self, value: int) -> None:
        self._position, self._it = value, None

    def _indices(self, start: int) -> Iterator[list]:
        order = BatchStream(len(self.data), self.global_batch, self.seed, torch.device("cpu"), position=start)
        while True:
            yield order.next()[self.shard].tolist()

    def next(self) -> torch.Tensor:
        if self._it is None:
            dataset = _WithLabels(self.data) if self.data.y is not None else self.data
            loader = torch.utils.data.DataLoader(
                dataset, batch_sampler=self._indices(self._position), num_workers=self.workers,
                pin_memory=self.device.type == "cuda", prefetch_factor=4 if self.workers else None)
            self._it = iter(loader)
        self._position += 1
        batch = next(self._it)
        if self.data.y is not None:
            batch, labels = batch
            self.labels = labels.to(self.device, non_blocking=True)
        return batch.to(self.device, non_blocking=True)


class _WithLabels(torch.utils.data.Dataset):
    def __init__(self, data) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        return self.data[i], self.data.y[i]


class ToyBatches:
    """Fresh samples of a toy distribution for every batch (drawn from torch's RNG, so resume is exact);
    ``data.samples_per_epoch`` real samples make an epoch."""

    def __init__(self, mixture: Mixture, batch_size: int, samples_per_epoch: int, device: torch.device) -> None:
        self.mixture, self.batch_size, self.device = mixture, batch_size, device
        self.per_epoch = max(1, samples_per_epoch // batch_size)
        self.position = 0

    def next(self) -> torch.Tensor:
        self.position += 1
        return self.mixture.sample(self.batch_size).to(self.device)


class TextBatches:
    """Real minibatches of windows in the order of a seeded :class:`~.batches.BatchStream` over start positions
    (so ``position`` is all a checkpoint needs). In a world of ``world`` processes each rank takes its slice."""

    def __init__(self, data: TextData, batch_size: int, seed: int, device: torch.device, rank: int = 0,
                 world: int = 1) -> None:
        self.data, self.device, self.labels = data, device, None
        self.order = BatchStream(len(data), batch_size * world, seed, torch.device("cpu"))
        self.per_epoch = self.order.per_epoch
        self.shard = slice(rank * batch_size, (rank + 1) * batch_size)

    position = property(lambda self: self.order.position, lambda self, v: setattr(self.order, "position", v))

    def next(self) -> torch.Tensor:
        return self.data.take(self.order.next()[self.shard]).to(self.device)


Batches = Union[TensorBatches, LoaderBatches, ToyBatches, StackedBatches, TextBatches]


def batches_for(data, batch_size: int, seed: int, device: torch.device, *, samples_per_epoch: int = 10000,
                workers: int = 0, rank: int = 0, world: int = 1) -> Batches:
    """The stream of real minibatches for ``data``: toy samples, a folder through DataLoader workers, or
    a tensor on the device. In a world of ``world`` processes each rank draws its own slice."""
    if isinstance(data, Mixture):
        return ToyBatches(data, batch_size, samples_per_epoch, device)
    if isinstance(data, StackedMnist):
        return StackedBatches(data, batch_size, seed, device, samples_per_epoch, rank, world)
    if isinstance(data, TextData):
        return TextBatches(data, batch_size, seed, device, rank, world)
    if isinstance(data, FolderImages):
        return LoaderBatches(data, batch_size, seed, device, workers, rank, world)
    return TensorBatches(data, batch_size, seed, device, rank, world)
