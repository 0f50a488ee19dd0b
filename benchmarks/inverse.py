"""Projection and inpainting on real digits the run never trained on.

    python -m benchmarks.inverse --run-dir /tmp/inv-run          # trains it first when missing (~2 min)
    python -m benchmarks.inverse --run-dir /tmp/inv-run --n 200 --only projection

The run is the default preset trained as `ganforge train` trains it (its 120 s budget) on 4,000 of
mnist5k (`--set data.limit=4000`, a fixed seeded choice); the other 1,000 digits are held out, and --n of
them, evenly spaced in mnist5k's order (which is sorted by class, so every class is in), are the targets. A LeNet domain classifier
trained on the same 4,000 digits (never on the held-out ones) reads the results.

* projection: pixel MSE ([0, 1] units) between each digit and its reconstruction, and how often the
  classifier reads the reconstruction as the digit's true label; against the baseline of the best (by pixel
  MSE) of 1,000 random samples of G (conditional runs: 100 per class), for each feature distance, and
  against the number of steps (a curve);
* inpainting (top half, left half, centre 14x14 missing): the classifier's accuracy on the filled digit
  against the true label, versus the same classifier on the masked digit with the hole left at the
  background value (0), and PSNR inside the hole for both;
* time: images per second, batched, default settings.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import torch

import ganforge
from ganforge.data import load_mnist5k, subset
from ganforge.metrics.features import domain_classifier
from ganforge.repair import parse_mask

from . import harness

LIMIT = 4000


def held_out():
    x, y = load_mnist5k()
    keep = subset(5000, LIMIT)
    out = torch.ones(5000, dtype=torch.bool)
    out[keep] = False
    return (x[keep], y[keep]), ((x[out] + 1) / 2, y[out])


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor) -> float:
    mse = float((((a - b) * where) ** 2).sum() / where.sum())
    return 10 * math.log10(1 / max(mse, 1e-12))


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--run-dir", type=Path, required=True, help="the run (trained here first when missing)")
    ap.add_argument("--n", type=int, default=1000, help="held-out digits (default all 1,000)")
    ap.add_argument("--curve", default="25,50,100,200,400", help="steps for the projection curve (pixel features)")
    ap.add_argument("--curve-n", type=int, default=200, help="digits for the curve")
    ap.add_argument("--features", default="pixel,discriminator,classifier")
    ap.add_argument("--masks", default="top-half,left-half,center:14")
    ap.add_argument("--only", choices=("projection", "inpainting", "curve"), action="append")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if not args.run_dir.exists():
        subprocess.run([sys.executable, "-m", "ganforge", "train", "--run-dir", str(args.run_dir), "--seed", "0",
                        "--set", f"data.limit={LIMIT}", "-q"], check=True)
    (xt, yt), (xh, yh) = held_out()
    spread = torch.linspace(0, len(yh) - 1, min(args.n, len(yh))).round().long()  # mnist5k is sorted by class
    xh, yh = xh[spread], yh[spread]
    clf = domain_classifier(xt, yt, f"mnist5k-train{LIMIT}")
    read = lambda img: clf(img * 2 - 1)["probs"].argmax(1)  # noqa: E731
    gan = ganforge.load(args.run_dir)
    print(harness.header(f"run {args.run_dir} (step {gan.step}, "
          f"{gan.source.name}); {len(xh)} held-out digits; classifier held-out accuracy "
          f"{clf.info['heldout_accuracy']:.3f}, on the targets {float((read(xh) == yh).double().mean()):.3f}"))
    rows = []
    only = set(args.only or ("projection", "inpainting", "curve"))

    def row(**r):
        rows.append(r)
        print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()), flush=True)

    if "projection" in only:
        K = gan.n_classes
        labels = torch.arange(K).repeat_interleave(1000 // K) if K else None
        t0 = time.perf_counter()
        pool = gan.sample(1000, seed=0, labels=labels)
        d = torch.cdist(xh.flatten(1), pool.flatten(1)) ** 2 / xh[0].numel()
        best = d.argmin(1)
        rec = pool[best]
        row(task="projection", method="best of 1000 random samples", mse=float(d.min(1).values.mean()),
            label_agreement=float((read(rec) == yh).double().mean()), seconds=time.perf_counter() - t0)
        for feat in args.features.split(","):
            t0 = time.perf_counter()
            p = gan.project(xh, features=feat)
            secs = time.perf_counter() - t0
            row(task="projection", method=f"project --features {feat}", mse=float(((p.images - xh) ** 2).mean()),
                label_agreement=float((read(p.images) == yh).double().mean()), seconds=secs,
                images_per_s=len(xh) / secs,
                **({"class_found_correct": float((p.y == yh).double().mean()), "classes_by": p.classes_by}
                   if p.y is not None else {}))
    if "curve" in only:
        pick = torch.linspace(0, len(yh) - 1, min(args.curve_n, len(yh))).round().long()
        xc, yc = xh[pick], yh[pick]
        for steps in [int(s) for s in args.curve.split(",")]:
            t0 = time.perf_counter()
            p = gan.project(xc, steps=steps, features="pixel")
            row(task="curve", steps=steps, mse=float(((p.images - xc) ** 2).mean()),
                label_agreement=float((read(p.images) == yc).double().mean()), seconds=time.perf_counter() - t0)
    if "inpainting" in only:
        for spec in args.masks.split(","):
            m = parse_mask(spec, gan.data_shape, len(xh))
            hole = 1 - m
            masked = xh * m
            t0 = time.perf_counter()
            r = gan.inpaint(xh, m)
            secs = time.perf_counter() - t0
            row(task="inpainting", mask=spec, acc_filled=float((read(r.filled) == yh).double().mean()),
                acc_masked=float((read(masked) == yh).double().mean()),
                psnr_hole_filled=psnr(r.filled, xh, hole), psnr_hole_background=psnr(masked, xh, hole),
                known_max_diff=float(((r.filled - xh) * m).abs().max()), seconds=secs, images_per_s=len(xh) / secs,
                **({"class_found_correct": float((r.y == yh).double().mean())} if r.y is not None else {}))
    for r in rows:
        harness.record("inverse", {"run": str(args.run_dir), **r}, args)


if __name__ == "__main__":
    main()
