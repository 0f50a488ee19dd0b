"""Audio: the `fsdd` preset (WaveGAN on the Free Spoken Digit Dataset) read by a log-mel digit classifier against
the official test split: per-class accuracy of `--class K` samples, Inception score beside the real clips', FID
in the classifier's features, memorisation; at budgets of CPU minutes, beside WaveGAN's published SC09 rows.

    python -m benchmarks.audio --root DATA --budgets 300,900,1800 --seeds 0   # DATA/free-spoken-digit-dataset/
    python -m benchmarks.audio --root DATA --budgets 300 --set model.widths=[16]     # a lever
    python -m benchmarks.audio --table

Protocol. One run per (lever, seed), `ganforge train --preset fsdd --data fsdd --max-seconds T`, T the largest
budget, a checkpoint every 100 steps, trained on the official train split (2,700 clips: index 5-49 of each
speaker and digit). Each budget's last checkpoint draws `--n` (1,000) clips of the evaluation noise (seed
1234), every digit equally often, and the classifier (trained once on the train split, cached; its test-split
accuracy is in every row) reads them against the 300 test clips. The floor row is the test clips themselves.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from . import harness

NAME = "audio"
BUDGETS = (300, 900, 1800)
CHECKPOINT_EVERY = 100
HEADLINE = ("model", "budget", "seed", "step", "accuracy", "inception_score", "inception_score_real", "fid",
            "closer_than_real")
HEADLINE_NOTE = "the newest day's rows at the longest budget, beside the test split's own"
# WaveGAN's Table 1 (Donahue et al. 2019): SC09 (a different, larger dataset: 16 kHz, 1,850 speakers), GPU-days
PUBLISHED = [("real (SC09 test)", 9.18), ("WaveGAN", 4.67), ("SpecGAN", 6.03)]


def headline(rows: list) -> list:
    return harness.newest(rows, longest=True)


def reference(root: str):
    from ganforge.config import DataConfig
    from ganforge.data import load_dataset
    from ganforge.metrics.audio import audio_reference

    cfg = DataConfig(name="fsdd", root=root, audio_len=8192, sample_rate=8000, download=False)
    return audio_reference(load_dataset(cfg, verbose=False), cfg)


def curve(run_dir: Path, budgets, n: int, ref) -> list:
    import torch

    import ganforge
    from ganforge.models import matched_labels

    out = []
    for b, step, seconds, path in harness.budget_checkpoints(run_dir, budgets):
        gan = ganforge.load(path)
        y = matched_labels(n, torch.ones(gan.n_classes), 1234) if gan.n_classes else None
        out.append({"budget": b, "step": step, "seconds": seconds,
                    **ref.score(gan.generate(gan.noise(n, seed=1234), y), y)})
    return out


def table(rows: list) -> str:
    out = ["| model | budget (min) | CPU | seeds | steps | digit read as itself | worst digit | Inception score "
           "(% of real) | FID (classifier features) | closer to a training clip than any test clip |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for m, b, cpu, rs, seeds in harness.budget_groups(rows):
        mean = lambda k: statistics.mean(r[k] for r in rs)  # noqa: E731
        worst = min(min(r["accuracy_per_class"]) for r in rs)
        steps = f"{mean('step'):,.0f}" if b else "-"
        score, share = mean("inception_score"), mean("inception_score") / mean("inception_score_real")
        out.append(f"| {m} | {f'{b / 60:g}' if b else '-'} | {cpu} | {seeds} | {steps} | "
                   f"{mean('accuracy'):.1%} | {worst:.0%} | {score:.2f} ({share:.0%}) | {mean('fid'):.2f} | "
                   f"{mean('closer_than_real'):.1%} |")
    out += ["", "WaveGAN's published Inception scores on SC09 (Donahue et al. 2019, Table 1: a different, larger "
            "dataset of 16 kHz digits, GPU-days; ours: FSDD at 8 kHz, CPU-minutes on 2 cores):", "",
            "| model | Inception score (% of real) |", "|---|---|"]
    out += [f"| {m} | {s} ({s / PUBLISHED[0][1]:.0%}) |" for m, s in PUBLISHED]
    return "\n".join(out)


summary = table  # benchmarks/README.md shows every row this way

def plot(rows: list, path: Path) -> None:
    fig, ax = harness.budget_curves(rows, "model", "accuracy", "accuracy of --class K samples",
                                    label=lambda m: f"{m}: digit read as itself")
    ax.axhline(0.8, ls=":", lw=1, color="grey", label="goal 80%")
    ax.set_ylim(0, 1)
    harness.save_curves(fig, ax, path)


def main() -> None:
    ap = harness.curve_parser(__doc__, BUDGETS, 1000, "clips")
    ap.add_argument("--root", default="data", help="the folder holding free-spoken-digit-dataset/recordings")
    ap.add_argument("--no-floor", dest="floor", action="store_false", help="skip the test split's own row")
    args = ap.parse_args()
    if harness.show_table(args, harness.rows(NAME), table, plot):
        return
    budgets = [float(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    print(harness.header(f"budgets {budgets}, seeds {seeds}, n {args.n}, root {args.root}") + "\n", flush=True)
    ref = reference(args.root)
    common = {"n": args.n, "data": "fsdd", "classifier_test_accuracy": ref.extractor.info["test_accuracy"]}
    rows = []

    def keep(row):
        rows.append(harness.record(NAME, {**row, **common}, args))
        print(json.dumps({k: v for k, v in rows[-1].items() if k in HEADLINE}), flush=True)

    if args.floor:
        real = ref.score(test_clips(args.root), ref.test_y)
        keep({"model": "FSDD test split (real)", **real, "n": len(ref.test_y)})
    label = "fsdd" + ("" if not args.sets else " " + " ".join(args.sets))
    for s in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(args.keep or tmp) / harness.run_dir_name("fsdd", args.sets, s)
            harness.train("fsdd", run_dir, [*args.sets, f"log.checkpoint_every={CHECKPOINT_EVERY} steps",
                                            "log.keep_checkpoints=10000", f"data.root={args.root}",
                                            "data.download=false"], s, max_seconds=max(budgets))
            for row in curve(run_dir, budgets, args.n, ref):
                keep({"model": label, "sets": args.sets, "seed": s, **row})
    print(table(rows))


def test_clips(root: str):
    from ganforge.config import DataConfig
    from ganforge.data import load_audio
    from ganforge.data.audio import fsdd

    cfg = DataConfig(name="fsdd", root=root, audio_len=8192, sample_rate=8000, download=False)
    return load_audio(fsdd(Path(root), False), cfg, "test", "fsdd-test").x


if __name__ == "__main__":
    main()
