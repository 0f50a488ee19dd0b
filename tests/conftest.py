import pytest

from ganforge.config import resolve_config

# A tiny but real budget: 256 digits of mnist5k, batch 32 → 8 batches per epoch.
TINY = {"data.limit": 256, "train.batch_size": 32, "log.every": 2, "log.progress": False,
        "log.sample_every": "1 epoch", "log.checkpoint_every": "1 epoch"}


@pytest.fixture
def tiny_config():
    def make(preset="mnist-mlp", **overrides):
        sets = dict(TINY)
        sets.update({k.replace("__", "."): v for k, v in overrides.items()})
        if "train.epochs" not in sets:
            sets.setdefault("train.steps", 16)
        return resolve_config(preset, overrides=sets)
    return make


def make_photos(root, n_photo=24, n_drawing=8, seed=0):
    """A small ImageFolder of real pictures that ship inside matplotlib: square-ish crops of the Grace
    Hopper photograph (JPEG, RGB) in ``root/photo`` and of a drawing with transparency (PNG, RGBA) in
    ``root/drawing``. Returns ``root``."""
    import random
    from pathlib import Path

    import matplotlib
    from PIL import Image

    sample = Path(matplotlib.get_data_path()) / "sample_data"
    photo = Image.open(sample / "grace_hopper.jpg").convert("RGB")
    drawing = Image.open(sample / "Minduka_Present_Blue_Pack.png").convert("RGBA")
    r = random.Random(seed)
    for sub, img, n, ext, lo in (("photo", photo, n_photo, "jpg", 120), ("drawing", drawing, n_drawing, "png", 48)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            w, h = r.randint(lo, img.size[0]), r.randint(lo, img.size[1])
            x, y = r.randint(0, img.size[0] - w), r.randint(0, img.size[1] - h)
            img.crop((x, y, x + w, y + h)).save(root / sub / f"{i:03d}.{ext}")
    return root


@pytest.fixture
def photo_folder(tmp_path):
    return make_photos(tmp_path / "photos")
