import os
import pickle

import pytest
import torch

from ganforge.checkpoint import checkpoint_files, latest_checkpoint, load_checkpoint, save_checkpoint, write_atomic
from ganforge.errors import GanforgeError, StorageError


def test_save_points_latest_and_prunes(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint({"step": step, "w": torch.ones(2) * step}, tmp_path, step, keep=2)
    assert [p.name for p in checkpoint_files(tmp_path)] == ["step-0000003.pt", "step-0000004.pt"]
    assert latest_checkpoint(tmp_path).name == "step-0000004.pt"
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["step"] == 4 and torch.equal(state["w"], torch.full((2,), 4.0))
    (tmp_path / "latest").write_text("garbage\n")   # a bad pointer falls back to the newest file
    assert latest_checkpoint(tmp_path).name == "step-0000004.pt"


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_is_refused_and_not_run(tmp_path):
    evil = tmp_path / "evil.pt"
    marker = tmp_path / "pwned"
    with open(evil, "wb") as f:
        pickle.dump({"format": "ganforge-checkpoint", "x": _Payload(str(marker))}, f)
    with pytest.raises(GanforgeError, match="holds objects other than tensors"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_truncated_and_foreign_files(tmp_path):
    path = save_checkpoint({"step": 1, "w": torch.randn(1000)}, tmp_path, 1, keep=3)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GanforgeError, match="truncated or corrupt"):
        load_checkpoint(path)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(1)}, other)
    with pytest.raises(GanforgeError, match="not a ganforge checkpoint"):
        load_checkpoint(other)
    with pytest.raises(GanforgeError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"good")

    def boom(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(StorageError, match=r"No space left on device \(ENOSPC\); nothing was replaced"):
        write_atomic(target, boom)
    assert target.read_bytes() == b"good" and os.listdir(tmp_path) == ["f.bin"]


def test_resume_and_load_fall_back_past_a_corrupt_latest_checkpoint(tmp_path, capsys):
    import ganforge
    from ganforge.config import resolve_config
    sets = {"data.limit": 256, "train.batch_size": 32, "log.progress": False, "log.checkpoint_every": "4 steps",
            "train.steps": 8}
    run = ganforge.train(resolve_config("mnist-mlp", overrides=sets), tmp_path / "r")
    latest = run.dir / "checkpoints" / "step-0000008.pt"
    latest.write_bytes(latest.read_bytes()[:1000])                 # torn by a crash
    gan = ganforge.load(run.dir)
    assert gan.step == 4 and "step-0000008.pt" in capsys.readouterr().err
    resumed = ganforge.train(run.config.replace(**{"train.steps": 12}), run.dir, resume=True)
    err = capsys.readouterr().err
    assert "step-0000008.pt: it is truncated or corrupt; resuming from" in err and "step-0000004.pt" in err
    assert resumed.step == 12


def test_export_loads_and_samples_without_the_run_dir(tmp_path, capsys):
    import numpy as np

    import ganforge
    from ganforge.cli import main
    from ganforge.config import resolve_config
    run = ganforge.train(resolve_config("mnist-mlp-tuned", overrides={"data.limit": 256, "train.batch_size": 32,
                                                                       "log.progress": False, "train.steps": 3}),
                         tmp_path / "r")
    assert main(["export", str(run.dir), "--out", str(tmp_path / "G.safetensors")]) == 0
    exported = ganforge.load(tmp_path / "G.safetensors")
    original = ganforge.load(run.dir)
    assert torch.equal(exported.sample(6, seed=2), original.sample(6, seed=2))   # EMA weights, same config
    assert exported.step == 3 and exported.config == original.config
    import shutil
    shutil.rmtree(run.dir)
    assert main(["sample", str(tmp_path / "G.safetensors"), "--n", "4", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (4, 1, 28, 28)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    assert main(["sample", str(bad), "--out", str(tmp_path / "t.png")]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err
