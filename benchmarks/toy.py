"""Quality of the toy presets: each trained for its own budget on several seeds; prints a Markdown table.

    python benchmarks/toy.py                          # all toy presets, 5 seeds, 2 runs at a time
    python benchmarks/toy.py --presets ring-8 --seeds 2
    python benchmarks/toy.py --presets grid-25 --set r1=1.0   # a variant, same seeds
    python benchmarks/toy.py --presets grid-25 --jobs 1 --threads 2   # one run at a time on both cores

Each run uses one thread by default (these nets are tiny, and two runs share the 2 cores better than one
run with two threads); `--jobs 1 --threads 2` times each run as a user's `ganforge train --preset P` on
a 2-core machine. Seconds are each run's own training time, as the run reports it.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rundirs import run_dir_name  # noqa: E402

TOY_PRESETS = ["gaussian-1d", "gaussian-1d-mlp", "ring-8", "grid-25"]

_ONE = r"""
import json, sys, torch
torch.set_num_threads(int(sys.argv[5]))
import ganforge
preset, seed, out, sets = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
cfg = ganforge.resolve_config(preset, overrides={**sets, "seed": seed, "log.progress": False})
run = ganforge.train(cfg, out)
print(json.dumps({"seconds": run.elapsed, "step": run.step, **run.final_metrics}))
"""


def _one(preset: str, seed: int, root: Path, sets: dict, threads: int = 1) -> dict:
    run_dir = root / run_dir_name(preset, (f"{k}={v}" for k, v in sets.items()), seed)
    p = subprocess.run([sys.executable, "-c", _ONE, preset, str(seed), str(run_dir), json.dumps(sets), str(threads)],
                       capture_output=True, text=True, check=True)
    return {"preset": preset, "seed": seed, **json.loads(p.stdout.strip().splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=TOY_PRESETS)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--keep", help="keep the run dirs under this folder (default: a temporary one)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every run, as in `ganforge train --set`")
    args = ap.parse_args()
    from ganforge.config import parse_set

    sets = parse_set(args.sets)
    threads = f"{args.threads} thread{'s' if args.threads > 1 else ''} per run"
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, torch {torch.__version__}, {threads}, "
          f"{args.jobs} runs at a time" + (f", --set {' '.join(args.sets)}" if args.sets else "") + "\n")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        d = Path(args.keep or tmp)
        jobs = [pool.submit(_one, p, s, d, sets, args.threads) for p in args.presets for s in range(args.seeds)]
        rows = [j.result() for j in jobs]
    print("| preset | seed | steps | W1 | KS | mean | std | modes covered | high-quality % | KL(modes) | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    f = lambda r, k, fmt: format(r[k], fmt) if k in r else ""
    for r in rows:
        modes = f"{r['modes_covered']}/{r['modes_total']}" if "modes_covered" in r else ""
        hq = f"{100 * r['hq_fraction']:.1f}" if "hq_fraction" in r else ""
        print(f"| {r['preset']} | {r['seed']} | {r['step']} | {f(r, 'w1', '.4f')} | {f(r, 'ks', '.4f')} | "
              f"{f(r, 'mean', '.3f')} | {f(r, 'std', '.3f')} | {modes} | {hq} | {f(r, 'kl_modes', '.3f')} | "
              f"{r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
