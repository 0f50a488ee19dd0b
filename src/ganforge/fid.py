"""FID between any two image sources, the way pytorch-fid's command line works: ``ganforge fid A B``.

A source is a folder of images (recursive, the extensions the data loader reads), a ``.npy`` array
N×C×H×W in [0, 1] (what ``ganforge sample --out x.npy`` writes), or saved statistics ``.npz`` (``mu``,
``sigma``; pytorch-fid's and clean-fid's format). Features: the standard FID network (default) or the
domain classifier, trained on A (a folder with one sub-folder per class, or labelled data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import write_atomic
from .data import from_unit
from .data.folder import scan
from .errors import GanforgeError
from .metrics.features import Extractor, domain_classifier, fid_inception
from .metrics.image import fid_from_stats, kid, precision_recall


def _batches_of(path: Path, batch: int = 50) -> Iterator[torch.Tensor]:
    """The images of a source in [-1, 1], batch by batch (folders: decoded as RGB, or grayscale when
    every file is; each image resized to 299 × 299 when their sizes differ)."""
    if path.suffix == ".npy":
        x = np.load(path, mmap_mode="r")
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise GanforgeError(f"{path} must hold images N x C x H x W with C 1 or 3, got shape {list(x.shape)}")
        for i in range(0, x.shape[0], batch):
            yield from_unit(torch.from_numpy(np.array(x[i: i + batch], dtype=np.float32)))
        return
    from PIL import Image

    files, _, _ = scan(path)
    if not files:
        raise GanforgeError(f"{path} holds no image files")
    with Image.open(files[0]) as first:
        mode, size = ("L" if first.mode in ("L", "1", "I;16") else "RGB"), first.size
    for i in range(0, len(files), batch):
        images = []
        for f in files[i: i + batch]:
            try:
                with Image.open(f) as im:
                    images.append(np.asarray(im.convert(mode), dtype=np.float32) / 127.5 - 1)
            except OSError as e:
                raise GanforgeError(f"cannot read image {f}: {e}") from None
        tensors = [torch.from_numpy(a).reshape(a.shape[0], a.shape[1], -1).permute(2, 0, 1) for a in images]
        if any(t.shape != tensors[0].shape for t in tensors) or tensors[0].shape[-2:] != (size[1], size[0]):
            tensors = [F.interpolate(t[None], size=(299, 299), mode="bilinear", align_corners=False)[0]
                       for t in tensors]
        yield torch.stack(tensors)


def features_of(path: Path, extractor: Extractor) -> torch.Tensor:
    """The extractor's features of every image of a folder or ``.npy`` source (float64, N × d)."""
    return torch.cat([extractor(b)["features"] for b in _batches_of(path)])


def statistics(path: Path, extractor: Extractor) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """(mu, sigma, features or None) of a source; a ``.npz`` gives saved statistics only."""
    if path.suffix == ".npz":
        try:
            saved = np.load(path)
            mu, sigma = torch.from_numpy(saved["mu"]).double(), torch.from_numpy(saved["sigma"]).double()
        except (OSError, KeyError, ValueError):
            raise GanforgeError(f"{path} is not a statistics file with arrays 'mu' and 'sigma'") from None
        return mu, sigma, None
    f = features_of(path, extractor)
    if f.shape[0] < 2:
        raise GanforgeError(f"{path} has {f.shape[0]} image(s); FID needs at least 2")
    return f.mean(0), torch.cov(f.T), f


def compare(a: Path, b: Path, features: str = "inception", weights: Optional[str] = None,
            save_stats: Optional[Path] = None) -> Dict[str, object]:
    """FID (and, when both sides are images, KID and precision/recall) between sources ``a`` and ``b``."""
    for p in (a, b):
        if not p.exists():
            raise GanforgeError(f"no such folder or file: {p}")
        if p.is_file() and p.suffix not in (".npy", ".npz"):
            raise GanforgeError(f"{p}: a source is a folder of images, a .npy array or a .npz of statistics")
    extractor = fid_inception(weights) if features == "inception" else _classifier_for(a)
    mu_a, s_a, f_a = statistics(a, extractor)
    mu_b, s_b, f_b = statistics(b, extractor)
    if mu_a.shape != mu_b.shape:
        raise GanforgeError(f"{a} and {b} have features of different sizes ({mu_a.shape[0]} and {mu_b.shape[0]}): "
                            f"statistics from another extractor?")
    out: Dict[str, object] = {"fid": fid_from_stats(mu_a, s_a, mu_b, s_b), "features": extractor.name,
                              "n_a": None if f_a is None else f_a.shape[0], "n_b": None if f_b is None else f_b.shape[0]}
    if f_a is not None and f_b is not None:
        out.update(kid(f_a, f_b))
        out.update(precision_recall(f_a, f_b))
    if save_stats is not None:
        write_atomic(save_stats, lambda fh: np.savez(fh, mu=mu_a.numpy(), sigma=s_a.numpy()))
    return out


def _classifier_for(a: Path) -> Extractor:

    if a.suffix in (".npy", ".npz"):
        raise GanforgeError("--features classifier trains on the first source's labels: give a folder with one "
                            "sub-folder per class as A")
    _, labels, _ = scan(a)
    if labels is None:
        raise GanforgeError(f"--features classifier needs class sub-folders in {a} to train on")
    x = torch.cat(list(_batches_of(a)))
    return domain_classifier(x, torch.tensor(labels), a.name)
