"""Does the default's EMA cause its drift after ~150 s? One run with extra EMAs of G beside the run's own.

    python -m benchmarks.ema_drift --seed 2 --seconds 600 --out /tmp/drift
    python -m benchmarks.ema_drift --seed 0 --seconds 120 --every 500 --out /tmp/e \
        --emas 0.05:0.999,0.1:0.999,0.2:0.9999,0.3:0.9999          # other ramp-ups, same run

Trains the default preset for `--seconds` through the Python API with an `on_step` hook that keeps EMAs
of G beside the run's own, each StyleGAN2-ADA's ramp-up (half-life = RAMPUP x steps done) capped at the
half-life of a fixed decay CAP (`--emas RAMPUP:CAP,...`; by default ramp-up 0.05 capped at half-lives of
693 steps, the preset's 0.999, then 300, 150 and 75 steps), snapshots them and G's own weights every
`--every` steps, and after training scores every snapshot with speedrun.py's protocol (FID / floor).
The hook costs a few per cent of the steps.
"""

from __future__ import annotations

import copy

import ganforge
from ganforge.config import parse_set
from ganforge.metrics import evaluate
from ganforge.training.step import ema_decay, update_ema

from . import harness

CAPS = {"half-life 693": 0.999, "300": 0.5 ** (1 / 300), "150": 0.5 ** (1 / 150), "75": 0.5 ** (1 / 75)}


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--emas", help="RAMPUP:CAP,... (CAP a fixed decay, e.g. 0.999); default: ramp-up 0.05, "
                                   "the four caps above")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override of the run (repeatable)")
    args = ap.parse_args()
    kinds = {k: (0.05, cap) for k, cap in CAPS.items()}
    if args.emas:
        kinds = {f"ramp-up {r}, cap {c}": (float(r), float(c)) for r, c in (e.split(":") for e in args.emas.split(","))}
    emas, snaps = {}, {}

    def on_step(step, G, D):
        if not emas:
            emas.update({k: copy.deepcopy(G).requires_grad_(False) for k in kinds})
        for k, (rampup, cap) in kinds.items():
            update_ema(emas[k], G, ema_decay(cap, rampup, step - 1))
        if step % args.every == 0:
            snaps[step] = {**{k: copy.deepcopy(m.state_dict()) for k, m in emas.items()},
                           "G's own": copy.deepcopy(G.state_dict())}

    cfg = ganforge.resolve_config(overrides={"seed": args.seed, "train.max_seconds": args.seconds,
                                             **parse_set(args.sets)})
    run = ganforge.train(cfg, args.out, on_step=on_step)
    scorer, gan = harness.MnistScorer(), ganforge.load(args.out)
    x, ref, floor = scorer.samples(gan)
    print(f"{run.step} steps in {run.elapsed:.0f} s; sample uses {gan.source.name} (step {gan.step}): "
          f"{evaluate(x, ref)['fid'] / floor['fid']:.3f}x\n")
    print("| step | " + " | ".join(snaps[min(snaps)]) + " |\n|---|" + "---|" * (len(kinds) + 1))
    for step, weights in sorted(snaps.items()):
        cells = []
        for kind, sd in weights.items():
            gan.generator.load_state_dict(sd)
            x, ref, floor = scorer.samples(gan)
            ratio = evaluate(x, ref)["fid"] / floor["fid"]
            cells.append(f"{ratio:.2f}x")
            harness.record("ema_drift", {"seed": args.seed, "seconds": args.seconds, "sets": args.sets, "step": step,
                                         "ema": kind, "ratio": ratio}, args)
        print(f"| {step} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
