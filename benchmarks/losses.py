"""Each loss, with its recommended settings, on the toy and MNIST presets at a fixed budget, 3 seeds.

    python benchmarks/losses.py                                  # everything (about 2 h 10 min on 2 cores)
    python benchmarks/losses.py --presets ring-8 --steps 2000    # a quick look
    python benchmarks/losses.py --losses hinge,wgan-gp --seeds 1

For every (preset, loss, seed) the preset trains for a fixed number of generator steps with `loss: LOSS`
and that loss's recommended settings (ganforge.losses.RECOMMENDED: RMSprop 5e-5 and 5 critic steps with
weight clipping for wgan; Adam 1e-4 (0, 0.9), 5 critic steps, no BatchNorm in the critic and λ=10 for
wgan-gp) put on top of the preset, so they win over the preset's optimiser; everything else is the
preset's (its stabilisers: EMA, minibatch-stats D, packs, R1 on grid-25, dropout in D, ...).

Toy presets are scored on 10,000 samples of G (the EMA where kept) with the fixed evaluation noise:
modes covered (a mode counts when it holds samples within 3σ) and the fraction of high-quality samples.
MNIST presets are scored like benchmarks/mnist_quality.py: 2,500 generated images against a fixed half of
mnist5k on the features of the domain classifier (LeNet trained on mnist5k) at the preset's image size,
with the real-vs-real floor at that size.

Each run is its own process with one thread; two run at a time (--jobs). Seconds are each run's own
training time as the run reports it (they include the other job's competition for the 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

import ganforge

LOSSES = ["minimax", "nonsaturating", "lsgan", "hinge", "wgan", "wgan-gp"]
PRESETS = ["ring-8", "grid-25", "mnist-mlp", "mnist-mlp-bn", "mnist-mlp-tuned", "mnist-dcgan"]
STEPS = {"ring-8": 5000, "grid-25": 5000, "mnist-mlp": 2000, "mnist-mlp-bn": 2000, "mnist-mlp-tuned": 2000,
         "mnist-dcgan": 500}
N_EVAL = 2500  # images on each side for MNIST (half of mnist5k)

_ONE = r"""
import json, sys, torch
torch.set_num_threads(1)
import ganforge
from ganforge.losses import RECOMMENDED
preset, loss, seed, steps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

