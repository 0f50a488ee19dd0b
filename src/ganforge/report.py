"""Pictures of a run: sample grids."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torchvision.utils import save_image

from .checkpoint import write_atomic
from .data import to_unit


def save_grid(images: torch.Tensor, path: Path, nrow: int = 0) -> Path:
    """Save images in [-1, 1] (N, C, H, W) as one PNG grid, ``nrow`` per row (default: square)."""
    nrow = nrow or max(1, math.ceil(math.sqrt(images.shape[0])))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: save_image(to_unit(images.detach().float().cpu()), f, nrow=nrow,
                                            padding=2, format="png"))
    return path
