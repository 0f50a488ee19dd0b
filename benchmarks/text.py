"""Text: the `chars` preset (Gulrajani et al. 2017's character GAN) against the baselines a user would pick, on
32-character windows scored against a text's held-out last tenth: character 1- to 4-gram Jensen-Shannon
divergence, the share of words found in the training text, novelty; at budgets of CPU minutes.

    python -m benchmarks.text --data input.txt --budgets 300,900,1800 --seeds 0        # GAN, GRU, floors
    python -m benchmarks.text --data input.txt --budgets 300 --set model.widths=[128]  # a lever
    python -m benchmarks.text --table

`--data` is any UTF-8 file (the rows: tiny Shakespeare, karpathy/char-rnn's data/tinyshakespeare/input.txt) or
`tinyshakespeare` under `--root`.

Protocol. The GAN: one run per (lever, seed), `ganforge train --preset chars --data D --max-seconds T`, T the
largest budget, a checkpoint every 100 steps; each budget's last checkpoint draws `--n` (10,000) sequences of
the evaluation noise (seed 1234), scored by `ganforge.metrics.text` against the held-out tenth. The GRU: a
maximum-likelihood character model (embedding 64, one GRU layer of 512, Adam 2e-3, batch 64 windows of 64
characters) trained in this process for the same wall-clock budgets, sampled at temperature 1 for 64
characters from an empty state, the last 32 kept. The 3-gram Markov chain: counts of the training text,
sampled the same way. The floor: `--n` windows of the training text (a perfect model of the training text;
novelty 0, they are copies); beside it windows of the held-out text itself (drawn from the reference: a bound
no model of the training text reaches) and uniformly random characters. Every sampler writes 32-character
sequences, so every row reads the same scorer.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from . import harness

NAME = "text"
BUDGETS = (300, 900, 1800)
CHECKPOINT_EVERY = 100
LENGTH, BURN_IN = 32, 32
HEADLINE = ("model", "budget", "seed", "step", "js_4", "in_vocab", "novelty")
HEADLINE_NOTE = "the newest day's rows at the longest budget, beside the floor and the baselines"


def headline(rows: list) -> list:
    return harness.newest(rows, longest=True)


def load(data: str, root: str):
    from ganforge.config import DataConfig
    from ganforge.data import load_dataset

    return load_dataset(DataConfig(name=data, root=root, seq_len=LENGTH), verbose=False)


def markov(text: str, order: int, n: int, seed: int) -> list:
    """``n`` sequences of a character ``order``-gram chain (counts of ``text``): a random context of the text,
    then BURN_IN + LENGTH - order characters, the last LENGTH kept."""
    import random
    from collections import Counter, defaultdict

    k = order - 1
    table = defaultdict(Counter)
    for i in range(len(text) - k):
        table[text[i:i + k]][text[i + k]] += 1
    choices = {c: (list(t), list(t.values())) for c, t in table.items()}
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        start = rng.randrange(len(text) - k)
        s = text[start:start + k]
        while len(s) < BURN_IN + LENGTH:
            chars, weights = choices.get(s[-k:], choices[text[:k]])
            s += rng.choices(chars, weights)[0]
        out.append(s[-LENGTH:])
    return out


def uniform(alphabet: str, n: int, seed: int) -> list:
    import random

    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(LENGTH)) for _ in range(n)]


class GRU:
    """The maximum-likelihood baseline: a character GRU language model."""

    def __init__(self, vocab: int, seed: int, hidden: int = 512) -> None:
        import torch
        from torch import nn

        torch.manual_seed(seed)
        self.embed, self.rnn, self.head = nn.Embedding(vocab, 64), nn.GRU(64, hidden, batch_first=True), \
            nn.Linear(hidden, vocab)
        self.vocab, self.params = vocab, [p for m in (self.embed, self.rnn, self.head) for p in m.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=2e-3)

    def step(self, codes, batch: int = 64, length: int = 64) -> float:
        import torch
        import torch.nn.functional as F

        start = torch.randint(len(codes) - length - 1, (batch,))
        x = codes[start[:, None] + torch.arange(length + 1)]
        h, _ = self.rnn(self.embed(x[:, :-1]))
        loss = F.cross_entropy(self.head(h).reshape(-1, self.vocab), x[:, 1:].reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        return loss.item()

    def sample(self, alphabet: str, n: int, seed: int, first) -> list:
        """``n`` sequences: the first character from the text's unigram frequencies ``first``, then the model at
        temperature 1; BURN_IN + LENGTH characters, the last LENGTH kept."""
        import torch

        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            c = torch.multinomial(first, n, replacement=True, generator=gen)
            out, h = [c], None
            for _ in range(BURN_IN + LENGTH - 1):
                o, h = self.rnn(self.embed(c[:, None]), h)
                c = torch.multinomial(torch.softmax(self.head(o[:, -1]), 1), 1, generator=gen)[:, 0]
                out.append(c)
        codes = torch.stack(out, 1)[:, -LENGTH:].tolist()
        return ["".join(alphabet[i] for i in row) for row in codes]


def gru_curve(data, budgets, n: int, seed: int, ref) -> list:
    """The GRU trained for max(budgets) seconds, scored at each budget as it passes."""
    import torch

    model, codes = GRU(len(data.alphabet), seed), data.codes
    first = torch.bincount(codes, minlength=len(data.alphabet)).float()
    out, steps, pending, t0, train_s = [], 0, sorted(budgets), time.monotonic(), 0.0
    while pending:
        model.step(codes)
        steps += 1
        train_s = time.monotonic() - t0
        if train_s >= pending[0]:
            b = pending.pop(0)
            pause = time.monotonic()
            samples = model.sample(data.alphabet, n, 1234, first)
            out.append({"model": "GRU (maximum likelihood)", "seed": seed, "budget": b, "step": steps,
                        "seconds": round(train_s, 1), **ref.score(samples), "example": samples[:3]})
            t0 += time.monotonic() - pause  # scoring is outside the clock
            print(json.dumps({k: out[-1][k] for k in ("model", "budget", "step", "js_4", "in_vocab")}), flush=True)
    return out


def gan_curve(run_dir: Path, budgets, n: int, ref) -> list:
    import ganforge

    out = []
    for b, step, seconds, path in harness.budget_checkpoints(run_dir, budgets):
        gan = ganforge.load(path)
        samples = gan.text(gan.generate(gan.noise(n, seed=1234)))
        out.append({"budget": b, "step": step, "seconds": seconds, **ref.score(samples), "example": samples[:3]})
    return out


def table(rows: list) -> str:
    out = ["| model | budget (min) | CPU | seeds | steps | JS-1 | JS-2 | JS-3 | JS-4 mean (min-max) | words in "
           "training vocabulary | novelty |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m, b, cpu, rs, seeds in harness.budget_groups(rows):
        js4 = [r["js_4"] for r in rs]
        mean = {k: statistics.mean(r[k] for r in rs) for k in ("js_1", "js_2", "js_3", "in_vocab", "novelty")}
        steps = f"{statistics.mean(r['step'] for r in rs):,.0f}" if b else "-"
        out.append(f"| {m} | {f'{b / 60:g}' if b else '-'} | {cpu} | {seeds} | {steps} | {mean['js_1']:.3f} | "
                   f"{mean['js_2']:.3f} | {mean['js_3']:.3f} | {statistics.mean(js4):.3f} ({min(js4):.3f}-"
                   f"{max(js4):.3f}) | {mean['in_vocab']:.1%} | {mean['novelty']:.1%} |")
    return "\n".join(out)


summary = table  # benchmarks/README.md shows every row this way

def plot(rows: list, path: Path) -> None:
    fig, ax = harness.budget_curves(rows, "model", "js_4", "4-gram JS vs held-out text")
    for r in rows:
        if not r.get("budget"):
            ax.axhline(r["js_4"], ls=":", lw=1, color="grey")
            ax.annotate(r["model"], (0, r["js_4"]), fontsize=7, color="grey", va="bottom")
    harness.save_curves(fig, ax, path)


def main() -> None:
    ap = harness.curve_parser(__doc__, BUDGETS, 10_000, "sequences")
    ap.add_argument("--data", default="tinyshakespeare", help="a UTF-8 file, or tinyshakespeare (under --root)")
    ap.add_argument("--root", default="data")
    ap.add_argument("--only", default="gan,gru,floor", help="which of gan, gru, floor (floor: training and held-out "
                                                           "windows, the 3-gram chain, random characters)")
    args = ap.parse_args()
    if harness.show_table(args, harness.rows(NAME), table, plot):
        return
    from ganforge.metrics.text import text_reference, windows

    budgets = [float(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    only = set(args.only.split(","))
    print(harness.header(f"budgets {budgets}, seeds {seeds}, n {args.n}, data {args.data}") + "\n", flush=True)
    data = load(args.data, args.root)
    ref = text_reference(data)
    common = {"n": args.n, "data": Path(args.data).name, "seq_len": LENGTH}
    rows = []

    def keep(row):
        rows.append(harness.record(NAME, {**row, **common}, args))
        print(json.dumps({k: v for k, v in rows[-1].items() if k in ("model", "budget", "seed", "step", "js_4",
                                                                       "in_vocab", "novelty")}), flush=True)

    if "floor" in only:
        keep({"model": "training text (floor)", **ref.score(windows(data.train_text, args.n, LENGTH, 1234))})
        keep({"model": "held-out text itself (bound)", **ref.score(windows(data.held, args.n, LENGTH, 1234))})
        keep({"model": "3-gram Markov chain", **ref.score(markov(data.train_text, 3, args.n, 1234))})
        keep({"model": "uniformly random characters", **ref.score(uniform(data.alphabet, args.n, 1234))})
    label = "chars" + ("" if not args.sets else " " + " ".join(args.sets))
    for s in seeds:
        if "gru" in only:
            for row in gru_curve(data, budgets, args.n, s, ref):
                keep(row)
        if "gan" in only:
            with tempfile.TemporaryDirectory() as tmp:
                run_dir = Path(args.keep or tmp) / harness.run_dir_name("chars", args.sets, s)
                harness.train("chars", run_dir, [*args.sets, f"log.checkpoint_every={CHECKPOINT_EVERY} steps",
                                                 "log.keep_checkpoints=10000", f"data.seq_len={LENGTH}"],
                              s, max_seconds=max(budgets), data=args.data,
                              extra=["--set", f"data.root={args.root}"])
                for row in gan_curve(run_dir, budgets, args.n, ref):
                    keep({"model": label, "sets": args.sets, "seed": s, **row})
    print(table(rows))


if __name__ == "__main__":
    main()