def flat(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from flat(v, prefix + k + ".")
        else:
            yield prefix + k, v

sets = {"loss": loss, **dict(flat(RECOMMENDED.get(loss, {}))), "seed": seed, "log.progress": False,
        "train.steps": steps, "train.epochs": None, "log.sample_every": f"{steps} steps",
        "log.checkpoint_every": f"{steps} steps"}
cfg = ganforge.resolve_config(preset, overrides=sets)
toy = cfg.data.name in ganforge.config.TOY_DATA
if not toy:
    cfg = ganforge.resolve_config(preset, overrides={**sets, "eval.every": "off"})
run = ganforge.train(cfg, out)
row = {"seconds": run.elapsed, "step": run.step, "diverged": run.stopped_by}
if toy:
    row.update(run.final_metrics or {})
else:
    from ganforge.config import DataConfig, EvalConfig
    from ganforge.data import load_dataset
    from ganforge.metrics import evaluate, reference
    ev = EvalConfig()
    half = torch.randperm(5000, generator=torch.Generator().manual_seed(0))[:%d].sort().values
    data = load_dataset(DataConfig(image_size=cfg.data.image_size, channels=cfg.data.channels))
    ref = reference(data, ev, verbose=False, x=data.x[half], y=data.y[half])
    gan = run.load()
    x = gan.generate(gan.noise(%d, seed=ev.seed), gan.labels(%d, None, ev.seed))
    row.update({k: v for k, v in evaluate(x, ref).items() if isinstance(v, (int, float))})
print(json.dumps(row))
""" % (N_EVAL, N_EVAL, N_EVAL)


def _one(preset: str, loss: str, seed: int, steps: int, root: Path) -> dict:
    p = subprocess.run([sys.executable, "-c", _ONE, preset, loss, str(seed), str(steps),
                        str(root / f"{preset}-{loss}-{seed}")], capture_output=True, text=True)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"preset": preset, "loss": loss, "seed": seed, "error": last}
    return {"preset": preset, "loss": loss, "seed": seed, **json.loads(p.stdout.strip().splitlines()[-1])}


def _floor(image_size: "int | None") -> "tuple[int, float]":
    """Real-vs-real FID on the same features (the domain classifier at this image size), counts and halves
    as the MNIST rows."""
    from ganforge.config import DataConfig, EvalConfig
    from ganforge.data import load_dataset
    from ganforge.metrics import evaluate, reference

    perm = torch.randperm(5000, generator=torch.Generator().manual_seed(0))
    a, b = perm[:N_EVAL].sort().values, perm[N_EVAL: 2 * N_EVAL].sort().values
    data = load_dataset(DataConfig(image_size=image_size))
    ref = reference(data, EvalConfig(), verbose=False, x=data.x[a], y=data.y[a])  # also caches the classifier
    return data.x.shape[-1], evaluate(data.x[b], ref)["fid"]  # (pixels a side, FID)


def _spread(values: list, fmt: str) -> str:
    if not values:
        return ""
    med = statistics.median(values)
    return f"{med:{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})" if len(values) > 1 else f"{med:{fmt}}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--losses", default=",".join(LOSSES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=0, help="generator steps for every preset (default: per preset, "
                                                          + ", ".join(f"{k} {v}" for k, v in STEPS.items()) + ")")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    presets = [p for p in args.presets.split(",") if p]
    losses = [x for x in args.losses.split(",") if x]
    sizes = {p: ganforge.resolve_config(p).data.image_size for p in presets if p.startswith("mnist")}
    floors = {size: _floor(size) for size in set(sizes.values())}  # image_size None: the data's own size
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"1 thread per run, {args.jobs} runs at a time, seeds 0-{args.seeds - 1}"
          + "".join(f"; MNIST real-vs-real FID floor at {px} px {f:.2f}" for px, f in sorted(floors.values())) + "\n",
          flush=True)
    with tempfile.TemporaryDirectory() as d, ThreadPoolExecutor(args.jobs) as pool:
        jobs = {(p, x): [pool.submit(_one, p, x, s, args.steps or STEPS.get(p, 10000), Path(d))
                         for s in range(args.seeds)] for p in presets for x in losses}
        head = ("| preset | loss | G steps | modes covered | high-quality % | FID (x floor) | precision | recall "
                "| seconds | per seed |")
        print(head + "\n|" + "|".join(["---"] * (head.count("|") - 1)) + "|", flush=True)
        for (preset, loss), futures in jobs.items():
            rows = [f.result() for f in futures]
            ok = [r for r in rows if "error" not in r]
            errors = "; ".join(f"seed {r['seed']}: {r['error']}" for r in rows if "error" in r)
            per_seed = []
            for r in ok:
                if "modes_covered" in r:
                    per_seed.append(f"{r['modes_covered']}/{r['modes_total']} {100 * r['hq_fraction']:.0f}%"
                                    if "hq_fraction" in r else f"{r['modes_covered']}/{r['modes_total']}")
                if "fid" in r:
                    per_seed[-1] += f" FID {r['fid']:.0f}"
                if r.get("diverged") not in (None, "budget"):
                    per_seed[-1] += f" (stopped: {r['diverged']})"
            total = ok[0]["modes_total"] if ok and "modes_total" in ok[0] else None
            modes = _spread([r["modes_covered"] for r in ok if "modes_covered" in r], "d")
            hq = _spread([100 * r["hq_fraction"] for r in ok if "hq_fraction" in r], ".1f")
            fids = [r["fid"] for r in ok if "fid" in r]
            floor = floors[sizes[preset]][1] if preset in sizes else None
            fid = f"{_spread(fids, '.0f')} ({statistics.median(fids) / floor:.0f}x)" if fids and floor else ""
            print(f"| {preset} | {loss} | {ok[0]['step'] if ok else ''} | "
                  f"{modes}{'/' + str(total) if modes and total else ''} | {hq} | {fid} | "
                  f"{_spread([r['precision'] for r in ok if 'precision' in r], '.2f')} | "
                  f"{_spread([r['recall'] for r in ok if 'recall' in r], '.2f')} | "
                  f"{_spread([r['seconds'] for r in ok], '.0f')} | {'; '.join(per_seed)}"
                  f"{' ERRORS: ' + errors if errors else ''} |", flush=True)


if __name__ == "__main__":
    main()
