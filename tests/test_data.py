import gzip
import struct

import numpy as np
import pytest
import torch

from ganforge.config import DataConfig
from ganforge.data import load_dataset, to_unit
from ganforge.data.mnist import read_idx
from ganforge.errors import GanforgeError


def _write_idx(path, array, gz=False):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def test_mnist5k_is_the_embedded_real_data():
    ds = load_dataset(DataConfig(name="mnist5k"))
    assert ds.x.shape == (5000, 1, 28, 28) and ds.x.dtype == torch.float32
    assert ds.x.min().item() == -1.0 and ds.x.max().item() == 1.0
    assert torch.bincount(ds.y).tolist() == [500] * 10
    assert 0.1 < ((ds.x + 1) / 2).mean().item() < 0.16   # MNIST's mean intensity is about 0.13
    assert load_dataset(DataConfig(name="mnist5k", limit=100)).x.shape[0] == 100


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_in_torchvision_layout(tmp_path, gz):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, size=(10, 28, 28))
    suffix = ".gz" if gz else ""
    _write_idx(raw / f"train-images-idx3-ubyte{suffix}", images, gz)
    _write_idx(raw / f"train-labels-idx1-ubyte{suffix}", np.arange(10), gz)
    ds = load_dataset(DataConfig(name="fashion-mnist", root=str(tmp_path), download=False))
    assert ds.x.shape == (10, 1, 28, 28)
    assert torch.allclose(to_unit(ds.x) * 255, torch.tensor(images, dtype=torch.float32).unsqueeze(1), atol=1e-3)
    assert ds.y.tolist() == list(range(10))


def test_missing_dataset_offline_says_where_to_put_files(tmp_path):
    with pytest.raises(GanforgeError, match=r"mnist not found offline: put train-images-idx3-ubyte.* in .*MNIST/raw"):
        load_dataset(DataConfig(name="mnist", root=str(tmp_path), download=False))


def test_truncated_or_foreign_idx_files(tmp_path):
    p = tmp_path / "t"
    _write_idx(p, np.zeros((5, 28, 28)))
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(GanforgeError, match="truncated"):
        read_idx(p)
    q = tmp_path / "q"
    q.write_bytes(b"hello world")
    with pytest.raises(GanforgeError, match="not an unsigned-byte IDX file"):
        read_idx(q)


def test_missing_path():
    with pytest.raises(GanforgeError, match="neither a known dataset .* nor an existing folder"):
        load_dataset(DataConfig(name="/no/such/folder"))


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_the_default_preset_trains_on_full_mnist_and_fashion_mnist_files(tmp_path, name, folder):
    from ganforge.cli import main

    raw = tmp_path / "data" / folder / "raw"
    raw.mkdir(parents=True)
    _write_idx(raw / "train-images-idx3-ubyte", np.random.default_rng(0).integers(0, 256, size=(64, 28, 28)))
    _write_idx(raw / "train-labels-idx1-ubyte", np.arange(64) % 10)
    run = tmp_path / "run"
    assert main(["train", "--data", name, "--set", f"data.root={tmp_path / 'data'}", "--steps", "3", "-q",
                 "--set", "eval.every=off", "--set", "train.batch_size=16", "--run-dir", str(run)]) == 0
    cfg = (run / "config.yaml").read_text()
    assert "preset: mnist-conv" in cfg and f"name: {name}" in cfg and "image_size: 28" in cfg
    assert (run / "checkpoints" / "step-0000003.pt").is_file()


def test_cifar10_by_name_reads_torchvisions_pickles_and_says_what_is_missing(tmp_path):
    import pickle
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    pixels = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        pixels[name] = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": pixels[name], b"labels": [0, 1, 2, 9]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    data = load_dataset(DataConfig(name="cifar10", root=str(tmp_path), download=False))
    assert data.x.shape == (20, 3, 32, 32) and data.y.tolist() == [0, 1, 2, 9] * 5
    first = torch.from_numpy(pixels["data_batch_1"][0].reshape(3, 32, 32).astype(np.float32)) / 127.5 - 1
    assert torch.allclose(data.x[0], first) and data.info["classes"][9] == "c9"
    (folder / "data_batch_3").unlink()
    with pytest.raises(GanforgeError, match=r"cifar10 not found offline: put data_batch_3 .* in .*cifar-10-batches-py"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path), download=False))
