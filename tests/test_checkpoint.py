import os
import pickle

import pytest
import torch

from ganforge.checkpoint import (checkpoint_files, latest_checkpoint, load_checkpoint, save_checkpoint,
                                 write_atomic)
from ganforge.errors import GanforgeError


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

    with pytest.raises(GanforgeError, match="No space left on device; the previous checkpoint is intact"):
        write_atomic(target, boom)
    assert target.read_bytes() == b"good" and os.listdir(tmp_path) == ["f.bin"]
