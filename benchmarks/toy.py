"""Quality of the toy presets: each trained for its own budget on several seeds; prints a Markdown table.

    python -m benchmarks.toy                          # all toy presets, 5 seeds, 2 runs at a time
    python -m benchmarks.toy --presets ring-8 --seeds 2
    python -m benchmarks.toy --presets grid-25 --set r1=1.0   # a variant, same seeds
    python -m benchmarks.toy --presets grid-25 --jobs 1 --threads 2   # one run at a time on both cores
    python -m benchmarks.toy --presets ring-8 grid-25 --max-seconds 40 120 --seeds 3 --jobs 1 --threads 2
                                                      # short budgets, as a user's --max-seconds
    python -m benchmarks.toy --presets ring-8 --max-seconds 40 --losses all --seeds 3 --jobs 1 --threads 2

Each run uses one thread by default (these nets are tiny, and two runs share the 2 cores better than one
run with two threads); `--jobs 1 --threads 2` times each run as a user's `ganforge train --preset P` on
a 2-core machine. Seconds are each run's own training time, as the run reports it.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import harness

TOY_PRESETS = ["gaussian-1d", "gaussian-1d-mlp", "ring-8", "grid-25"]

NAME = "toy"


def _one(preset: str, seed: int, root: Path, sets: list, threads: int = 1, max_seconds=None, loss=None) -> dict:
    sets = [*sets, *([f"loss={loss}"] if loss else [])]
    run_dir = root / harness.run_dir_name(preset, sets, max_seconds or "own", seed)
    run, _ = harness.train(preset, run_dir, sets, seed, threads=threads, max_seconds=max_seconds)
    return {"preset": preset, "seed": seed, "seconds": run.elapsed, "step": run.step,
            **({"max_seconds": max_seconds} if max_seconds else {}), **({"loss": loss} if loss else {}),
            **harness.final_metrics(run)}


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--presets", nargs="+", default=TOY_PRESETS)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--keep", help="keep the run dirs under this folder (default: a temporary one)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every run, as in `ganforge train --set`")
    ap.add_argument("--max-seconds", nargs="+", type=float, default=[None],
                    help="time budgets (as `ganforge train --max-seconds`), each a row; default: the preset's own")
    ap.add_argument("--losses", nargs="+", default=[None], help="each loss a row ('all': every loss)")
    args = ap.parse_args()
    if args.losses == ["all"]:
        from ganforge.losses import LOSSES
        args.losses = list(LOSSES)
    threads = f"{args.threads} thread{'s' if args.threads > 1 else ''} per run"
    print(harness.header(f"{threads}, {args.jobs} runs at a time"
                         + (f", --set {' '.join(args.sets)}" if args.sets else "")) + "\n")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        d = Path(args.keep or tmp)
        jobs = [pool.submit(_one, p, s, d, args.sets, args.threads, t, loss) for p in args.presets
                for t in args.max_seconds for loss in args.losses for s in range(args.seeds)]
        rows = [j.result() for j in jobs]
    for r in rows:
        harness.record(NAME, {**r, "sets": args.sets, "threads_per_run": args.threads, "jobs": args.jobs}, args)
    print("| preset | loss | budget (s) | seed | steps | W1 | KS | mean | std | modes covered | high-quality % | "
          "KL(modes) | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    f = lambda r, k, fmt: format(r[k], fmt) if k in r else ""
    for r in rows:
        modes = f"{r['modes_covered']}/{r['modes_total']}" if "modes_covered" in r else ""
        hq = f"{100 * r['hq_fraction']:.1f}" if "hq_fraction" in r else ""
        print(f"| {r['preset']} | {r.get('loss', '')} | {r.get('max_seconds', 'own')} | {r['seed']} | "
              f"{r['step']} | {f(r, 'w1', '.4f')} | {f(r, 'ks', '.4f')} | "
              f"{f(r, 'mean', '.3f')} | {f(r, 'std', '.3f')} | {modes} | {hq} | {f(r, 'kl_modes', '.3f')} | "
              f"{r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
