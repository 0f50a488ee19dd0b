"""Fault tests on small budgets: a quick soak through every fault kind, memory over a longer CPU run."""

import sys
from pathlib import Path

import torch

import ganforge
from ganforge.config import resolve_config


def test_quick_soak_every_fault_kind_then_bit_identical_to_an_uninterrupted_run(tmp_path):
    """benchmarks/soak.py on a small budget: six faults, one of each kind (SIGKILL at random, inside a
    checkpoint write and inside a metrics append; SIGTERM; a second trainer on the live run; a full disk),
    each followed by --resume."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from soak import KINDS, soak

    r = soak(faults=len(KINDS), steps=300, every=25, seed=0, root=tmp_path, say=lambda *a: None,
             sets=["eval.every=off"])  # no feature classifier to train in every process
    assert sorted(e["kind"] for e in r["events"]) == sorted(KINDS)
    assert all(e["ok"] for e in r["events"]), [e for e in r["events"] if not e["ok"]]
    assert r["weights_identical"] and r["train_lines_identical"] and r["one_line_per_step"]
    assert r["nothing_lost"] and r["extras_only_at_graceful_stops"]
    assert r["bytes_lost"] == 0 and max(r["redone"]) <= 25 + 25  # at most a checkpoint interval (+ the log lag)


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
