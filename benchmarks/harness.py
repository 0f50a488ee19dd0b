"""The one harness every benchmark uses: the machine header, launching a training run, the mnist5k
evaluation protocol, and appending a result row to ``benchmarks/results/<benchmark>.jsonl``.

A benchmark module then holds only what it measures::

    from . import harness
    args = harness.parser(__doc__, ...).parse_args()
    print(harness.header())
    run = harness.train("mnist-conv", root / "r", seed=0, max_seconds=120)
    harness.record("speedrun", {"preset": "mnist-conv", **harness.MnistScorer()(run.dir)}, args)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Sequence

import torch

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


# --- the machine ------------------------------------------------------------------------------------------

def _cpu() -> "tuple[str, str]":
    model, vendor = platform.processor() or platform.machine(), "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return model, vendor


@functools.lru_cache(maxsize=None)
def commit() -> str:
    """The checkout's short commit when the process first asks (a benchmark's code is what it started with, even
    if the checkout moves during a long run), with '+dirty' when tracked files other than the result rows differ
    from it (a row appended earlier does not dirty the next); 'unknown' outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)benchmarks/results"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> Dict[str, Any]:
    """Where and when a row was measured: the fields every result row carries."""
    model, vendor = _cpu()
    return {"date": time.strftime("%Y-%m-%d"), "time": time.strftime("%H:%M"), "host": platform.node(),
            "cpu": model, "vendor": vendor, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__.split("+")[0], "python": platform.python_version(), "commit": commit()}


def header(extra: str = "") -> str:
    """One comment line naming the machine, for a printed table."""
    m = machine()
    return (f"# {m['date']} {m['time']}, {m['cpu']} ({m['vendor']}), {m['cores']} cores, {m['threads']} threads, "
            f"torch {m['torch']}, python {m['python']}, commit {m['commit']}" + (f"; {extra}" if extra else ""))


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """fp32 FLOP/s of the best of ``repeats`` n×n matrix products on this host now (speed drifts by the
    hour: measure it beside the rows it explains)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best


# --- command line and results --------------------------------------------------------------------------

def parser(doc: str) -> argparse.ArgumentParser:
    """The benchmark's parser, with the options every benchmark shares."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-record", dest="record", action="store_false",
                   help="print only; append no row to benchmarks/results/")
    return p


def curve_parser(doc: str, budgets: Iterable[float], n: int, unit: str) -> argparse.ArgumentParser:
    """:func:`parser` with the options of a benchmark that trains at budgets of seconds and scores ``n`` samples:
    --budgets, --seeds, --n, --set, --keep, --table, --plot."""
    p = parser(doc)
    p.add_argument("--budgets", default=",".join(map(str, budgets)), help="seconds, comma-separated")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated")
    p.add_argument("--n", type=int, default=n, help=f"{unit} per score (default {n:,})")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--keep", help="keep the run dirs under this folder")
    p.add_argument("--table", action="store_true", help="print the table from saved rows and exit")
    p.add_argument("--plot", type=Path, help="with --table: draw the curve to this PNG")
    return p


def show_table(args: argparse.Namespace, rows: list, table, plot) -> bool:
    """With --table: print ``table(rows)`` (and, with --plot, draw ``plot(rows, path)``); whether it did."""
    if not args.table:
        return False
    print(table(rows))
    if args.plot:
        plot(rows, args.plot)
    return True


def record(benchmark: str, row: Dict[str, Any], args: Optional[argparse.Namespace] = None,
           results: Path = RESULTS) -> Dict[str, Any]:
    """Append ``row`` with the machine's fields to ``results/<benchmark>.jsonl`` (unless ``--no-record``);
    return the full row."""
    full = {"benchmark": benchmark, **machine(), **row}
    if args is None or getattr(args, "record", True):
        results.mkdir(parents=True, exist_ok=True)
        with open(results / f"{benchmark}.jsonl", "a") as f:
            f.write(json.dumps(full) + "\n")
    return full


def rows(benchmark: str, results: Path = RESULTS) -> list:
    """Every row of ``results/<benchmark>.jsonl``, oldest first."""
    path = results / f"{benchmark}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


# --- launching a run --------------------------------------------------------------------------------------

def run_dir_name(preset: str, sets: Iterable[str], *parts: object) -> str:
    """``PRESET[-KEY_VALUE...]-PART...``: each ``--set KEY=VALUE`` lever names its own run dir, so runs of two
    levers kept under one folder do not collide (ganforge refuses to start a new run in a used run dir)."""
    lever = "".join(f"-{re.sub(r'[^A-Za-z0-9.]+', '_', item)}" for item in sets)
    return "-".join([f"{preset}{lever}", *map(str, parts)])


