"""Does generated data help a classifier? N real digits per class, with and without generated ones.

    python -m benchmarks.augmentation --run-dir /tmp/inv-run          # the conditional run on 4,000 digits
    python -m benchmarks.augmentation --run-dir /tmp/inv-run --own-gan-seconds 0   # skip the per-N GANs

Test set: the 1,000 mnist5k digits that `--set data.limit=4000` leaves out (as benchmarks/inverse.py);
neither any GAN nor any classifier here sees them. For N = 10, 50, 500 real digits per class (a seeded
choice from the 4,000) and seeds 0, 1, 2, ganforge's fixed small classifier (LeNet, the one
`train_classifier` builds, about 400 optimiser steps or 10 epochs, whichever is more; it keeps 10% of its
training set aside, as it always does) is trained on:

* real: the N per class alone;
* real + generated (GAN on 4,000): N per class plus M = 500 per class from the run given (the default
  preset, conditional, trained on all 4,000 labelled digits). That GAN has seen far more labelled data than
  N per class: this row measures knowledge carried by the generator, not free data;
* real + generated (GAN on the same N): M per class from a conditional default-preset run trained for
  --own-gan-seconds on exactly those N per class (the honest augmentation setting), seed 0 only;
* generated only (GAN-train): M per class from the 4,000-digit GAN, no real digit.

Prints mean and range over seeds of the test accuracy.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import ganforge
from ganforge.metrics.features import train_classifier
from ganforge.metrics.tstr import accuracy, generated_set

from . import harness
from .inverse import LIMIT, held_out


def per_class(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([torch.nonzero(y == k).flatten()[torch.randperm(int((y == k).sum()), generator=gen)[:n]]
                      for k in range(int(y.max()) + 1)])


def fit(x, y, seed):
    epochs = max(10, math.ceil(400 / math.ceil(0.9 * len(y) / 128)))
    return train_classifier(x, y, "augmentation", epochs=epochs, seed=seed, verbose=False)


def own_gan(x, y, seconds: float, seed: int, root: Path) -> Path:
    """A conditional default-preset run trained on exactly (x, y), as a class-folder of PNGs."""
    from torchvision.utils import save_image

    folder = root / f"data-{len(y)}-{seed}"
    for i, (img, k) in enumerate(zip(x, y)):
        (folder / str(int(k))).mkdir(parents=True, exist_ok=True)
        save_image((img + 1) / 2, folder / str(int(k)) / f"{i:05d}.png")
    run = root / f"run-{len(y)}-{seed}"
    subprocess.run([sys.executable, "-m", "ganforge", "train", "--run-dir", str(run), "--data", str(folder),
                    "--max-seconds", str(seconds), "--seed", str(seed), "--set", "data.channels=1",
                    "--set", "data.image_size=28", "--set", "conditional=true", "--set", "eval.every=off", "-q"],
                   check=True)
    return run


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--run-dir", type=Path, required=True, help="a conditional run on the 4,000 digits")
    ap.add_argument("--per-class", default="10,50,500")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--generated", type=int, default=500, help="M generated images per class")
    ap.add_argument("--own-gan-seconds", type=float, default=60, help="0: skip the per-N GANs")
    args = ap.parse_args()
    (xt, yt), (xh, yh) = held_out()
    xh = xh * 2 - 1
    gan = ganforge.load(args.run_dir)
    if not gan.n_classes:
        sys.exit("augmentation.py needs a conditional run")
    seeds = [int(s) for s in args.seeds.split(",")]
    M = args.generated * gan.n_classes
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(v) for v in args.per_class.split(",")]:
            acc = {"real": [], "real + generated (GAN on 4,000)": [], "real + generated (GAN on the same N)": []}
            for seed in seeds:
                t0 = time.perf_counter()
                pick = per_class(yt, n, seed)
                xr, yr = xt[pick], yt[pick]
                acc["real"].append(accuracy(fit(xr, yr, seed), xh, yh))
                xg, yg = generated_set(gan, M, seed)
                acc["real + generated (GAN on 4,000)"].append(
                    accuracy(fit(torch.cat([xr, xg]), torch.cat([yr, yg]), seed), xh, yh))
                if args.own_gan_seconds > 0 and seed == seeds[0]:
                    own = ganforge.load(own_gan(xr, yr, args.own_gan_seconds, seed, Path(tmp)))
                    xo, yo = generated_set(own, M, seed)
                    acc["real + generated (GAN on the same N)"].append(
                        accuracy(fit(torch.cat([xr, xo]), torch.cat([yr, yo]), seed), xh, yh))
                print(f"  N={n} seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in acc.items()
                                                          if len(v) == seeds.index(seed) + 1)
                      + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
            for k, v in acc.items():
                if v:
                    rows.append({"per_class": n, "train_set": k, "mean": statistics.mean(v), "min": min(v),
                                 "max": max(v), "seeds": len(v)})
        gen_only = []
        for seed in seeds:
            xg, yg = generated_set(gan, M, seed)
            gen_only.append(accuracy(fit(xg, yg, seed), xh, yh))
        rows.append({"per_class": 0, "train_set": f"generated only ({args.generated}/class, GAN-train)",
                     "mean": statistics.mean(gen_only), "min": min(gen_only), "max": max(gen_only),
                     "seeds": len(gen_only)})
    print("\n| real per class | training set | test accuracy, mean | min - max | seeds |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['per_class']} | {r['train_set']} | {r['mean']:.4f} | {r['min']:.4f} - {r['max']:.4f} | "
              f"{r['seeds']} |")
    for r in rows:
        harness.record("augmentation", {"run": str(args.run_dir), "limit": LIMIT, **r}, args)


if __name__ == "__main__":
    main()
