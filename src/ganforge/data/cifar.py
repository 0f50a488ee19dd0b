"""CIFAR-10 (Krizhevsky 2009) from torchvision's files: the python pickles in ROOT/cifar-10-batches-py/.

Read directly (no torchvision dataset object in the loop); downloaded through torchvision when missing
and ``data.download`` allows; offline and missing, one sentence says which files go where.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch

from ..errors import GanforgeError
from .folder import to_float

FOLDER = "cifar-10-batches-py"
SPLITS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def _read(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as e:
        raise GanforgeError(f"{path} is not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
    if y.shape != (x.shape[0],):
        raise GanforgeError(f"{path} does not hold one label per image")
    return x, y


def class_names(root: Path) -> List[str]:
    try:
        with open(root / FOLDER / "batches.meta", "rb") as f:
            return [n.decode() for n in pickle.load(f, encoding="bytes")[b"label_names"]]
    except (OSError, pickle.UnpicklingError, KeyError, EOFError, AttributeError):
        return ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def load_cifar10(root: Path, split: str = "train", download: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10's ``split`` (train: 50,000 images; test: 10,000) as (N, 3, 32, 32) floats in [-1, 1] and labels."""
    files = [root / FOLDER / name for name in SPLITS[split]]
    if not all(f.is_file() for f in files) and download:
        try:
            from torchvision import datasets
            datasets.CIFAR10(str(root), train=True, download=True)
        except Exception:  # network errors come in many types; what is missing is reported below
            pass
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise GanforgeError(f"cifar10 not found offline: put {', '.join(missing)} (torchvision's "
                            f"cifar-10-python.tar.gz, unpacked) in {root / FOLDER}, or set data.root to the folder "
                            f"that holds {FOLDER}/, or give a folder of CIFAR-10 images with --data PATH")
    parts = [_read(f) for f in files]
    x = to_float(torch.from_numpy(np.concatenate([p[0] for p in parts])))
    return x, torch.from_numpy(np.concatenate([p[1] for p in parts]))