def train(preset: Optional[str], run_dir: Path, sets: Sequence[str] = (), seed: Optional[int] = None,
          max_seconds: Optional[float] = None, steps: Optional[int] = None, data: Optional[str] = None,
          threads: Optional[int] = None, extra: Sequence[str] = (), check: bool = True):
    """Train in a fresh process, as a user's ``ganforge train`` does (``preset`` None: the default); return
    (the :class:`ganforge.Run` from disk, wall seconds from process start to exit). ``threads`` sets the
    child's torch threads (OMP_NUM_THREADS)."""
    import ganforge

    cmd = [sys.executable, "-m", "ganforge", "train", "--run-dir", str(run_dir), "--quiet"]
    for flag, value in (("--preset", preset), ("--seed", seed), ("--max-seconds", max_seconds),
                        ("--steps", steps), ("--data", data)):
        if value is not None:
            cmd += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    for item in sets:
        cmd += ["--set", item]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads else {})}
    t0 = time.monotonic()
    p = subprocess.run([*cmd, *extra], env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
    return ganforge.Run(run_dir), wall


def budget_checkpoints(run_dir: Path, budgets: Iterable[float]) -> list:
    """[(budget, step, seconds, checkpoint path)]: the last checkpoint trained within each budget, from the
    run's log lines (the final checkpoint counts for the largest budget: the clock is checked after each step).
    A run whose schedule does not depend on its budget gives the whole curve this way."""
    lines = [json.loads(t) for t in (run_dir / "metrics.jsonl").read_text().splitlines() if t.strip()]
    elapsed = {r["step"]: r["elapsed_s"] for r in lines if r.get("kind") == "train" and "elapsed_s" in r}
    ckpts = sorted((int(p.stem.split("-")[1]), p) for p in (run_dir / "checkpoints").glob("step-*.pt"))
    budgets = list(budgets)
    out = []
    for b in budgets:
        fits = [(s, p) for s, p in ckpts if elapsed.get(s, float("inf")) <= b + (5 if b == max(budgets) else 0)]
        if fits:
            out.append((b, fits[-1][0], round(elapsed[fits[-1][0]], 1), fits[-1][1]))
    return out


def newest(rows: list, keep=None, longest: bool = False) -> list:
    """A headline's rows: those ``keep`` accepts (all by default) of the newest date; with ``longest``, of them
    only those at the longest budget (rows without a budget, floors and baselines, stay)."""
    rows = [r for r in rows if keep is None or keep(r)]
    last = max((r["date"] for r in rows), default=None)
    mine = [r for r in rows if r["date"] == last]
    if not longest:
        return mine
    top = max((r.get("budget") or 0 for r in mine), default=0)
    return [r for r in mine if (r.get("budget") or top) == top]


def cpu_label(row: Dict[str, Any]) -> str:
    """The row's CPU in two words ("Intel Xeon", "AMD EPYC"), for tables that keep hosts apart."""
    words = re.sub(r"\((R|TM)\)|\b(Processor|CPU)\b|@.*", " ", row.get("cpu") or "").split()
    return " ".join(words[:2]) or "-"


def budget_groups(rows: list, group: str = "model", also: Sequence[str] = ()) -> list:
    """[(group value, budget, CPU, its rows, seeds)] for a table of rows averaged over seeds: the rows without a
    budget (floors, baselines) first, then by group, budget, CPU and the ``also`` fields. Rows with a budget
    on different CPUs are kept apart (a minute buys a different number of steps on each host; CPU is their
    :func:`cpu_label`, "-" for rows without a budget), and so are rows that differ in an ``also`` field (e.g.
    ``n``); seeds counts distinct seeds (a seed measured twice, as a repeat, is one seed), "-" for rows without
    a budget."""
    def key(r):
        return (r[group], r.get("budget"), cpu_label(r) if r.get("budget") else "-", *(r.get(f) for f in also))

    keys = sorted({key(r) for r in rows}, key=lambda k: (k[1] is not None, k[0], k[1] or 0, k[2],
                                                          *(x or 0 for x in k[3:])))
    out = []
    for k in keys:
        rs = [r for r in rows if key(r) == k]
        out.append((k[0], k[1], k[2], rs, len({r.get("seed") for r in rs}) if k[1] else "-"))
    return out


def budget_curves(rows: list, group: str, value: str, ylabel: str, label=str):
    """A figure of the mean ``value`` against minutes of training, a line per ``group`` (rows with a budget; a
    line per group and CPU where the rows come from several):
    (fig, ax), for the caller to add its reference lines and hand to :func:`save_curves`."""
    import statistics

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    lines: Dict[tuple, list] = {}  # (group, CPU) -> [(budget, mean value)], budgets ascending
    for g, b, cpu, rs, _ in budget_groups([r for r in rows if r.get("budget")], group):
        lines.setdefault((g, cpu), []).append((b, statistics.mean(r[value] for r in rs)))
    several = len({cpu for _, cpu in lines}) > 1
    for (g, cpu), points in sorted(lines.items()):
        ax.plot([b / 60 for b, _ in points], [v for _, v in points], "o-",
                label=label(g) + (f" ({cpu})" if several else ""))
    ax.set_xlabel("minutes of training (2 CPU cores)")
    ax.set_ylabel(ylabel)
    return fig, ax


def save_curves(fig, ax, path: Path) -> None:
    """The legend below the axes, long lever names wrapped, so that it never covers the curves."""
    import textwrap

    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, [textwrap.fill(x, 90) for x in labels], fontsize=7, loc="upper left",
              bbox_to_anchor=(0, -0.2))
    fig.savefig(path, dpi=110, bbox_inches="tight")


