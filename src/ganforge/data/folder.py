"""A folder of the user's own images: scanned recursively, decoded by Pillow, made square, in [-1, 1].

Layouts: torchvision's ImageFolder (one sub-folder per class, labels kept) or any other tree of
images (no labels). Every file with an image extension is decoded once, up front, by a DataLoader with
workers: a file that cannot be used (empty, not an image, truncated or corrupt, smaller than
:data:`MIN_SIDE` px) is skipped with one warning naming it, so training never meets a bad file.
Folders that fit in ``data.max_memory_mb`` after decoding are kept as one tensor; larger ones are
decoded again, batch by batch, while training (:class:`FolderImages`).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..errors import GanforgeError
from ..logs import log

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
MIN_SIDE = 8
DEFAULT_SIZE, DEFAULT_CHANNELS = 64, 3


class Unusable(Exception):
    """Why one file cannot be used."""


def scan(root: Path) -> Tuple[List[Path], Optional[List[int]], List[str]]:
    """Image files under ``root`` (sorted, hidden files and folders ignored) with class labels when
    ``root`` holds only sub-folders (the ImageFolder layout: class = top-level sub-folder)."""
    files = sorted(p for p in root.rglob("*")
                   if p.suffix.lower() in EXTENSIONS and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    top_level = {p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1}
    if files and all(len(p.relative_to(root).parts) > 1 for p in files) and len(top_level) > 1:
        classes = sorted(top_level)
        index = {c: i for i, c in enumerate(classes)}
        return files, [index[p.relative_to(root).parts[0]] for p in files], classes
    return files, None, []


def decode(path: Path, size: int, channels: int) -> torch.Tensor:
    """One image as a (channels, size, size) float tensor in [-1, 1]: transparency composited on white,
    converted to RGB or grayscale, short side resized to ``size`` (bilinear, antialiased), centre-cropped.
    Raises :class:`Unusable` saying why when the file cannot be used."""
    return to_float(decode_u8(path, size, channels))


def to_float(pixels: torch.Tensor) -> torch.Tensor:
    """8-bit pixels → floats in [-1, 1]."""
    return pixels.float().div_(127.5).sub_(1.0)


def decode_u8(path: Path, size: int, channels: int) -> torch.Tensor:
    """:func:`decode`'s image as 8-bit pixels (channels, size, size), before scaling."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms import functional as TF

    try:
        if path.stat().st_size == 0:
            raise Unusable("empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's DecompressionBomb/palette warnings: we judge the pixels
            with Image.open(path) as img:
                img.seek(0)  # GIF/WebP animations: the first frame
                img.load()
                if min(img.size) < MIN_SIDE:
                    raise Unusable(f"too small ({img.size[0]}x{img.size[1]} px; at least {MIN_SIDE} px a side)")
                if img.mode.startswith("I;16") or img.mode == "I":  # 16/32-bit grey: scaled to 8 bits, not clipped
                    deep = np.asarray(img, dtype=np.float64)
                    top = 65535.0 if img.mode.startswith("I;16") or deep.max() > 255 else 255.0
                    img = Image.fromarray(np.clip(deep * (255.0 / top) + 0.5, 0, 255).astype(np.uint8), "L")
                if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                    rgba = img.convert("RGBA")
                    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    img = Image.alpha_composite(white, rgba)
                img = img.convert("RGB" if channels == 3 else "L")
    except Unusable:
        raise
    except UnidentifiedImageError:
        raise Unusable("not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # Pillow's ways of saying truncated/corrupt
        raise Unusable(f"truncated or corrupt image ({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
            from None
    if img.size != (size, size):
        img = TF.center_crop(TF.resize(img, size, antialias=True), [size, size])
    return TF.pil_to_tensor(img)


class _Decoded(Dataset):
    """Files → (index, 8-bit pixels or None, why) for the decoding DataLoader; never raises for a bad file.
    ``keep`` False: check each file, return no pixels (a folder that will be streamed)."""

    def __init__(self, files: Sequence[Path], size: int, channels: int, keep: bool) -> None:
        self.files, self.size, self.channels, self.keep = list(files), size, channels, keep

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        try:
            pixels = decode_u8(self.files[i], self.size, self.channels)
            return i, pixels if self.keep else None, ""
        except Unusable as e:
            return i, None, str(e)


def _collate(batch):
    """A worker's batch as three objects: the usable indices, their pixels as one uint8 tensor, and the
    unusable (index, why). One tensor per batch, not one per image: the workers hand tensors over through
    file descriptors, and tens of thousands of small ones exhaust them ("received 0 items of ancdata")."""
    ok = [(i, x) for i, x, why in batch if not why]
    pixels = torch.stack([x for _, x in ok]) if ok and ok[0][1] is not None else None
    return torch.tensor([i for i, _ in ok], dtype=torch.long), pixels, [(i, why) for i, _, why in batch if why]


class FolderImages(Dataset):
    """Usable files of a folder too large to hold, decoded on demand (for a DataLoader while training)."""

    kind = "image"

    def __init__(self, files: Sequence[Path], y: Optional[torch.Tensor], size: int, channels: int, name: str) -> None:
        self.files, self.y, self.size, self.channels, self.name = list(files), y, size, channels, name
        self.info: Dict = {}

    @property
    def shape(self) -> Tuple[int, ...]:
        return (self.channels, self.size, self.size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        """Image ``i``; if it became unusable since the folder was checked (changed or removed while
        training), one warning and the next usable image in its place, so the batch keeps its shape."""
        for k in range(len(self.files)):
            path = self.files[(i + k) % len(self.files)]
            try:
                return decode(path, self.size, self.channels)
            except Unusable as e:
                log.warning(f"skipped {path}: {e} (it changed after the folder was checked)")
        raise GanforgeError(f"no image of {self.name} is usable any more")

    def take(self, index: torch.Tensor) -> torch.Tensor:
        return torch.stack([self[int(i)] for i in index])


@dataclass
class FolderScan:
    """What loading a folder found: the usable images (a tensor, or ``None`` when streamed) and the skips."""

    files: List[Path]
    labels: Optional[List[int]]
    classes: List[str]
    x: Optional[torch.Tensor]
    x_size: int
    x_channels: int
    skipped: List[Dict[str, str]] = field(default_factory=list)


def load_folder(root: Path, size: Optional[int], channels: Optional[int], max_memory_mb: int,
                workers: int, verbose: bool = True) -> FolderScan:
    """Scan and decode ``root`` once; warn about each unusable file on stderr; fail when none is usable."""
    size, channels = size or DEFAULT_SIZE, channels or DEFAULT_CHANNELS
    if not root.is_dir():
        raise GanforgeError(f"data path '{root}' is a file; give a folder of images")
    files, labels, classes = scan(root)
    if not files:
        raise GanforgeError(f"data folder '{root}' holds no image files ({', '.join(EXTENSIONS)}), "
                            f"searched recursively")
    in_memory = len(files) * channels * size * size * 4 <= max_memory_mb * 2 ** 20
    loader = DataLoader(_Decoded(files, size, channels, in_memory), batch_size=128, collate_fn=_collate,
                        num_workers=min(workers, len(files) // 128))
    kept, chunks, skipped = [], [], []
    bar = tqdm(loader, desc=f"decoding {root.name or root}", unit="batch", file=sys.stderr, leave=False,
               disable=not verbose or len(files) < 2000)
    for ok, pixels, bad in bar:
        for i, why in bad:
            skipped.append({"file": str(files[i]), "why": why})
            if verbose:
                log.warning(f"skipped {files[i]}: {why}")
        kept += ok.tolist()
        if pixels is not None:
            chunks.append(pixels)
    bar.close()
    if not kept:
        raise GanforgeError(f"data folder '{root}' has no usable image: all {len(files)} image files were skipped "
                            f"(see the warnings above)")
    if skipped and verbose:
        log.info(f"skipped {len(skipped)} of {len(files)} image files in {root}")
    return FolderScan([files[i] for i in kept], [labels[i] for i in kept] if labels is not None else None,
                      classes, to_float(torch.cat(chunks)) if in_memory else None, size, channels, skipped)
