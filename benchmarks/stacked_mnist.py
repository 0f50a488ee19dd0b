"""Stacked MNIST's 1,000 modes (modes hit by 26,000 samples, KL to uniform) against seconds of training, and
R3GAN's loss ablation (NS, NS + R1, NS + R1 + R2, RpGAN + R1, RpGAN + R1 + R2, hinge) on the DCGAN and the
ResNet nets, beside the published rows.

    python -m benchmarks.stacked_mnist                                  # the preset, 3 seeds, read at 60/120/300/600 s
    python -m benchmarks.stacked_mnist --ablation --budgets 60,120 --seeds 0   # 6 losses x 2 nets, one seed
    python -m benchmarks.stacked_mnist --set model.arch=resnet --seeds 0       # a lever against the preset
    python -m benchmarks.stacked_mnist --table                          # the tables from saved rows

Protocol. One run per (variant, seed), `ganforge train --preset stacked-mnist --max-seconds T --seed S` in a
fresh process with both cores, T the largest budget, a checkpoint every 250 steps and no evaluation in
training. The preset's schedule does not depend on its budget (constant learning rates, EMA ramp-up by
steps), so the checkpoint at the last step before B seconds of training holds the generator that a
`--max-seconds B` run ends with, and one run gives the whole curve. After training, outside its clock,
that checkpoint's EMA generator draws 26,000 samples of the fixed evaluation noise and `modes_1000`
reads each channel with the mnist5k digit classifier (LeNet, 98% held out): modes hit at least once, and
KL(mode histogram || uniform). The floor row is real stacked triples scored the same way: 26,000 draws
from a uniform histogram give KL about 0.019 by sampling noise alone.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from . import harness

NAME = "stacked_mnist"
BUDGETS = (60, 120, 300, 600)
N = 26_000
CHECKPOINT_EVERY = 250
HEADLINE = ("variant", "budget", "seed", "step", "modes_1000", "kl_1000")
HEADLINE_NOTE = "the preset on the newest day it was measured, at its 600 s budget"

# loss ablation (R3GAN Table 2's rows): γ = 0.1 wherever a penalty is on, as the preset
VARIANTS = {
    "ns": ["loss=nonsaturating", "r1=0", "r2=0"],
    "ns+r1": ["loss=nonsaturating", "r1=0.1", "r2=0"],
    "ns+r1+r2": ["loss=nonsaturating", "r1=0.1", "r2=0.1"],
    "rpgan+r1": ["loss=rpgan", "r1=0.1", "r2=0"],
    "rpgan+r1+r2": ["loss=rpgan", "r1=0.1", "r2=0.1"],
    "hinge": ["loss=hinge", "r1=0", "r2=0"],
}
NETS = {"dcgan": [], "resnet": ["model.arch=resnet", "model.widths=64,32,16", "model.group_channels=8"]}

# (method, modes, KL): R3GAN Table 3 and PacGAN's tables; their GPUs, their step counts, 60,000 MNIST digits
PUBLISHED = [("DCGAN", 99, 3.40), ("VEEGAN", 150, 2.95), ("Unrolled GAN", 48.7, 4.32), ("WGAN-GP", 959, 0.73),
             ("StyleGAN2", 940, 0.42), ("PacGAN", 992, 0.28), ("PacDCGAN2 (PacGAN's table)", 1000, 0.06),
             ("DDGAN", 1000, 0.071), ("R3GAN", 1000, 0.029)]


def headline(rows: list) -> list:
    return harness.newest(rows, lambda r: r.get("variant") == "preset" and r.get("budget") == max(BUDGETS))


def floor(n: int = N, seeds=(0, 1, 2)) -> list:
    """Real stacked triples scored as samples: the metric's own noise."""
    import torch

    from ganforge.data.mnist import load_mnist5k
    from ganforge.data.stacked import draw_triples, stack
    from ganforge.metrics.features import domain_classifier, per_channel
    from ganforge.metrics.image import modes_uniform

    x, y = load_mnist5k()
    ext = per_channel(domain_classifier(x, y, "mnist5k", verbose=False))
    out = []
    for s in seeds:
        triples = draw_triples(x.shape[0], n, torch.Generator().manual_seed(10_000 + s))
        out.append({"seed": s, **modes_uniform(ext(stack(x, triples))["probs"])})
    return out


