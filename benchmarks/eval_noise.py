"""How noisy is the speedrun / mnist_quality score of one checkpoint? FID / floor under several evaluation draws.

    python -m benchmarks.eval_noise RUN_DIR_OR_CHECKPOINT [...] [--draws 5]

For each checkpoint: the protocol's score (2,500 samples of the fixed evaluation noise against the fixed
half of mnist5k, the other half as the floor) recomputed with `--draws` other noise seeds, for a
conditional G once with each of three label choices: uniform random draws (the protocol before
2026-12-02), exactly balanced (n/K a class) and the reference half's class counts ("matched", ganforge's
evaluations now); then the fixed draw against `--draws` other random halves of mnist5k as reference
(each with its own floor). Prints mean, standard deviation and the values.
"""

from __future__ import annotations

import statistics

import torch

import ganforge
from ganforge.config import DataConfig, EvalConfig
from ganforge.data import load_dataset
from ganforge.metrics import eval_labels, evaluate, reference

from . import harness


def _summary(values: list) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}x ({', '.join(f'{v:.2f}' for v in values)})"


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--draws", type=int, default=5)
    args = ap.parse_args()
    scorer = harness.MnistScorer()
    for ck in args.checkpoints:
        gan = ganforge.load(ck)
        ref, floor = scorer.floor_and_ref(gan.data_shape[-1], gan.data_shape[0])
        n, K = scorer.n, gan.n_classes
        choices = {"random labels": lambda s: gan.labels(n, None, s), "balanced labels": lambda s: torch.arange(n) % K,
                   "matched labels": lambda s: eval_labels(n, K, ref, s)} if K else {"unconditional": lambda s: None}
        print(f"{ck} (step {gan.step}, {gan.source.name})", flush=True)
        for name, labels in choices.items():
            v = [evaluate(gan.generate(gan.noise(n, seed=1000 + s), labels(1000 + s)), ref)["fid"] / floor["fid"]
                 for s in range(args.draws)]
            print(f"  {args.draws} noise draws, {name}: {_summary(v)}", flush=True)
            harness.record("eval_noise", {"checkpoint": str(ck), "step": gan.step, "varied": f"noise draws, {name}",
                                          "ratios": v}, args)
        data = load_dataset(DataConfig(image_size=gan.data_shape[-1], channels=gan.data_shape[0]), verbose=False)
        seed = EvalConfig().seed
        z, v = gan.noise(n, seed=seed), []
        for s in range(1, args.draws + 1):
            a, b = harness.halves(n, seed=s, total=len(data))
            r = reference(data, EvalConfig(), x=data.x[a], y=data.y[a])
            x = gan.generate(z, eval_labels(n, K, r, seed) if K else None)  # the protocol's draw, this half's class mix
            v.append(evaluate(x, r)["fid"] / evaluate(data.x[b], r)["fid"])
        print(f"  {args.draws} other reference halves (the protocol's draw, its labels): {_summary(v)}", flush=True)
        harness.record("eval_noise", {"checkpoint": str(ck), "step": gan.step, "varied": "reference halves",
                                      "ratios": v}, args)


if __name__ == "__main__":
    main()
