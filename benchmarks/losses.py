"""Each loss, with its recommended settings, on the toy and MNIST presets at a fixed budget, 3 seeds.

    python -m benchmarks.losses                                  # everything (about 2 h 10 min on 2 cores)
    python -m benchmarks.losses --presets ring-8 --steps 2000    # a quick look
    python -m benchmarks.losses --losses hinge,wgan-gp --seeds 1

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

import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ganforge
from ganforge.config import TOY_DATA
from ganforge.losses import RECOMMENDED
from ganforge.metrics import evaluate

from . import harness

LOSSES = ["minimax", "nonsaturating", "lsgan", "hinge", "wgan", "wgan-gp"]
PRESETS = ["ring-8", "grid-25", "mnist-mlp", "mnist-mlp-bn", "mnist-mlp-tuned", "mnist-dcgan"]
STEPS = {"ring-8": 5000, "grid-25": 5000, "mnist-mlp": 2000, "mnist-mlp-bn": 2000, "mnist-mlp-tuned": 2000,
         "mnist-dcgan": 500}
N_EVAL = 2500  # images on each side for MNIST (half of mnist5k)

NAME = "losses"


def _flat(tree: dict, prefix: str = ""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _flat(v, prefix + k + ".")
        else:
            yield prefix + k, v


def _one(preset: str, loss: str, seed: int, steps: int, root: Path, scorer) -> dict:
    """One run in a fresh process (one thread), scored here: toy runs by their own final evaluation, MNIST
    runs by the mnist5k protocol (random labels for a conditional G, as this benchmark always did)."""
    sets = [f"loss={loss}", *(f"{k}={v}" for k, v in _flat(RECOMMENDED.get(loss, {}))),
            f"log.sample_every={steps} steps", f"log.checkpoint_every={steps} steps"]
    toy = ganforge.resolve_config(preset).data.name in TOY_DATA
    out = {"preset": preset, "loss": loss, "seed": seed}
    try:
        run, _ = harness.train(preset, root / f"{preset}-{loss}-{seed}", [*sets, *([] if toy else ["eval.every=off"])],
                               seed, steps=steps, threads=1)
    except RuntimeError as e:
        return {**out, "error": str(e).rsplit(": ", 1)[-1]}
    row = {**out, "seconds": run.elapsed, "step": run.step}
    if toy:
        return {**row, **harness.final_metrics(run)}
    x, ref, _ = scorer.samples(run.load())
    return {**row, **{k: v for k, v in evaluate(x, ref).items() if isinstance(v, (int, float))}}


def _spread(values: list, fmt: str) -> str:
    if not values:
        return ""
    med = statistics.median(values)
    return f"{med:{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})" if len(values) > 1 else f"{med:{fmt}}"


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--losses", default=",".join(LOSSES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=0, help="generator steps for every preset (default: per preset, "
                                                          + ", ".join(f"{k} {v}" for k, v in STEPS.items()) + ")")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    presets = [p for p in args.presets.split(",") if p]
    losses = [x for x in args.losses.split(",") if x]
    scorer = harness.MnistScorer(N_EVAL, labels="random")
    sizes = {p: ganforge.resolve_config(p).data.image_size or 28 for p in presets if p.startswith("mnist")}
    floors = {size: (size, scorer.floor_and_ref(size)[1]["fid"]) for size in set(sizes.values())}
    print(harness.header(f"1 thread per run, {args.jobs} runs at a time, seeds 0-{args.seeds - 1}"
                         + "".join(f"; MNIST real-vs-real FID floor at {px} px {f:.2f}"
                                   for px, f in sorted(floors.values()))) + "\n", flush=True)
    with tempfile.TemporaryDirectory() as d, ThreadPoolExecutor(args.jobs) as pool:
        jobs = {(p, x): [pool.submit(_one, p, x, s, args.steps or STEPS.get(p, 10000), Path(d), scorer)
                         for s in range(args.seeds)] for p in presets for x in losses}
        head = ("| preset | loss | G steps | modes covered | high-quality % | FID (x floor) | precision | recall "
                "| seconds | per seed |")
        print(head + "\n|" + "|".join(["---"] * (head.count("|") - 1)) + "|", flush=True)
        for (preset, loss), futures in jobs.items():
            rows = [f.result() for f in futures]
            for r in rows:
                harness.record(NAME, r, args)
            ok = [r for r in rows if "error" not in r]
            errors = "; ".join(f"seed {r['seed']}: {r['error']}" for r in rows if "error" in r)
            per_seed = []
            for r in ok:
                if "modes_covered" in r:
                    per_seed.append(f"{r['modes_covered']}/{r['modes_total']} {100 * r['hq_fraction']:.0f}%"
                                    if "hq_fraction" in r else f"{r['modes_covered']}/{r['modes_total']}")
                if "fid" in r:
                    per_seed[-1] += f" FID {r['fid']:.0f}"
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
