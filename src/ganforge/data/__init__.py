"""Datasets → tensors in [-1, 1] with a known shape.

Small datasets are held as one tensor (on the training device) and batched by indexing, so the
training loop does no per-image work. :func:`load_dataset` is the one entry point.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import torch

from ..config import DataConfig
from ..errors import GanforgeError
from .mnist import load_idx_dataset, load_mnist5k
from .toy import DEFAULTS as TOY_DEFAULTS
from .toy import Mixture

NAMED = ("mnist5k", "mnist", "fashion-mnist", *TOY_DEFAULTS)


@dataclass
class TensorDataset:
    """Images as one float tensor ``x`` (N, C, H, W) in [-1, 1]; labels ``y`` (N,) or None."""

    x: torch.Tensor
    y: Optional[torch.Tensor]
    name: str
    kind = "image"

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device) -> "TensorDataset":
        y = self.y.to(device) if self.y is not None else None
        return TensorDataset(self.x.to(device), y, self.name)


def default_root() -> Path:
    return Path.home() / ".cache" / "ganforge" / "data"


def load_dataset(cfg: DataConfig) -> Union[TensorDataset, Mixture]:
    """Load the dataset named by ``cfg.name`` (a known name or a path); toy names give a :class:`Mixture`."""
    if cfg.name in TOY_DEFAULTS:
        return Mixture(cfg.components or TOY_DEFAULTS[cfg.name], cfg.name)
    root = Path(cfg.root).expanduser() if cfg.root else default_root()
    name = cfg.name
    if name == "mnist5k":
        x, y = load_mnist5k()
    elif name in ("mnist", "fashion-mnist"):
        x, y = load_idx_dataset(name, root, download=cfg.download)
    else:
        path = Path(name).expanduser()
        if not path.exists():
            raise GanforgeError(f"data '{name}' is neither a known dataset ({', '.join(NAMED)}) "
                                f"nor an existing path")
        raise GanforgeError(f"data path '{name}': image folders are not supported yet; "
                            f"use one of {', '.join(NAMED)}")
    if cfg.limit is not None:
        x, y = x[: cfg.limit], (y[: cfg.limit] if y is not None else None)
    return TensorDataset(x, y, name)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Map generator/data values in [-1, 1] to pixel intensities in [0, 1]."""
    return ((x + 1) / 2).clamp(0, 1)
