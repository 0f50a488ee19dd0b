"""Sample quality of each MNIST preset after a fixed wall-clock budget, against the real-vs-real floor.

    python -m benchmarks.mnist_quality                       # budgets 60 and 120 s (about 12 minutes)
    python -m benchmarks.mnist_quality --budgets 60,120,300  # and 300 s (about 30 minutes)
    python -m benchmarks.mnist_quality --presets mnist-conv --budgets 120 --set optim.lr_schedule=cosine
                                                             # one lever against the preset, same protocol

Each preset trains on the embedded mnist5k with `--max-seconds BUDGET` (one process, all cores, its own
defaults otherwise), then its generator (the EMA where the preset keeps one) is scored on the features
of the domain classifier (LeNet trained on mnist5k, cached). Counts are equal on both sides so the
numbers compare: 2,500 generated images (fixed evaluation noise; a conditional G's labels in the reference
half's class proportions) against a fixed half of mnist5k
(2,500 images); the floor scores the other half of the real data against the same half.
The project's goal: FID within 2.5x of the floor with all 10 digits covered, within 120 s on 2 cores.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import ganforge
from ganforge.config import load_preset
from ganforge.metrics import evaluate

from . import harness

COLUMNS = ("fid", "precision", "recall", "coverage", "modes_covered", "kl_modes", "classifier_score")


def _row(label: str, budget: str, steps: str, found: dict, floor_fid: float) -> str:
    ratio = found["fid"] / floor_fid
    cells = [f"{found['fid']:.2f}", f"{ratio:.1f}x"] + [f"{found[k]:.3f}" for k in COLUMNS[1:4]] + \
        [f"{found['modes_covered']}/10", f"{found['kl_modes']:.3f}", f"{found['classifier_score']:.2f}"]
    met = "yes" if ratio <= 2.5 and found["modes_covered"] == 10 else "no"
    return f"| {label} | {budget} | {steps} | " + " | ".join(cells) + f" | {met} |"


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--budgets", default="60,120", help="comma-separated seconds")
    p.add_argument("--presets", default="", help="comma-separated (default: every preset on mnist5k)")
    p.add_argument("--n", type=int, default=2500, help="images on each side (at most half of mnist5k)")
    p.add_argument("--seed", type=int, default=0, help="the training seed")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run, as in `ganforge train --set`")
    args = p.parse_args()
    from ganforge.config import parse_set

    sets = parse_set(args.sets)
    presets = [s for s in args.presets.split(",") if s] or \
        [q for q in ganforge.preset_names() if load_preset(q).get("data", {}).get("name", "mnist5k") == "mnist5k"]
    budgets = [float(b) for b in args.budgets.split(",")]
    scorer, shown = harness.MnistScorer(args.n), set()  # the classifier is trained on the data at the size the preset trains on

    def ref_for(x):
        size, channels = x.shape[-1], x.shape[1]
        ref, floor = scorer.floor_and_ref(size, channels)
        if (size, channels) not in shown:
            shown.add((size, channels))
            print(_row(f"real vs real at {size} px (floor)", "-", "-", floor, floor["fid"]) +
                  f" <!-- {floor['features']} {size} px, held-out accuracy "
                  f"{ref.extractor.info['heldout_accuracy']:.1%} -->", flush=True)
        return ref, floor["fid"]

    print(harness.header())
    print(f"# features: the domain classifier (LeNet) trained on mnist5k at each preset's image size; "
          f"{args.n} vs {args.n} images\n")
    head = ("| preset | budget (s) | steps | FID | FID / floor | precision | recall | coverage | modes | "
            "KL(modes) | classifier score | goal met |")
    print(head)
    print("|" + "|".join(["---"] * (head.count("|") - 1)) + "|")
    for preset in presets:
        for budget in budgets:
            with tempfile.TemporaryDirectory() as d:
                cfg = ganforge.resolve_config(preset, overrides={
                    **sets, "seed": args.seed, "train.max_seconds": budget, "train.epochs": None, "train.steps": None, "log.progress": False,
                    "log.checkpoint_every": "100000 steps", "log.sample_every": "100000 steps", "eval.every": "off"})
                run = ganforge.train(cfg, Path(d) / "run")
                gan = run.load()
                x = scorer.samples(gan)[0]  # a conditional G: the reference half's class proportions
                ref, floor_fid = ref_for(x)
                found = evaluate(x, ref)
                label = preset + "".join(f" {k}" for k in args.sets)
                print(_row(label, f"{budget:g}", str(run.step), found, floor_fid), flush=True)
                harness.record("mnist_quality", {"preset": label, "budget": budget, "seed": args.seed, "step": run.step,
                                                 "floor": floor_fid, "ratio": found["fid"] / floor_fid,
                                                 **{k: v for k, v in found.items() if isinstance(v, (int, float))}},
                               args)


if __name__ == "__main__":
    main()
