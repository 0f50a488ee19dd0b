"""Image folders: layouts, conversion to the configured size and channels, messy real-world files,
in-memory vs streamed loading, and the real-image augmentation."""

import json

import pytest
import torch
from PIL import Image

import ganforge
from ganforge.augment import real_augment
from ganforge.cli import main
from ganforge.config import DataConfig, resolve_config
from ganforge.data import FolderImages, TensorDataset, load_dataset
from ganforge.data.batches import LoaderBatches, TensorBatches
from ganforge.data.folder import decode
from ganforge.errors import GanforgeError

CPU = torch.device("cpu")


def folder_cfg(path, **kw):
    return DataConfig(name=str(path), **{"image_size": 32, "channels": 3, "workers": 0, **kw})


def test_imagefolder_layout_keeps_labels(photo_folder):
    data = load_dataset(folder_cfg(photo_folder))
    assert isinstance(data, TensorDataset) and data.x.shape == (32, 3, 32, 32)
    assert data.info["layout"] == "classes" and data.info["classes"] == ["drawing", "photo"]
    assert data.y.tolist() == [0] * 8 + [1] * 24   # sorted paths: drawing/* then photo/*
    assert data.x.min() >= -1 and data.x.max() <= 1 and data.x.std() > 0.2


def test_flat_folder_is_searched_recursively_without_labels(tmp_path):
    for i, sub in enumerate(["", "a", "a/b/c"]):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 20), (i * 100, 0, 0)).save(tmp_path / sub / f"{i}.png")
    data = load_dataset(folder_cfg(tmp_path))
    assert len(data) == 3 and data.y is None and data.info["layout"] == "flat"


def _px(t):  # a decoded (C, H, W) tensor's pixel values back in 0..255
    return ((t + 1) * 127.5).round()


def test_conversion_to_channels_size_and_crop(tmp_path):
    # transparency is composited on white, in RGBA and in palette images
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    rgba.save(tmp_path / "clear.png")
    assert torch.all(_px(decode(tmp_path / "clear.png", 16, 3)) == 255)
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([10, 20, 30] + [0] * 765)
    pal.save(tmp_path / "pal.png", transparency=0)
    assert torch.all(_px(decode(tmp_path / "pal.png", 16, 3)) == 255)
    # grayscale → RGB repeats the grey; RGB → L by ITU-R 601 luma (Pillow: 0.299 R + 0.587 G + 0.114 B)
    Image.new("L", (16, 16), 77).save(tmp_path / "grey.png")
    assert torch.all(_px(decode(tmp_path / "grey.png", 16, 3)) == 77)
    Image.new("RGB", (16, 16), (200, 100, 0)).save(tmp_path / "rgb.png")
    assert decode(tmp_path / "rgb.png", 16, 1).shape == (1, 16, 16)
    assert _px(decode(tmp_path / "rgb.png", 16, 1)).unique().item() == pytest.approx(0.299 * 200 + 0.587 * 100, abs=1)
    # short side to the size, then the centre: a 4:1 strip, blue ends, red middle half → all red
    strip = Image.new("RGB", (256, 64), (0, 0, 255))
    strip.paste((255, 0, 0), (64, 0, 192, 64))
    strip.save(tmp_path / "strip.png")
    x = _px(decode(tmp_path / "strip.png", 32, 3))
    assert x.shape == (3, 32, 32) and torch.all(x[0] == 255) and torch.all(x[2] == 0)
    # an animated GIF gives its first frame
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    x = _px(decode(tmp_path / "anim.gif", 16, 3))
    assert x[0].mean() > 240 and x[1].mean() < 15


