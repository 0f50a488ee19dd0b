"""A small folder of real pictures, built offline from images that ship inside matplotlib — for the
test suite, the benchmarks, and trying ``--preset dcgan`` before you have a folder of your own."""

from __future__ import annotations

import random
from pathlib import Path


def write_example_folder(root: Path, n_photo: int = 24, n_drawing: int = 8, seed: int = 0) -> Path:
    """An ImageFolder under ``root``: random crops of the Grace Hopper photograph (JPEG, RGB) in
    ``photo/`` and of a drawing with transparency (PNG, RGBA) in ``drawing/``. Returns ``root``."""
    import matplotlib
    from PIL import Image

    sample = Path(matplotlib.get_data_path()) / "sample_data"
    photo = Image.open(sample / "grace_hopper.jpg").convert("RGB")
    drawing = Image.open(sample / "Minduka_Present_Blue_Pack.png").convert("RGBA")
    r = random.Random(seed)
    root = Path(root)
    for sub, img, n, ext, lo in (("photo", photo, n_photo, "jpg", 120), ("drawing", drawing, n_drawing, "png", 48)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            w, h = r.randint(lo, img.size[0]), r.randint(lo, img.size[1])
            x, y = r.randint(0, img.size[0] - w), r.randint(0, img.size[1] - h)
            img.crop((x, y, x + w, y + h)).save(root / sub / f"{i:03d}.{ext}")
    return root