def read_curve(run_dir: Path, budgets) -> list:
    """Each budget's checkpoint (:func:`harness.budget_checkpoints`) scored with ``modes_1000``."""
    from ganforge.evaluation import evaluate_run

    out = []
    for b, step, seconds, path in harness.budget_checkpoints(run_dir, budgets):
        found = evaluate_run(run_dir, checkpoint=path, metrics="modes_1000", n=N, say=lambda _: None)
        out.append({"budget": b, "step": step, "seconds": seconds,
                    "modes_1000": found["modes_1000"], "kl_1000": round(found["kl_1000"], 4)})
    return out


def run(variant: str, sets: list, seed: int, budgets, root: Path) -> list:
    run_dir = root / harness.run_dir_name("stacked-mnist", sets, seed)
    harness.train("stacked-mnist", run_dir, [*sets, "eval.every=off", f"log.checkpoint_every={CHECKPOINT_EVERY} steps",
                                             "log.keep_checkpoints=10000"], seed, max_seconds=float(max(budgets)))
    return [{"variant": variant, "sets": sets, "seed": seed, **row} for row in read_curve(run_dir, budgets)]


def table(rows: list, floor_rows: list) -> str:
    out = ["| variant | budget (s) | seeds | steps | modes (min-max) | KL mean (min-max) | seeds at 1000 modes | "
           "seeds with KL <= 0.03 |", "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["variant"], r["budget"]) for r in rows}, key=lambda k: (k[0] != "preset", k[0], k[1]))
    for v, b in keys:
        rs = [r for r in rows if (r["variant"], r["budget"]) == (v, b)]
        m, kl = [r["modes_1000"] for r in rs], [r["kl_1000"] for r in rs]
        out.append(f"| {v} | {b} | {len(rs)} | {statistics.mean(r['step'] for r in rs):.0f} | "
                   f"{statistics.mean(m):.0f} ({min(m)}-{max(m)}) | {statistics.mean(kl):.3f} "
                   f"({min(kl):.3f}-{max(kl):.3f}) | {sum(x == 1000 for x in m)}/{len(rs)} | "
                   f"{sum(x <= 0.03 for x in kl)}/{len(rs)} |")
    for f in floor_rows:
        out.append(f"| real stacked digits (floor), seed {f['seed']} | - | 1 | - | {f['modes_1000']} | "
                   f"{f['kl_1000']:.3f} | | |")
    out += ["", "Published (GPU-days of training on 60,000 MNIST digits, 26,000 samples; ours: CPU-minutes, "
            "5,000 source digits):", "", "| method | modes | KL |", "|---|---|---|"]
    out += [f"| {name} | {modes} | {kl} |" for name, modes, kl in PUBLISHED]
    return "\n".join(out)


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="seconds, comma-separated")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated")
    ap.add_argument("--ablation", action="store_true", help="the six losses on both nets instead of the preset")
    ap.add_argument("--nets", default="dcgan,resnet", help="ablation: which nets")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--keep", help="keep the run dirs under this folder")
    ap.add_argument("--table", action="store_true", help="print the tables from saved rows and exit")
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.table:
        print(table(harness.rows(NAME), harness.rows(NAME + "_floor")))
        return
    print(harness.header(f"budgets {budgets}, seeds {seeds}" + (", ablation" if args.ablation else "")) + "\n")
    floor_rows = floor()
    for f in floor_rows:
        harness.record(NAME + "_floor", {**f, "n": N}, args)
    jobs = [(f"{v}@{net}", [*NETS[net], *sets, *args.sets]) for v, sets in VARIANTS.items()
            for net in args.nets.split(",")] if args.ablation else \
        [("preset" if not args.sets else "preset " + " ".join(args.sets), list(args.sets))]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        for variant, sets in jobs:
            for s in seeds:
                for row in run(variant, sets, s, budgets, root):
                    rows.append(harness.record(NAME, {**row, "n": N}, args))
                    print(json.dumps({k: row[k] for k in ("variant", "seed", "budget", "step", "modes_1000",
                                                          "kl_1000")}), flush=True)
    print(table(rows, floor_rows))


if __name__ == "__main__":
    main()
