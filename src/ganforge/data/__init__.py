"""Datasets → tensors in [-1, 1] with a known shape.

Small datasets are held as one tensor (on the training device) and batched by indexing, so the
training loop does no per-image work. :func:`load_dataset` is the one entry point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F

from ..config import DataConfig
from ..errors import GanforgeError
from .audio import fsdd, is_audio_folder, load_audio_folder
from .cifar import class_names, load_cifar10
from .folder import FolderImages, load_folder
from .mnist import load_idx_dataset, load_mnist5k
from .stacked import StackedMnist
from .text import TextData, load_text, tiny_shakespeare
from .toy import DEFAULTS as TOY_DEFAULTS
from .toy import Mixture

NAMED = ("mnist5k", "mnist", "fashion-mnist", "stacked-mnist", "cifar10", "tinyshakespeare", "fsdd", *TOY_DEFAULTS)


@dataclass
class TensorDataset:
    """Images as one float tensor ``x`` (N, C, H, W) in [-1, 1]; labels ``y`` (N,) or None."""

    x: torch.Tensor
    y: Optional[torch.Tensor]
    name: str
    info: Dict[str, Any] = field(default_factory=dict)  # what loading found (folders: layout, skipped files)
    kind = "image"

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device) -> "TensorDataset":
        y = self.y.to(device) if self.y is not None else None
        return TensorDataset(self.x.to(device), y, self.name, self.info)

    def take(self, index: torch.Tensor) -> torch.Tensor:
        return self.x[index]


class AudioData(TensorDataset):
    """Clips as one float tensor ``x`` (N, 1, L) in [-1, 1] at ``info["sample_rate"]``; labels ``y`` or None."""

    kind = "audio"

    @property
    def rate(self) -> int:
        return int(self.info["sample_rate"])

    def to(self, device: torch.device) -> "AudioData":
        y = self.y.to(device) if self.y is not None else None
        return AudioData(self.x.to(device), y, self.name, self.info)


def default_root() -> Path:
    return Path.home() / ".cache" / "ganforge" / "data"


def subset(n: int, limit: Optional[int], seed: int = 0) -> torch.Tensor:
    """A fixed random choice of ``limit`` of ``n`` items (seeded), in their original order; all of them
    when ``limit`` is None or ≥ n. ``data.limit`` uses seed 0."""
    if limit is None or limit >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].sort().values


def conform(x: torch.Tensor, image_size: Optional[int], channels: Optional[int]) -> torch.Tensor:
    """Images (N, C, H, W) in [-1, 1] → ``channels`` (grey ↔ RGB by ITU-R 601 luma / repetition) and
    ``image_size`` × ``image_size`` (bilinear, antialiased; square inputs are simply rescaled)."""
    if channels is not None and channels != x.shape[1]:
        if channels == 1:
            x = (x * torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
        else:
            x = x.expand(-1, 3, -1, -1).contiguous()
    if image_size is not None and tuple(x.shape[2:]) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True,
                          align_corners=False).clamp_(-1, 1)
    return x


def load_dataset(cfg: DataConfig, verbose: bool = True
                 ) -> Union[TensorDataset, FolderImages, Mixture, StackedMnist, TextData]:
    """Load the dataset named by ``cfg.name`` (a known name or a folder path); toy names give a
    :class:`Mixture`, folders too large for ``cfg.max_memory_mb`` a streamed :class:`FolderImages`, a text
    file (UTF-8) :class:`TextData`, a folder of WAV files :class:`AudioData`."""
    if cfg.name in TOY_DEFAULTS:
        return Mixture(cfg.components or TOY_DEFAULTS[cfg.name], cfg.name)
    root = Path(cfg.root).expanduser() if cfg.root else default_root()
    name = cfg.name
    if name == "stacked-mnist":  # three digits as R, G, B; data.limit picks the source digits
        x, y = load_mnist5k()
        keep = subset(x.shape[0], cfg.limit)
        return StackedMnist(conform(x[keep], cfg.image_size, 1), y[keep])
    if name == "tinyshakespeare":
        return load_text(tiny_shakespeare(root, cfg.download), cfg.seq_len)
    if name == "fsdd":  # its official train split; the test split is the metrics' reference
        return load_audio(fsdd(root, cfg.download), cfg, "train", name)
    info: Dict[str, Any] = {}
    if name == "cifar10":
        x, y = load_cifar10(root, "train", download=cfg.download)
        info = {"source": str(root / "cifar-10-batches-py"), "classes": class_names(root), "images": len(y)}
    elif name == "mnist5k":
        x, y = load_mnist5k()
    elif name in ("mnist", "fashion-mnist"):
        x, y = load_idx_dataset(name, root, download=cfg.download)
    else:
        path = Path(name).expanduser()
        if not path.exists():
            raise GanforgeError(f"data '{name}' is neither a known dataset ({', '.join(NAMED)}) "
                                f"nor an existing folder or text file")
        if path.is_file():
            return load_text(path, cfg.seq_len)
        if is_audio_folder(path):
            return load_audio(path, cfg, None, name)
        found = load_folder(path, cfg.image_size, cfg.channels, cfg.max_memory_mb, cfg.workers, verbose)
        keep = subset(len(found.files), cfg.limit).tolist()
        n = len(keep)
        y = torch.tensor([found.labels[i] for i in keep]) if found.labels is not None else None
        info = {"source": str(path), "layout": "classes" if found.classes else "flat", "classes": found.classes,
                "images": n, "skipped_count": len(found.skipped), "skipped": found.skipped,
                "in_memory": found.x is not None}
        if found.x is None:
            images = FolderImages([found.files[i] for i in keep], y, found.x_size, found.x_channels, name)
            images.info = info
            return images
        return TensorDataset(found.x[keep], y, name, info)
    if cfg.limit is not None and cfg.limit < x.shape[0]:
        keep = subset(x.shape[0], cfg.limit)
        x, y = x[keep], (y[keep] if y is not None else None)
    return TensorDataset(conform(x, cfg.image_size, cfg.channels), y, name, info)


def load_audio(path: Path, cfg: DataConfig, split: Optional[str], name: str) -> AudioData:
    x, y, info = load_audio_folder(path, cfg.audio_len, cfg.sample_rate, split)
    keep = subset(len(x), cfg.limit)
    return AudioData(x[keep], y[keep] if y is not None else None, name, {**info, "clips": len(keep)})


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Map generator/data values in [-1, 1] to pixel intensities in [0, 1] (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """Map pixel intensities in [0, 1] to the [-1, 1] that data and generators use (the inverse of to_unit)."""
    return x * 2 - 1
