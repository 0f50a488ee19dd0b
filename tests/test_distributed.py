"""Multi-process training with DistributedDataParallel on CPU (gloo): 2 processes, a few steps."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

import ganforge
from ganforge.config import resolve_config
from ganforge.errors import GanforgeError


pytestmark = [pytest.mark.slow, pytest.mark.skipif(not tdist.is_available() or not tdist.is_gloo_available(),
                                reason="this PyTorch build has no gloo backend")]  # slow: torchrun and gloo process groups

# mnist-dcgan, tiny: 128 digits at 32 px, narrow nets, batch 8 per process (16 per step), unconditional
# (the preset is class-conditional on labelled data; the golden case ddp-2 runs it so under two processes)
TINY = {"data.limit": 128, "train.batch_size": 8, "train.epochs": None, "model.g_features": 8,
        "model.d_features": 8, "log.every": 1, "log.progress": False, "log.sample_every": "2 steps",
        "log.checkpoint_every": "2 steps", "conditional": False}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, cfg, run_dir, resume, out):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                       "RANK": str(rank), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    final = {}

    def keep(step, G, D):
        final["G"] = {k: v.clone() for k, v in G.state_dict().items()}
        final["D"] = {k: v.clone() for k, v in D.state_dict().items()}

    run = ganforge.train(cfg, run_dir, resume=resume, on_step=keep)
    torch.save({"G": final["G"], "D": final["D"], "step": run.step}, f"{out}/rank{rank}.pt")


def _spawn(cfg, run_dir, tmp_path, resume=False, world=2):
    mp.spawn(_worker, args=(world, _free_port(), cfg, str(run_dir), resume, str(tmp_path)), nprocs=world)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]


def _cfg(**extra):
    return resolve_config("mnist-dcgan", overrides={**TINY, **extra})


def test_two_processes_train_in_step_and_write_one_set_of_files(tmp_path):
    ranks = _spawn(_cfg(**{"train.steps": 4}), tmp_path / "run", tmp_path)
    assert [r["step"] for r in ranks] == [4, 4]
    params = [n for n, _ in ranks[0]["G"].items() if "running" not in n and "num_batches" not in n]
    for name in params:  # DDP averaged the gradients: the same weights on both ranks
        assert torch.equal(ranks[0]["G"][name], ranks[1]["G"][name]), name
    for name in ranks[0]["D"]:
        if "running" not in name and "num_batches" not in name:
            assert torch.equal(ranks[0]["D"][name], ranks[1]["D"][name]), name
    # BatchNorm statistics stay per process (sync_bn off): each rank normalised its own shard
    assert not torch.equal(ranks[0]["G"]["net.1.running_mean"], ranks[1]["G"]["net.1.running_mean"])
    d = tmp_path / "run"
    rows = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4]   # once each, by rank 0
    assert sorted(p.name for p in (d / "samples").glob("*.png")) == ["real.png", "step-0000002.png",
                                                                      "step-0000004.png"]
    assert sorted(p.name for p in (d / "checkpoints").glob("*.pt")) == ["best.pt", "step-0000000.pt",
                                                                       "step-0000002.pt", "step-0000004.pt"]
    # the in-training evaluation ran on rank 0 at each checkpoint
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [2, 4]
    saved = torch.load(d / "checkpoints" / "step-0000004.pt", weights_only=False)
    assert saved["world_size"] == 2 and len(saved["rng_per_rank"]) == 2
    assert all(torch.equal(saved["G"][k], v) for k, v in ranks[0]["G"].items())  # rank 0's state is saved
    # the effective batch is per-process × world: 128 digits / 16 = 8 steps per epoch
    assert rows[-1]["epoch"] == pytest.approx(4 / 8)


def test_distributed_resume_continues_exactly(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole = _spawn(_cfg(**{"train.steps": 4}), tmp_path / "whole", tmp_path / "a")
    _spawn(_cfg(**{"train.steps": 2}), tmp_path / "split", tmp_path / "b")
    resumed = _spawn(_cfg(**{"train.steps": 4}), tmp_path / "split", tmp_path / "b", resume=True)
    for name, value in whole[0]["G"].items():
        assert torch.equal(value, resumed[0]["G"][name]), name
    # a run trained by 2 processes resumes only with 2
    with pytest.raises(GanforgeError, match="trained by 2 process"):
        ganforge.train(_cfg(**{"train.steps": 6}), tmp_path / "split", resume=True)


def test_gradient_penalties_work_under_ddp(tmp_path):
    cfg = _cfg(**{"train.steps": 2, "loss": "wgan-gp", "model.d_norm": "none", "r1": 1.0, "d_steps": 2})
    ranks = _spawn(cfg, tmp_path / "run", tmp_path)
    for name, value in ranks[0]["D"].items():
        assert torch.isfinite(value).all() and torch.equal(value, ranks[1]["D"][name]), name


def test_torchrun_cli(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(_free_port()),
           "-m", "ganforge", "train", "--preset", "mnist-dcgan", "--steps", "2", "-q", "--run-dir",
           str(tmp_path / "run")] + [a for k, v in TINY.items() if k != "train.epochs" for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.count("done: step 2") == 1          # rank 0 speaks for the run
    assert (tmp_path / "run" / "checkpoints" / "step-0000002.pt").is_file()


# ------------------------------------------------------------------ torchrun: elastic restarts, two launchers

# dist_timeout 60: a collective that waits on a dead or stuck peer fails the round well inside these tests' own
# 300 s limits (torchrun then restarts it, or the test fails) instead of hanging.
_RUN = ["-m", "ganforge", "train", "--preset", "mnist-dcgan", "-q", "--steps", "40"] + \
    [a for k, v in {**TINY, "log.checkpoint_every": "4 steps", "log.sample_every": "20 steps", "log.every": 4,
                    "dist_timeout": 60}.items() if k != "train.epochs" for a in ("--set", f"{k}={v}")]


def _torchrun(*launcher, run_dir):
    return [sys.executable, "-m", "torch.distributed.run", *launcher, *_RUN, "--run-dir", str(run_dir)]


def _children(pid):
    """The pids whose parent is ``pid`` (torchrun's workers)."""
    out = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(stat))
    return out


