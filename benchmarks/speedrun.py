"""Quality against wall-clock time: FID (and modes, precision, recall) after 30, 60, 120, 300, 600 s.

    python benchmarks/speedrun.py                                   # 3 presets x 5 budgets x 3 seeds (~3 h)
    python benchmarks/speedrun.py --presets default --budgets 30,60,120 --seeds 0,1,2
    python benchmarks/speedrun.py --presets default --budgets 120 --set optim.lr_schedule=linear
                                                                    # a lever against the preset, same protocol
    python benchmarks/speedrun.py --from a.jsonl b.jsonl            # table and plot from saved rows

Each run is the command a user types: `ganforge train [--preset P] --max-seconds B --seed S --run-dir D`
in a fresh process, so everything the run does counts against its budget (grids, checkpoints and the
presets' own in-training evaluations); `--max-seconds` replaces a preset's epoch or step budget, so
time is the only budget. After training, and outside its clock,
the generator that `ganforge sample D` would use (the latest checkpoint, or best.pt when the latest
scored worse) is scored as in `mnist_quality.py`: the domain classifier's features (LeNet trained on
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

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rundirs import run_dir_name  # noqa: E402
from throughput import matmul_peak  # noqa: E402

import ganforge  # noqa: E402
from ganforge.config import DEFAULT_PRESET, DataConfig, EvalConfig  # noqa: E402
from ganforge.data import load_dataset  # noqa: E402
from ganforge.metrics import eval_labels, evaluate, reference  # noqa: E402

PRESETS = ["default", "mnist-dcgan", "mnist-mlp-tuned"]
TARGET = 2.5  # FID within 2.5x of the real-vs-real floor


class Scorer:
    """The mnist_quality protocol: n generated images against a fixed half of mnist5k, per image size."""

    def __init__(self, n: int = 2500, class_n: int = 500, labels: str = "matched") -> None:
        self.n, self.class_n, self.labels, self.refs = n, class_n, labels, {}
        half = torch.randperm(5000, generator=torch.Generator().manual_seed(0))
        self.a, self.b = half[:n].sort().values, half[n:2 * n].sort().values

    def floor_and_ref(self, size: int, channels: int):
        if (size, channels) not in self.refs:
            data = load_dataset(DataConfig(image_size=size, channels=channels), verbose=False)
            ref = reference(data, EvalConfig(), x=data.x[self.a], y=data.y[self.a])
            self.refs[size, channels] = ref, evaluate(data.x[self.b], ref)
        return self.refs[size, channels]

    def samples(self, gan) -> tuple:
        """``n`` samples of the fixed evaluation noise, with the reference and floor of their image size. A
        conditional G draws them in the reference half's class proportions (``labels="matched"``, as
        ganforge's own evaluations do) or with uniform random labels (``"random"``, the protocol before
        2026-12-02: the label histogram's noise then reads as FID, ±0.27x on one checkpoint)."""
        seed = EvalConfig().seed
        ref, floor = self.floor_and_ref(gan.data_shape[-1], gan.data_shape[0])
        y = None
        if gan.n_classes:
            y = eval_labels(self.n, gan.n_classes, ref, seed) if self.labels == "matched" else \
                gan.labels(self.n, None, seed)
        return gan.generate(gan.noise(self.n, seed=seed), y), ref, floor

    def __call__(self, run_dir: Path) -> dict:
        gan = ganforge.load(run_dir)
        x, ref, floor = self.samples(gan)
        found = evaluate(x, ref)
        row = {"fid": found["fid"], "floor": floor["fid"], "ratio": found["fid"] / floor["fid"],
               "precision": found["precision"], "recall": found["recall"], "modes": found["modes_covered"],
               "kl_modes": found["kl_modes"], "checkpoint": gan.source.name, "step": gan.step}
        if gan.n_classes:  # sample --class K, read by the domain classifier
            hits = [float((ref.extractor(gan.sample(self.class_n, seed=K, labels=K) * 2 - 1)["probs"].argmax(1)
                           == K).double().mean()) for K in range(gan.n_classes)]
            row["class_acc"] = [round(h, 3) for h in hits]
            row["worst_class_acc"], row["class_n"], row["labels"] = min(hits), self.class_n, self.labels
        return row


def train_one(preset: str, budget: float, seed: int, root: Path, conditional: bool = False,
              sets: tuple = ()) -> dict:
    run_dir = root / run_dir_name(preset, sets, f"{budget:g}", seed)
    cmd = [sys.executable, "-m", "ganforge", "train", "--max-seconds", f"{budget:g}", "--seed", str(seed),
           "--run-dir", str(run_dir), "--quiet"]
    if preset != "default":
        cmd += ["--preset", preset]
    if conditional:
        cmd += ["--set", "conditional=true"]
    for item in sets:
        cmd += ["--set", item]
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return {"wall_s": time.monotonic() - t0, "run_dir": run_dir}


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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default=",".join(PRESETS), help="comma-separated; 'default' = no --preset")
    ap.add_argument("--budgets", default="30,60,120,300,600", help="comma-separated seconds")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jsonl", default="speedrun.jsonl", help="append each run's row here")
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
        peak = matmul_peak()
        print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} CPU cores, torch "
              f"{torch.__version__}, fp32 matmul peak {peak / 1e9:.1f} GFLOP/s; default = {DEFAULT_PRESET}\n",
              flush=True)
        scorer, rows = Scorer(class_n=args.class_n, labels=args.labels), []
        with tempfile.TemporaryDirectory() as tmp:
            d = args.keep or tmp
            for preset in args.presets.split(","):
                for budget in [float(b) for b in args.budgets.split(",")]:
                    for seed in [int(s) for s in args.seeds.split(",")]:
                        ran = train_one(preset, budget, seed, Path(d), args.conditional, tuple(args.sets))
                        label = preset + (" conditional" if args.conditional else "") + \
                            "".join(f" --set {item}" for item in args.sets)
                        row = {"preset": label, "budget": budget,
                               "seed": seed, "wall_s": round(ran["wall_s"], 1),
                               **scorer(ran["run_dir"]), "peak_gflops": round(peak / 1e9, 1)}
                        print(json.dumps(row), flush=True)
                        with open(args.jsonl, "a") as f:
                            f.write(json.dumps(row) + "\n")
                        rows.append(row)
    print("\n" + table(rows))
    plot(rows, Path(args.plot))
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
