"""The standard Inception FID of runs on mnist5k, beside the real-vs-real floor, and its cost on this CPU.

    python -m benchmarks.inception_fid RUN [RUN ...] [--n 2500]

The floor is `ganforge eval --real-baseline --data mnist5k --features inception --n N`: N real digits against
N others (two seeded halves, eval.seed 1234). Each run is scored with the same protocol against the same
reference half: N samples of the generator `ganforge sample RUN` would use, drawn with the evaluation's
seeded noise (and uniform classes for conditional runs). The reference half's features are cached on disk
(`$GANFORGE_CACHE/features/`), so the floor and the runs share one embedding of it. Prints seconds per
1,000 images embedded (2 threads here: the Inception network at 299 px is the whole cost).
"""

from __future__ import annotations

import time
from pathlib import Path

import ganforge
from ganforge.config import DataConfig, EvalConfig
from ganforge.data import load_dataset
from ganforge.metrics import evaluate, reference

from . import harness


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--n", type=int, default=2500, help="images per side (default 2,500: mnist5k's half)")
    ap.add_argument("--floor", action="store_true", help="also compute the floor (embeds the other half)")
    args = ap.parse_args()
    ev = EvalConfig(features="inception")
    data = load_dataset(DataConfig(), verbose=False)
    a, b = harness.halves(args.n, seed=ev.seed, total=len(data))
    t0 = time.perf_counter()
    ref = reference(data, ev, x=data.take(a), y=data.y[a])
    print(f"reference half: {args.n} images ({time.perf_counter() - t0:.0f} s; cached when 0)", flush=True)
    rows = []
    if args.floor:
        t0 = time.perf_counter()
        found = evaluate(data.take(b), ref, ["fid", "kid"])
        secs = time.perf_counter() - t0
        rows.append({"what": "real vs real (floor)", "fid": found["fid"], "s_per_1000": 1000 * secs / args.n})
        print(rows[-1], flush=True)
    for run in args.runs:
        gan = ganforge.load(run)
        x = gan.generate(gan.noise(args.n, seed=ev.seed), gan.labels(args.n, None, ev.seed))
        t0 = time.perf_counter()
        found = evaluate(x, ref, ["fid", "kid"])
        secs = time.perf_counter() - t0
        rows.append({"what": str(run), "checkpoint": gan.source.name, "step": gan.step, "fid": found["fid"],
                     "kid": found["kid"], "s_per_1000": 1000 * secs / args.n})
        print(rows[-1], flush=True)
    for r in rows:
        harness.record("inception_fid", {"n": args.n, **r}, args)


if __name__ == "__main__":
    main()
