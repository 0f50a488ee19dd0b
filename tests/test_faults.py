"""Faults a long run meets: a second trainer on a live run, a failing disk, torn and odd files."""

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import ganforge
from ganforge.checkpoint import latest_checkpoint, load_checkpoint
from ganforge.cli import main
from ganforge.config import resolve_config
from ganforge.errors import RunLockedError, StorageError
from ganforge.lock import RunLock

SETS = {"data.limit": 256, "train.batch_size": 32, "log.progress": False, "log.every": 2,
        "log.checkpoint_every": "4 steps", "log.sample_every": "4 steps", "eval.every": "off"}
CLI_SETS = [a for k, v in SETS.items() if k != "log.progress" for a in ("--set", f"{k}={v}")] + ["-q"]


def _cfg(steps):
    return resolve_config("mnist-mlp", overrides={**SETS, "train.steps": steps})


def _snapshot(run_dir):
    """Every file of a run dir with its bytes' hash (the lock file's holder line left out)."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"}


def _weights(run_dir, step):
    return load_checkpoint(run_dir / "checkpoints" / f"step-{step:07d}.pt")["G"]


def _cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ one writer per run dir

def test_the_lock_names_its_holder_and_frees_on_release(tmp_path):
    lock = RunLock.acquire(tmp_path)
    with pytest.raises(RunLockedError, match=rf"pid {os.getpid()} on .*kill {os.getpid()}"):
        RunLock.acquire(tmp_path)
    lock.release()
    RunLock.acquire(tmp_path).release()


@pytest.mark.slow
def test_a_second_trainer_on_a_live_run_exits_2_and_changes_nothing(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "ganforge", "train", "--preset", "mnist-mlp", "--run-dir", str(run),
                              "--steps", "100000", *CLI_SETS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run / "checkpoints" / "latest").exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.1)
        assert first.poll() is None, first.communicate()[1]
        first.send_signal(signal.SIGSTOP)  # hold it still, so its own writes do not change the run meanwhile
        before = _snapshot(run)
        for extra in (["--resume"], []):
            second = subprocess.run([sys.executable, "-m", "ganforge", "train", "--preset", "mnist-mlp", "--run-dir",
                                     str(run), "--steps", "8", *CLI_SETS, *extra], capture_output=True, text=True)
            assert second.returncode == 2, second.stderr
            assert second.stderr.count("\n") == 1 and f"pid {first.pid}" in second.stderr
            assert "is in use" in second.stderr and f"kill {first.pid}" in second.stderr
        assert _snapshot(run) == before
    finally:
        first.send_signal(signal.SIGKILL)  # kill -9: the kernel drops the lock with the process
        first.wait()
    resumed = subprocess.run([sys.executable, "-m", "ganforge", "train", "--run-dir", str(run), "--resume",
                              "--set", "train.max_seconds=1", "-q"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr


# ------------------------------------------------------------------ a failing disk

def _failing_save(monkeypatch, when, error=errno.ENOSPC):
    """torch.save raises ``error`` for files whose temp name contains ``when`` (after writing a part)."""
    real = torch.save

    def save(obj, f, *a, **k):
        if when in getattr(f, "name", ""):
            f.write(b"partial")
            raise OSError(error, os.strerror(error))
        return real(obj, f, *a, **k)
    monkeypatch.setattr(torch, "save", save)


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS, errno.EIO])
def test_a_failed_checkpoint_write_stops_cleanly_and_resume_continues_exactly(tmp_path, monkeypatch, error):
    whole = ganforge.train(_cfg(12), tmp_path / "whole")
    _failing_save(monkeypatch, "step-0000008", error)
    with pytest.raises(StorageError, match=rf"step-0000008.pt: .*\({errno.errorcode[error]}\); nothing was replaced"):
        ganforge.train(_cfg(12), tmp_path / "r")
    ckpts = tmp_path / "r" / "checkpoints"
    assert latest_checkpoint(ckpts).name == "step-0000004.pt" and load_checkpoint(ckpts / "step-0000004.pt")
    assert not list(ckpts.glob(".*.tmp"))
    monkeypatch.undo()
    resumed = ganforge.train(_cfg(12), tmp_path / "r", resume=True)
    assert resumed.step == 12
    for name, value in _weights(whole.dir, 12).items():
        assert torch.equal(value, _weights(resumed.dir, 12)[name]), name
    assert [m["step"] for m in resumed.metrics if m["kind"] == "train"] == list(range(2, 13, 2))


def test_a_failed_write_is_one_line_and_exit_1_from_the_cli(tmp_path, monkeypatch, capsys):
    _failing_save(monkeypatch, "step-0000004")
    code, _, err = _cli(["train", "--preset", "mnist-mlp", "--run-dir", str(tmp_path / "r"), "--steps", "8",
                         *CLI_SETS], capsys)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("ganforge: error: cannot write ") and "(ENOSPC)" in err


def test_a_failed_metrics_append_stops_cleanly(tmp_path, monkeypatch):
    from ganforge.training import runlog

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            if '"step": 6' in text:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(text)

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(runlog, "open", lambda *a, **k: Full(open(*a, **k)), raising=False)
    with pytest.raises(StorageError, match=r"cannot append to .*metrics.jsonl: No space left on device"):
        ganforge.train(_cfg(12), tmp_path / "r")
    monkeypatch.undo()
    run = ganforge.train(_cfg(12), tmp_path / "r", resume=True)
    assert [m["step"] for m in run.metrics if m["kind"] == "train"] == list(range(2, 13, 2))


# ------------------------------------------------------------------ torn and odd files

def test_a_torn_metrics_line_is_dropped_with_one_warning_everywhere(tmp_path, capsys):
    run = ganforge.train(_cfg(8), tmp_path / "r")
    with open(run.dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 10, "kind": "tra')  # a kill in the middle of an append
    capsys.readouterr()
    lines = ganforge.Run(run.dir).metrics
    assert [m["step"] for m in lines if m["kind"] == "train"] == [2, 4, 6, 8]
    assert ganforge.Run(run.dir).metrics_df["step"].max() == 8
    err = capsys.readouterr().err
    assert err.count("is torn") == 1
    code, _, _ = _cli(["plot", str(run.dir)], capsys)
    assert code == 0
    code, _, _ = _cli(["report", str(run.dir), "--no-floor"], capsys)
    assert code == 0
    resumed = ganforge.train(_cfg(12), run.dir, resume=True)
    assert "dropped a torn line" in capsys.readouterr().err
    steps = [json.loads(l)["step"] for l in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10, 12] and resumed.step == 12


def _edit_latest(run_dir, change):
    path = run_dir / "checkpoints" / "step-0000008.pt"
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


@pytest.mark.parametrize("damage, message", [
    ("yaml", "is not valid YAML"),
    ("version", "written by a newer ganforge"),
    ("shape", "does not fit this model"),
])
def test_odd_run_files_refuse_resume_in_one_line(tmp_path, capsys, damage, message):
    run = ganforge.train(_cfg(8), tmp_path / "r")
    if damage == "yaml":
        (run.dir / "config.yaml").write_text("loss: [nonsaturating\n")
    elif damage == "version":
        _edit_latest(run.dir, lambda s: s.update(version=99))
    else:
        _edit_latest(run.dir, lambda s: s["G"].update({k: v[:1] for k, v in list(s["G"].items())[:1]}))
    before = _snapshot(run.dir)
    capsys.readouterr()
    code, _, err = _cli(["train", "--run-dir", str(run.dir), "--resume", "--steps", "12", "-q"], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert _snapshot(run.dir) == before


def test_a_step_error_that_is_no_timeout_goes_up_unchanged_and_a_timeout_becomes_one_line():
    """World.bounded guards the step of a multi-process run: a CUDA OOM or shape error inside it is the
    step's own error, not a lost peer; only a wait as long as dist_timeout becomes CollectiveTimeout."""
    import time

    from ganforge.dist import World
    from ganforge.errors import CollectiveTimeout

    world = World(rank=0, size=2, timeout=600.0)
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        with world.bounded("the step"):
            raise RuntimeError("CUDA out of memory")
    assert not world.broken
    world = World(rank=1, size=2, timeout=0.05, step=7)
    with pytest.raises(CollectiveTimeout, match=r"rank 1 waited in the step at step 7 for the other ranks, which never "
                                                r"arrived, and gave up after 0 s \(dist_timeout 0.05 s\)"):
        with world.bounded("the step"):
            time.sleep(0.06)
            raise RuntimeError("Timed out waiting 50ms for recv operation to complete")
    assert world.broken
