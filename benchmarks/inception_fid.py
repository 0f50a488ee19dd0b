"""The standard Inception FID of runs on mnist5k, beside the real-vs-real floor, and its cost on this CPU.

    python -m benchmarks.inception_fid RUN [RUN ...] [--n 2500]

The floor is `ganforge eval --real-baseline --data mnist5k --features inception --n N`: N real digits against
N others (two seeded halves, eval.seed 1234). Each run is scored with the same protocol against the same
reference half: N samples of the generator `ganforge sample RUN` would use, drawn with the evaluation's
seeded noise (and uniform classes for conditional runs). The reference half's features are cached on disk
(`$GANFORGE_CACHE/features/`), so the floor and the runs share one embedding of it. Prints seconds per
1,000 images embedded (2 threads here: the Inception network at 299 px is the whole cost).

    python -m benchmarks.inception_fid --speed [--images 100] [--repeats 3]

`--speed` times the standard FID network's ways to run on this CPU on the same 299 px inputs (random 32 px
RGB images through the FID input pipeline), in alternating rounds so drift hits all alike: torch as
ganforge ran it before (batch 50, contiguous), batch 100, channels-last, `torch.jit.freeze` +
`optimize_for_inference`, and ONNX Runtime on the exported graph (ganforge's choice when onnxruntime is
installed). Each row: images/s (median of the rounds), its ratio to the first, and the largest difference
of its features to the first's, relative to the largest feature.
"""

from __future__ import annotations

import time
from pathlib import Path

import ganforge
from ganforge.config import DataConfig, EvalConfig
from ganforge.data import load_dataset
from ganforge.metrics import evaluate, reference

from . import harness


def speed(images: int, repeats: int) -> list:
    import statistics
    import warnings

    import torch

    from ganforge.metrics.features import fid_inception, onnx_runtime

    ext = fid_inception()
    net = ext.net.net.eval()
    x = torch.rand(images, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    v = torch.nn.functional.interpolate(((x + 1) * 127.5).round(), size=(299, 299), mode="bilinear",
                                        align_corners=False)
    inp = (v / 255 * 1.9921875 - 1).clamp(-1, 0.9921875)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(net) if not isinstance(
            net, torch.jit.ScriptModule) else net))
    session, runtime = onnx_runtime(net, "speed-check")
    ways = {"torch, batch 50 (before)": (lambda b: net(b), 50, False),
            "torch, batch 100": (lambda b: net(b), 100, False),
            "torch, channels-last": (lambda b: net(b), 50, True),
            "torch.jit.freeze + optimize_for_inference, channels-last": (lambda b: frozen(b), 50, True)}
    if session is not None:
        ways[f"ONNX Runtime ({runtime.split(' (')[0]})"] = (
            lambda b: torch.from_numpy(session.run(None, {"x": b.numpy()})[0]), 50, False)
    times = {k: [] for k in ways}
    feats = {}
    with torch.no_grad():
        for _ in range(repeats):
            for k, (fn, bs, cl) in ways.items():
                batches = [inp[i:i + bs].contiguous(memory_format=torch.channels_last) if cl else
                           inp[i:i + bs].contiguous() for i in range(0, images, bs)]
                fn(batches[0][:2])  # warm
                t0 = time.perf_counter()
                feats[k] = torch.cat([fn(b).reshape(b.shape[0], -1) for b in batches])
                times[k].append(time.perf_counter() - t0)
    first = next(iter(ways))
    rows = []
    for k in ways:
        ips = images / statistics.median(times[k])
        err = ((feats[k] - feats[first]).abs().max() / feats[first].abs().max()).item()
        rows.append({"what": k, "images_per_s": round(ips, 2), "images": images, "repeats": repeats,
                     "ratio": round(ips * statistics.median(times[first]) / images, 2), "max_rel_diff": err})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--speed", action="store_true", help="time the FID network's runtimes on this CPU and exit")
    ap.add_argument("--images", type=int, default=100, help="--speed: images per round")
    ap.add_argument("--repeats", type=int, default=3, help="--speed: alternating rounds")
    ap.add_argument("--n", type=int, default=2500, help="images per side (default 2,500: mnist5k's half)")
    ap.add_argument("--floor", action="store_true", help="also compute the floor (embeds the other half)")
    args = ap.parse_args()
    if args.speed:
        print(harness.header("FID network runtimes") + "\n", flush=True)
        for r in speed(args.images, args.repeats):
            harness.record("inception_fid", {"mode": "speed", **r}, args)
        return
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
