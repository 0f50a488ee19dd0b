"""Training speed of each preset that trains on the embedded mnist5k on this machine, and the wall time of `ganforge train` with no arguments.

    python -m benchmarks.presets            # speed table (about 1 minute on 2 cores)
    python -m benchmarks.presets --default  # also time the default preset's full budget (about 2 minutes)

Prints a Markdown table; copy it into benchmarks/README.md with the date and machine.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ganforge
from ganforge.config import DEFAULT_PRESET, load_preset

from . import harness


def _speed(preset: str, steps: int, repeats: int) -> tuple:
    """Median and spread of img/s over `repeats` runs of `steps` steps (the first run doubles as warm-up)."""
    rates = []
    for r in range(repeats + 1):
        with tempfile.TemporaryDirectory() as d:
            cfg = ganforge.resolve_config(preset, overrides={"train.steps": steps, "log.progress": False,
                                                             "log.every": steps, "log.sample_every": "100000 steps",
                                                             "log.checkpoint_every": "100000 steps", "eval.every": "off"})
            run = ganforge.train(cfg, Path(d) / "run")
            if r > 0:  # the first run warms up caches and thread pools
                rates.append(run.metrics[-1]["img_per_s"])
    return statistics.median(rates), min(rates), max(rates), cfg


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--default", action="store_true", help="also time `ganforge train` with no arguments")
    args = p.parse_args()
    print(harness.header() + "\n")
    print("| preset | batch | steps/s | img/s (median) | img/s (min-max) | seconds for the preset's budget |")
    print("|---|---|---|---|---|---|")
    mnist = [p for p in ganforge.preset_names() if load_preset(p).get("data", {}).get("name", "mnist5k") == "mnist5k"]
    for preset in mnist:  # the image presets that train on the embedded data (dcgan needs a folder)
        med, lo, hi, _ = _speed(preset, args.steps, args.repeats)
        cfg = ganforge.resolve_config(preset)  # the preset's own budget
        B = cfg.train.batch_size
        budget_steps = (cfg.train.epochs * (5000 // B)) // cfg.d_steps
        print(f"| {preset} | {B} | {med / B / cfg.d_steps:.1f} | {med:.0f} | {lo:.0f}-{hi:.0f} | "
              f"{budget_steps * B * cfg.d_steps / med:.0f} (estimated, {cfg.train.epochs} epochs) |")
        harness.record("presets", {"preset": preset, "batch": B, "img_per_s": med, "img_per_s_min": lo,
                                   "img_per_s_max": hi, "steps": args.steps, "repeats": args.repeats}, args)
    if args.default:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.monotonic()
            subprocess.run([sys.executable, "-m", "ganforge", "train", "-q"], cwd=d, check=True,
                           stdout=subprocess.DEVNULL)
            print(f"\n`ganforge train` with no arguments ({DEFAULT_PRESET}): {time.monotonic() - t0:.1f} s wall, "
                  f"process start to exit")


if __name__ == "__main__":
    main()