def final_metrics(run) -> Dict[str, Any]:
    """The numbers of a run's last evaluation line (toy runs: its final score)."""
    evals = [m for m in run.metrics if m.get("kind") == "eval"]
    return {k: v for k, v in (evals[-1] if evals else {}).items() if k not in ("kind", "step", "epoch")}


# --- the mnist5k protocol ----------------------------------------------------------------------------------

N_HALF = 2500  # images on each side: half of mnist5k


def halves(n: int = N_HALF, seed: int = 0, total: int = 5000):
    """The protocol's two fixed, disjoint halves of mnist5k (sorted index tensors): A is the reference, B
    the real-vs-real floor's other side."""
    perm = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    return perm[:n].sort().values, perm[n: 2 * n].sort().values


class MnistScorer:
    """n generated images (the fixed evaluation noise; a conditional G in the reference half's class
    proportions) against half A of mnist5k on the domain classifier's features at the generator's image
    size; the floor scores half B against A. ``__call__(run_dir)`` → the row (fid, floor, ratio, precision,
    recall, modes, kl_modes, and per-class accuracy of ``--class K`` samples for conditional runs)."""

    def __init__(self, n: int = N_HALF, class_n: int = 500, labels: str = "matched") -> None:
        self.n, self.class_n, self.labels, self.refs = n, class_n, labels, {}
        self.a, self.b = halves(n)

    def floor_and_ref(self, size: int, channels: int = 1):
        from ganforge.config import DataConfig, EvalConfig
        from ganforge.data import load_dataset
        from ganforge.metrics import evaluate, reference

        if (size, channels) not in self.refs:
            data = load_dataset(DataConfig(image_size=size, channels=channels), verbose=False)
            ref = reference(data, EvalConfig(), verbose=False, x=data.x[self.a], y=data.y[self.a])
            self.refs[size, channels] = ref, evaluate(data.x[self.b], ref)
        return self.refs[size, channels]

    def samples(self, gan) -> tuple:
        """(the n scored samples in [-1, 1], the reference, the floor's numbers)."""
        from ganforge.config import EvalConfig
        from ganforge.metrics import eval_labels

        seed = EvalConfig().seed
        ref, floor = self.floor_and_ref(gan.data_shape[-1], gan.data_shape[0])
        y = None
        if gan.n_classes:
            y = eval_labels(self.n, gan.n_classes, ref, seed) if self.labels == "matched" else \
                gan.labels(self.n, None, seed)
        return gan.generate(gan.noise(self.n, seed=seed), y), ref, floor

    def __call__(self, run_dir: Path) -> Dict[str, Any]:
        import ganforge
        from ganforge.data import from_unit
        from ganforge.metrics import evaluate

        gan = ganforge.load(run_dir)
        x, ref, floor = self.samples(gan)
        found = evaluate(x, ref)
        row = {"fid": found["fid"], "floor": floor["fid"], "ratio": found["fid"] / floor["fid"],
               "precision": found["precision"], "recall": found["recall"], "modes": found["modes_covered"],
               "kl_modes": found["kl_modes"], "checkpoint": gan.source.name, "step": gan.step}
        if gan.n_classes:  # sample --class K, read by the domain classifier
            hits = [float((ref.extractor(from_unit(gan.sample(self.class_n, seed=K, labels=K)))["probs"].argmax(1)
                           == K).double().mean()) for K in range(gan.n_classes)]
            row["class_acc"] = [round(h, 3) for h in hits]
            row["worst_class_acc"], row["class_n"], row["labels"] = min(hits), self.class_n, self.labels
        return row
