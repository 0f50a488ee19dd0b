"""Quality against wall-clock time: FID (and modes, precision, recall) after 30, 60, 120, 300, 600 s.

    python -m benchmarks.speedrun                                   # 3 presets x 5 budgets x 3 seeds (~3 h)
    python -m benchmarks.speedrun --presets default --budgets 30,60,120 --seeds 0,1,2
    python -m benchmarks.speedrun --presets default --budgets 120 --set optim.lr_schedule=linear
                                                                    # a lever against the preset, same protocol
    python -m benchmarks.speedrun --from results/speedrun.jsonl     # table and plot from saved rows

Each run is the command a user types: `ganforge train [--preset P] --max-seconds B --seed S --run-dir D`
in a fresh process, so everything the run does counts against its budget (grids, checkpoints and the
presets' own in-training evaluations); `--max-seconds` replaces a preset's epoch or step budget, so
time is the only budget. After training, and outside its clock,
the generator that `ganforge sample D` would use (the latest checkpoint, or best.pt when the latest
scored worse) is scored by harness.MnistScorer (as `mnist_quality`): the domain classifier's features (LeNet trained on
mnist5k at the preset's image size), 2,500 generated images of the fixed evaluation noise against a
fixed half of mnist5k, and the other half against the same half as the floor.

Prints one row per run and one per (preset, budget) with the median and range over seeds, and saves
FID / floor against seconds (log scale, the 2.5x target drawn) to --plot.

For a class-conditional generator (the default on labelled data, or any preset with `--conditional`, which
trains with `--set conditional=true`) each row also reports, for each digit K, how often the domain
classifier reads 500 samples (`--class-n`) of `sample --class K` as K (the worst K in the table), and
its 2,500 scored samples take the class proportions of the reference half (`--labels matched`, as ganforge's
own evaluations do since 2026-12-02; `--labels random` draws them uniformly, the protocol before).
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from ganforge.config import DEFAULT_PRESET

from . import harness

NAME = "speedrun"
PRESETS = ["default", "mnist-dcgan", "mnist-mlp-tuned"]
TARGET = 2.5  # FID within 2.5x of the real-vs-real floor
HEADLINE = ("preset", "budget", "seed", "step", "ratio", "precision", "recall", "modes", "worst_class_acc")
HEADLINE_NOTE = "the default preset as it is now, the newest day it was measured"


def headline(rows: list) -> list:
    """The newest rows of the plain default (no lever, no other preset)."""
    return harness.newest(rows, lambda r: r.get("preset") == "default")


def table(rows: list) -> str:
    cond = any("worst_class_acc" in r for r in rows)
    out = ["| preset | budget (s) | seeds | steps | FID | FID / floor | precision | recall | modes | KL(modes) | "
           + ("worst sample --class K read as K | " if cond else "") + "target met (seeds) |",
           "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if cond else "")]
    keys = sorted({(r["preset"], r["budget"]) for r in rows}, key=lambda k: (PRESETS.index(k[0])
                                                                               if k[0] in PRESETS else 99, k[1]))
    for preset, budget in keys:
        rs = [r for r in rows if r["preset"] == preset and r["budget"] == budget]

        def cell(k, fmt):
            v = [r[k] for r in rs if k in r]
            if not v:
                return "-"
            return f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))}–{fmt.format(max(v))})"
        met = sum(r["ratio"] <= TARGET and r["modes"] == 10 for r in rs)
        out.append(f"| {preset} | {budget:g} | {len(rs)} | {cell('step', '{:.0f}')} | {cell('fid', '{:.1f}')} | "
                   f"{cell('ratio', '{:.1f}x')} | {cell('precision', '{:.2f}')} | {cell('recall', '{:.2f}')} | "
                   f"{cell('modes', '{:.0f}')} | {cell('kl_modes', '{:.3f}')} | "
                   + (f"{cell('worst_class_acc', '{:.1%}')} | " if cond else "") + f"{met}/{len(rs)} |")
    return "\n".join(out)


def plot(rows: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.6, 4.4))
    for preset in dict.fromkeys(r["preset"] for r in rows):  # in the order the rows came
        budgets = sorted({r["budget"] for r in rows if r["preset"] == preset})
        med = [statistics.median(r["ratio"] for r in rows if r["preset"] == preset and r["budget"] == b)
               for b in budgets]
        label = f"{DEFAULT_PRESET} (default)" if preset == "default" else preset
        line, = ax.plot(budgets, med, marker="o", label=label, lw=2.5 if preset == "default" else 1.5,
                        zorder=3 if preset == "default" else 2)
        pts = [(r["budget"], r["ratio"]) for r in rows if r["preset"] == preset]
        ax.scatter(*zip(*pts), s=9, alpha=0.4, color=line.get_color())
    ax.axhline(1.0, color="k", lw=1, label="real vs real (floor)")
    ax.axhline(TARGET, color="k", lw=1, ls="--", label=f"target: {TARGET}x floor")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = sorted({r["budget"] for r in rows})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("seconds of training on 2 CPU cores")
    ax.set_ylabel("FID / real-vs-real floor (domain classifier)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--presets", default=",".join(PRESETS), help="comma-separated; 'default' = no --preset")
    ap.add_argument("--budgets", default="30,60,120,300,600", help="comma-separated seconds")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--from", dest="source", nargs="+", help="only print the table and plot from these .jsonl files")
    ap.add_argument("--plot", default="docs/speedrun.png")
    ap.add_argument("--keep", help="keep the run dirs under this folder (default: a temporary one)")
    ap.add_argument("--conditional", action="store_true", help="train with conditional=true; per-class accuracy")
    ap.add_argument("--class-n", type=int, default=500,
                    help="conditional runs: samples of each `sample --class K` read by the classifier")
    ap.add_argument("--labels", choices=("matched", "random"), default="matched",
                    help="class labels of a conditional G's 2,500 scored samples: the reference half's class "
                         "proportions (ganforge's own evaluations) or uniform draws (the protocol before 2026-12-02)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every run, as in `ganforge train --set` (named in the rows' preset)")
    args = ap.parse_args()
    if args.source:
        rows = [json.loads(line) for src in args.source for line in Path(src).read_text().splitlines() if line.strip()]
    else:
        peak = harness.matmul_peak()
        print(harness.header(f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s; default = {DEFAULT_PRESET}") + "\n",
              flush=True)
        scorer, rows = harness.MnistScorer(class_n=args.class_n, labels=args.labels), []
        sets = [*args.sets, *(["conditional=true"] if args.conditional else [])]
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(args.keep or tmp)
            for preset in args.presets.split(","):
                for budget in [float(b) for b in args.budgets.split(",")]:
                    for seed in [int(s) for s in args.seeds.split(",")]:
                        run_dir = d / harness.run_dir_name(preset, args.sets, f"{budget:g}", seed)
                        run, wall = harness.train(None if preset == "default" else preset, run_dir, sets, seed,
                                                  max_seconds=budget)
                        label = preset + (" conditional" if args.conditional else "") + \
                            "".join(f" --set {item}" for item in args.sets)
                        row = harness.record(NAME, {"preset": label, "budget": budget, "seed": seed,
                                                    "wall_s": round(wall, 1), **scorer(run.dir),
                                                    "peak_gflops": round(peak / 1e9, 1)}, args)
                        print(json.dumps(row), flush=True)
                        rows.append(row)
    print("\n" + table(rows))
    plot(rows, Path(args.plot))
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