def _messy(root):
    """A folder with 3 good images and every kind of bad file."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.new("RGB", (40, 30), (i * 80, 50, 50)).save(root / f"good{i}.jpg")
    Image.new("RGB", (200, 200), (9, 9, 9)).save(root / "whole.jpg")
    data = (root / "whole.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "whole.jpg").unlink()
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("this is not a picture\n")
    Image.new("RGB", (5, 40)).save(root / "tiny.png")
    Image.new("RGB", (40, 40)).save(root / ".hidden.png")          # hidden: ignored silently
    (root / ".thumbs").mkdir()
    Image.new("RGB", (40, 40)).save(root / ".thumbs" / "t.png")     # in a hidden folder: ignored
    (root / "notes.txt").write_text("not an image extension: ignored silently")
    (root / "Thumbs.db").write_bytes(b"\0" * 10)
    return root


def test_messy_folder_skips_each_bad_file_with_one_warning(tmp_path, capsys):
    data = load_dataset(folder_cfg(_messy(tmp_path / "messy")))
    assert len(data) == 3
    err = capsys.readouterr().err.splitlines()
    warnings = [l for l in err if l.startswith("ganforge: warning: skipped")]
    assert len(warnings) == 4
    why = {w.split(": ")[2].rsplit("/", 1)[1]: w for w in warnings}
    assert "empty file" in why["empty.png"]
    assert "not an image" in why["text.png"]
    assert "truncated or corrupt" in why["truncated.jpg"]
    assert "too small (5x40 px" in why["tiny.png"]
    assert "skipped 4 of 7 image files" in err[-1]
    assert not any("hidden" in l or "notes" in l or "thumbs" in l.lower() for l in err)
    assert data.info["skipped_count"] == 4 and {s["file"].rsplit("/", 1)[1] for s in data.info["skipped"]} == \
        {"empty.png", "text.png", "truncated.jpg", "tiny.png"}


def test_messy_folder_trains_and_the_run_dir_records_the_skips(tmp_path, capsys):
    cfg = resolve_config("mnist-dcgan", overrides={
        "data.name": str(_messy(tmp_path / "messy")), "data.workers": 0, "train.batch_size": 2,
        "train.epochs": None, "train.steps": 2, "model.g_features": 4, "model.d_features": 4, "log.progress": False})
    run = ganforge.train(cfg, tmp_path / "run")
    info = json.loads((run.dir / "data.json").read_text())
    assert info["images"] == 3 and info["skipped_count"] == 4
    assert (run.dir / "final.png").is_file()


def test_folder_without_usable_images_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"")
    (bad / "b.png").write_text("nope")
    with pytest.raises(GanforgeError, match="no usable image: all 2 image files were skipped"):
        load_dataset(folder_cfg(bad))
    none = tmp_path / "none"
    none.mkdir()
    (none / "readme.txt").write_text("hi")
    with pytest.raises(GanforgeError, match="holds no image files"):
        load_dataset(folder_cfg(none))
    capsys.readouterr()
    assert main(["train", "--preset", "dcgan", "--data", str(none), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no image files" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "r").exists()


def test_streamed_folder_gives_the_same_batches_as_the_in_memory_one(photo_folder):
    held = load_dataset(folder_cfg(photo_folder))
    streamed = load_dataset(folder_cfg(photo_folder, max_memory_mb=0, workers=1))
    assert isinstance(streamed, FolderImages) and streamed.info["in_memory"] is False
    assert streamed.shape == held.shape and len(streamed) == len(held)
    a = TensorBatches(held, 8, seed=3, device=CPU)
    b = LoaderBatches(streamed, 8, seed=3, device=CPU, workers=1)
    first = [a.next() for _ in range(6)]                       # 4 batches per epoch: crosses an epoch
    assert all(torch.allclose(x, b.next(), atol=1e-6) for x in first)
    a.position = b.position = 2                                # resume mid-stream
    assert torch.allclose(a.next(), b.next(), atol=1e-6) and b.position == 3


def test_sharded_batches_partition_the_global_batch(photo_folder):
    held = load_dataset(folder_cfg(photo_folder))
    whole = TensorBatches(held, 8, seed=1, device=CPU).next()
    parts = [TensorBatches(held, 4, seed=1, device=CPU, rank=r, world=2).next() for r in (0, 1)]
    assert torch.equal(torch.cat(parts), whole)


def test_real_augment_flips_half_and_keeps_range():
    torch.manual_seed(0)
    x = torch.rand(400, 3, 16, 16) * 2 - 1
    # with the affine turned off, each image is itself or its mirror image, about half of each
    y = real_augment(x, degrees=0, translate=(0, 0), scale=(1, 1), shear=0)
    same = (y - x).abs().flatten(1).amax(1) < 1e-5
    mirrored = (y - x.flip(3)).abs().flatten(1).amax(1) < 1e-5
    assert torch.all(same | mirrored) and 160 < int(mirrored.sum()) < 240
    # the default small affine moves pixels but stays in range and keeps most of the image
    y = real_augment(x[:50])
    assert y.shape == x[:50].shape and y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    flat = torch.ones(8, 1, 32, 32)
    z = real_augment(flat)  # a white image: black (-1) only creeps in at the borders
    assert (z[:, :, 8:24, 8:24] > 0.99).all() and (z < 0.99).any()


@pytest.mark.slow
def test_dcgan_preset_trains_on_a_folder_of_photos(photo_folder, tmp_path, capsys):
    code = main(["train", "--preset", "dcgan", "--data", str(photo_folder), "--steps", "2", "-q",
                 "--run-dir", str(tmp_path / "run"), "--set", "train.batch_size=8", "--set", "model.g_features=4",
                 "--set", "model.d_features=4", "--set", "data.workers=0"])
    assert code == 0
    run = tmp_path / "run"
    assert (run / "samples" / "real.png").is_file() and (run / "final.png").is_file()
    with Image.open(run / "final.png") as im:
        assert im.mode == "RGB" and im.size[0] > 64 * 8   # an 8 × 8 grid of 64 px colour images
    assert json.loads((run / "data.json").read_text())["layout"] == "classes"
    code = main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.npy")])
    import numpy as np
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (4, 3, 64, 64)


def test_mnist_dcgan_short_run_completes_and_samples(tiny_config, tmp_path):
    cfg = tiny_config("mnist-dcgan", train__steps=4, model__g_features=8, model__d_features=8)
    assert cfg.data.image_size == 32 and cfg.data.channels == 1
    run = ganforge.train(cfg, tmp_path / "run")
    gan = run.load()
    x = gan.sample(6, seed=0)
    assert x.shape == (6, 1, 32, 32) and torch.isfinite(x).all()
    assert (run.dir / "final.png").is_file()


def test_thousands_of_tiny_images_decode_with_workers(tmp_path):
    """The regression of 'received 0 items of ancdata': a worker handing over one tensor per image exhausts
    the file descriptors the tensors travel through; it hands over one per batch now."""
    root = tmp_path / "many"
    for c in range(2):
        (root / f"class{c}").mkdir(parents=True)
    import numpy as np
    rng = np.random.default_rng(0)
    for i in range(3000):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / f"class{i % 2}" / f"{i}.png")
    data = load_dataset(folder_cfg(root, image_size=8, workers=2))
    serial = load_dataset(folder_cfg(root, image_size=8, workers=0))
    assert data.x.shape == (3000, 3, 8, 8) and torch.equal(data.x, serial.x) and torch.equal(data.y, serial.y)
    with Image.open(root / "class1" / "7.png") as im:
        first = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 127.5 - 1
    names = sorted((root / "class1").iterdir())
    assert torch.equal(data.x[1500 + names.index(root / "class1" / "7.png")], first)


def test_odd_files_convert_or_are_skipped_with_one_warning(tmp_path, capsys):
    import numpy as np
    root = tmp_path / "odd"
    root.mkdir()
    Image.new("RGB", (16, 16), (255, 0, 0)).save(root / "rgb.png")
    Image.new("L", (16, 16), 128).save(root / "grey.png")
    Image.new("RGBA", (16, 16), (0, 0, 255, 0)).save(root / "clear.png")      # transparent: white
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(root / "cmyk.jpg")     # red in CMYK
    Image.fromarray(np.full((16, 16), 49151, dtype=np.uint16)).save(root / "deep.png")   # 16-bit, 3/4 grey
    Image.new("RGB", (1, 1)).save(root / "dot.png")
    loop = root / "loop"
    loop.mkdir()
    (loop / "again").symlink_to(root, target_is_directory=True)
    data = load_dataset(folder_cfg(root, image_size=8))
    err = capsys.readouterr().err
    assert len(data) == 5 and err.count("warning: skipped") == 1 and "dot.png: too small (1x1 px" in err
    files = [f for f in sorted(root.glob("*.*")) if f.name != "dot.png"]
    by_name = {f.name: data.x[i, :, 4, 4] for i, f in enumerate(files)}
    assert torch.allclose(by_name["clear.png"], torch.ones(3))
    assert torch.allclose(by_name["deep.png"], torch.full((3,), 0.5), atol=0.01)   # 3/4 grey, not clipped to white
    assert by_name["cmyk.jpg"][0] > 0.9 and by_name["cmyk.jpg"][1:].max() < -0.8
