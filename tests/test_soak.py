"""Fault tests on small budgets: a quick soak through every fault kind, memory over a longer CPU run."""

import pytest

import ganforge
from ganforge.config import resolve_config

pytestmark = pytest.mark.slow  # a 1,000-step run: `make test-fast` leaves it out


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