def _rank_of(pid):
    env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return next((int(e.split(b"=", 1)[1]) for e in env if e.startswith(b"RANK=")), None)


def _final(run_dir):
    return torch.load(run_dir / "checkpoints" / "step-0000040.pt", weights_only=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads worker pids from /proc")
def test_torchrun_restarts_a_killed_group_which_resumes_and_ends_as_an_uninterrupted_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = subprocess.run(_torchrun("--nproc_per_node=2", "--master_port", str(_free_port()), run_dir=tmp_path / "a"),
                           capture_output=True, text=True, env=env, timeout=300)
    assert whole.returncode == 0, whole.stderr[-2000:]
    # the c10d rendezvous (torchrun's elastic setup): each restart round rendezvouses afresh
    p = subprocess.Popen(_torchrun("--nproc_per_node=2", "--max-restarts=2", "--rdzv-backend=c10d",
                                   f"--rdzv-endpoint=127.0.0.1:{_free_port()}", run_dir=tmp_path / "b"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    latest, killed = tmp_path / "b" / "checkpoints" / "latest", None
    try:
        deadline = time.time() + 240
        while killed is None and p.poll() is None and time.time() < deadline:
            if latest.exists() and latest.read_text().strip() >= "step-0000008.pt":
                worker = next((w for w in _children(p.pid) if _rank_of(w) == 1), None)
                if worker is not None:
                    os.kill(worker, signal.SIGKILL)
                    killed = latest.read_text().strip()
            time.sleep(0.02)
        out, err = p.communicate(timeout=300)
    finally:  # never leave a launcher and its workers behind
        for pid in [*_children(p.pid), p.pid] if p.poll() is None else []:
            os.kill(pid, signal.SIGKILL)
    assert killed is not None and killed < "step-0000040.pt", "the run ended before a worker could be killed"
    assert p.returncode == 0, err[-3000:]
    # one restart: each round's process group has its own keys in torchrun's shared store (dist.py), so the
    # restarted round never reads the killed round's gloo addresses (which made it fail or hang before)
    assert "torchrun restart 1: resuming" in err and "torchrun restart 2" not in err, err[-3000:]
    a, b = _final(tmp_path / "a"), _final(tmp_path / "b")
    for net in ("G", "D"):
        for name, value in a[net].items():
            assert torch.equal(value, b[net][name]), (net, name)
    steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
             if json.loads(l)["kind"] == "train"]
    assert steps == list(range(4, 41, 4))  # every logged step once, despite the restart


def test_two_launchers_with_nnodes_2_on_one_host_train_as_one_world(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = str(_free_port())
    nodes = [subprocess.Popen(_torchrun("--nnodes=2", f"--node_rank={r}", "--nproc_per_node=1", "--master_addr=127.0.0.1",
                                        f"--master_port={port}", run_dir=tmp_path / "n"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for r in (0, 1)]
    try:
        results = [n.communicate(timeout=300) for n in nodes]
    finally:  # never leave launchers and their workers behind
        for n in nodes:
            for pid in [*_children(n.pid), n.pid] if n.poll() is None else []:
                os.kill(pid, signal.SIGKILL)
    assert [n.returncode for n in nodes] == [0, 0], [e[-2000:] for _, e in results]
    assert results[0][0].count("done: step 40") == 1 and "done" not in results[1][0]  # rank 0 speaks
    saved = _final(tmp_path / "n")
    assert saved["world_size"] == 2 and len(saved["rng_per_rank"]) == 2


def _stall_worker(rank, world, port, cfg, run_dir, out, stall_at, stall_s):
    """Train; rank 1 sleeps ``stall_s`` seconds after step ``stall_at``. Each rank that stops with a
    CollectiveTimeout writes its seconds since the stall began and its line to ``out``, then exits 1."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                       "RANK": str(rank), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    from ganforge.errors import CollectiveTimeout
    began = []

    def stall(step, G, D):
        if step == stall_at:
            began.append(time.monotonic())
            if rank == 1:
                time.sleep(stall_s)
    try:
        ganforge.train(cfg, run_dir, on_step=stall)
    except CollectiveTimeout as e:
        with open(f"{out}/stopped{rank}.txt", "w") as f:
            f.write(f"{time.monotonic() - began[0]:.1f}\n{e}\n")
        os._exit(1)


def test_a_stalled_rank_makes_the_other_stop_within_the_timeout_with_one_line(tmp_path):
    """Rank 1 stalls after step 6 for 15 s, past a 4 s dist_timeout: rank 0 stops waiting within the timeout
    + 30 s with one line naming the collective, the step and rank 1; the last checkpoint loads, and a new
    group resumes from it to the end."""
    cfg = _cfg(**{"train.steps": 16, "log.every": 2, "log.checkpoint_every": "4 steps", "log.sample_every": "8 steps",
                  "eval.every": "off", "dist_timeout": 4})
    with pytest.raises(Exception):  # mp.spawn: rank 0 exited 1
        mp.spawn(_stall_worker, args=(2, _free_port(), cfg, str(tmp_path / "r"), str(tmp_path), 6, 15.0), nprocs=2)
    seconds, line = (tmp_path / "stopped0.txt").read_text().split("\n", 1)
    assert float(seconds) < 4 + 30, seconds
    assert re.search(r"rank 0 waited in .+ at step \d+ for rank\(s\) 1, which never arrived, and gave up after \d+ s "
                     r"\(dist_timeout 4 s\)", line), line
    assert ganforge.load(tmp_path / "r").step == 4  # the checkpoint before the stall is intact
    _spawn(_cfg(**{"train.steps": 16, "log.every": 2, "log.checkpoint_every": "4 steps",
                   "log.sample_every": "8 steps", "eval.every": "off"}), tmp_path / "r", tmp_path, resume=True)
    steps = [json.loads(l)["step"] for l in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
             if json.loads(l)["kind"] == "train"]
    assert steps == list(range(2, 17, 2))  # every logged step once: the resumed group redid steps 5-6
