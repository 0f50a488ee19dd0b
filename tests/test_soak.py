"""Fault tests on small budgets: SIGKILL at random moments, memory over a longer CPU run."""

import json
import random
import signal
import subprocess
import sys
import time

import torch

import ganforge
from ganforge.checkpoint import checkpoint_files, load_checkpoint
from ganforge.config import resolve_config

# Runs the CLI with every torch.save made slow after the bytes are written (before fsync and rename),
# so that kills land inside checkpoint writes as well as between them.
_SLOW_CLI = """
import sys, time, torch
_save = torch.save
def slow_save(obj, f, *a, **k):
    _save(obj, f, *a, **k)
    f.flush()
    time.sleep(0.25)
torch.save = slow_save
from ganforge.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_at_random_moments_then_resume_completes(tmp_path):
    run_dir = tmp_path / "run"
    args = ["train", "--preset", "mnist-mlp", "--run-dir", str(run_dir), "--steps", "300", "-q",
            "--set", "data.limit=512", "--set", "train.batch_size=32", "--set", "log.every=5",
            "--set", "log.checkpoint_every=15 steps", "--set", "log.sample_every=50 steps"]
    rng = random.Random(0)
    kills = torn = 0
    for attempt in range(4):
        p = subprocess.Popen([sys.executable, "-c", _SLOW_CLI, *args, *(["--resume"] if attempt else [])],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while not (run_dir / "config.yaml").exists() and p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        if attempt < 3:  # at a random moment
            time.sleep(rng.uniform(0.2, 1.5))
        else:            # inside a checkpoint write: its temp file exists, the rename has not happened
            while not list((run_dir / "checkpoints").glob(".*.tmp")) and p.poll() is None \
                    and time.time() < deadline:
                time.sleep(0.01)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.communicate(timeout=60)
        torn += bool(list((run_dir / "checkpoints").glob(".*.tmp")))
    assert kills >= 3 and torn >= 1    # at least one kill landed inside a checkpoint write
    final = subprocess.run([sys.executable, "-m", "ganforge", *args, "--resume"], capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert "step 300 " in final.stdout
    files = checkpoint_files(run_dir / "checkpoints")
    assert files and files[-1].name == "step-0000300.pt"
    for f in files:
        assert load_checkpoint(f)["step"] == int(f.stem.split("-")[1])
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))
    steps = [json.loads(l)["step"] for l in (run_dir / "metrics.jsonl").read_text().splitlines()
             if json.loads(l)["kind"] == "train"]
    assert steps == list(range(5, 301, 5))    # every interval once, in order, despite the kills


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_memory_stays_flat_over_a_longer_run(tmp_path):
    rss = {}

    def measure(step, G, D):
        if step in (200, 1000):
            rss[step] = _rss_mb()

    cfg = resolve_config("mnist-mlp", overrides={"data.limit": 1024, "train.batch_size": 64, "train.steps": 1000,
                                                  "log.progress": False, "log.every": 10,
                                                  "log.sample_every": "100 steps", "log.checkpoint_every": "100 steps"})
    ganforge.train(cfg, tmp_path / "m", on_step=measure)
    assert rss[1000] - rss[200] < 25, rss    # MB; a leak of one batch per step would be ~200 MB
