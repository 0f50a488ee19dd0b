"""Golden runs: seeded training runs whose bytes must not change when the code around the loop changes.

Each case trains a preset on a small budget with every duty active (metrics lines, grids, in-training
evaluation and best.pt, periodic checkpoints, a resume, a NaN rollback, two gloo processes) and
reduces the run directory to a digest: the SHA-256 of every grid, the metrics.jsonl lines without
their wall-clock fields, and a SHA-256 over every tensor and value of each checkpoint (the elapsed
time left out). ``tests/test_golden.py`` compares the short budgets with ``tests/golden/<env>.json``.

Floating-point results depend on the PyTorch build and the CPU's kernels, so goldens are stored per
environment (torch version, CPU capability and vendor, thread count 1); record them for a new one with

    python tests/golden.py --record            # short budgets (the test's)
    python tests/golden.py --record --long     # a few hundred steps each (checked by hand: --check --long)

and check a change with ``python tests/golden.py --check [--long]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict

import torch

HERE = Path(__file__).resolve().parent
WALL_CLOCK = ("img_per_s", "elapsed_s")  # the only fields of metrics.jsonl that may differ between runs

# name → (preset, overrides for the short budget, overrides for the long budget)
_QUIET = {"log.progress": False}
CASES: Dict[str, tuple] = {
    "mnist-mlp-tuned": ("mnist-mlp-tuned",
                        {"data.limit": 512, "train.batch_size": 32, "train.epochs": None, "train.steps": 48,
                         "log.every": 4, "log.sample_every": "16 steps", "log.checkpoint_every": "24 steps",
                         "eval.every": "auto", "eval.n_train": 200, "eval.n_ref": 512},
                        {"train.steps": 320, "log.sample_every": "80 steps", "log.checkpoint_every": "160 steps"}),
    "mnist-dcgan": ("mnist-dcgan",
                    {"data.limit": 256, "train.batch_size": 16, "train.epochs": None, "train.steps": 12,
                     "model.g_features": 8, "model.d_features": 8, "log.every": 2, "log.sample_every": "6 steps",
                     "log.checkpoint_every": "6 steps", "eval.every": "off"},
                    {"train.steps": 200, "log.sample_every": "50 steps", "log.checkpoint_every": "100 steps"}),
    "ring-8": ("ring-8",
               {"train.steps": 60, "log.every": 10, "log.sample_every": "20 steps", "log.checkpoint_every": "30 steps",
                "eval.n": 1000},
               {"train.steps": 600, "log.sample_every": "200 steps", "log.checkpoint_every": "300 steps"}),
    "gaussian-1d": ("gaussian-1d",
                    {"train.steps": 60, "train.epochs": None, "log.every": 10, "log.sample_every": "20 steps",
                     "log.checkpoint_every": "30 steps", "eval.n": 1000},
                    {"train.steps": 600, "log.sample_every": "200 steps", "log.checkpoint_every": "300 steps"}),
    # the stabilisers and the conditional path: k D-steps, g G-steps, lazy R1, DiffAugment, instance
    # noise, label smoothing, gradient clipping, real-image augmentation, class labels
    "stabilised-conditional": ("mnist-mlp",
                               {"data.limit": 256, "train.batch_size": 32, "train.steps": 16, "d_steps": 2,
                                "g_steps": 2, "r1": 1.0, "r1_every": 2, "diffaugment": "translation,cutout",
                                "instance_noise": 0.1, "instance_noise_steps": 10, "label_smoothing": 0.1,
                                "grad_clip": 5.0, "data.augment": True, "conditional": True, "ema": 0.9,
                                "log.every": 2, "log.sample_every": "8 steps", "log.checkpoint_every": "8 steps",
                                "eval.every": "off"},
                               {"train.steps": 160, "log.sample_every": "40 steps",
                                "log.checkpoint_every": "80 steps"}),
    "wgan-gp": ("mnist-mlp",
                {"data.limit": 256, "train.batch_size": 32, "train.steps": 12, "loss": "wgan-gp", "d_steps": 2,
                 "log.every": 2, "log.sample_every": "6 steps", "log.checkpoint_every": "6 steps",
                 "eval.every": "off"},
                {"train.steps": 120}),
    # the default preset (DCGAN at 28 px, EMA ramp-up) with a linear learning-rate decay over its steps
    "mnist-conv-linear": ("mnist-conv",
                          {"data.limit": 256, "train.batch_size": 16, "train.max_seconds": None, "train.steps": 12,
                           "model.g_features": 8, "model.d_features": 8, "optim.lr_schedule": "linear",
                           "log.every": 2, "log.sample_every": "6 steps", "log.checkpoint_every": "6 steps",
                           "eval.every": "off"},
                          {"train.steps": 200, "log.sample_every": "50 steps", "log.checkpoint_every": "100 steps"}),
    # resume: the first half, then --resume to the full budget (digest of the resumed run's files)
    "resume": ("mnist-mlp-tuned",
               {"data.limit": 256, "train.batch_size": 32, "train.epochs": None, "train.steps": 24,
                "log.every": 4, "log.sample_every": "8 steps", "log.checkpoint_every": "8 steps",
                "eval.every": "off"},
               {"train.steps": 200, "log.sample_every": "40 steps", "log.checkpoint_every": "40 steps"}),
    # NaN in D's weights after step 19: detected at the log line of step 20, rolled back to step 16
    "rollback": ("mnist-mlp",
                 {"data.limit": 256, "train.batch_size": 32, "train.steps": 40, "log.every": 4,
                  "log.checkpoint_every": "8 steps", "log.sample_every": "8 steps", "eval.every": "off"},
                 {"train.steps": 200}),
    # two gloo processes (DDP), mnist-dcgan with narrow nets
    "ddp-2": ("mnist-dcgan",
              {"data.limit": 128, "train.batch_size": 8, "train.epochs": None, "train.steps": 6,
               "model.g_features": 8, "model.d_features": 8, "log.every": 1, "log.sample_every": "2 steps",
               "log.checkpoint_every": "2 steps"},
              {"train.steps": 100, "log.every": 5, "log.sample_every": "50 steps", "log.checkpoint_every": "50 steps"}),
}


def cpu_vendor() -> str:
    """The CPU's vendor as the kernel reports it (GenuineIntel, AuthenticAMD, ...), or the platform's guess:
    oneDNN and MKL choose other kernels on other vendors' chips of the same ISA, and their sums round
    differently (an Intel AVX512 host did not reproduce one byte of the AMD AVX512 goldens)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> str:
    """The key goldens are stored under: what decides the floating-point results on CPU."""
    cap = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "unknown"
    return f"torch-{torch.__version__.split('+')[0]}-{platform.machine()}-{cap}-{cpu_vendor()}".lower()


def golden_file() -> Path:
    return HERE / "golden" / f"{environment()}.json"


def config_of(name: str, long: bool):
    from ganforge.config import resolve_config

    preset, short, longer = CASES[name]
    sets = {**_QUIET, **short, **(longer if long else {})}
    return resolve_config(preset, overrides=sets)


def _hash_value(h, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, dict):
        for k in sorted(value, key=str):
            h.update(f"K{k}".encode())
            _hash_value(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for v in value:
            _hash_value(h, v)
    else:
        h.update(repr(value).encode())


def _without_defaults(tree: Dict[str, Any], defaults: Dict[str, Any]) -> Dict[str, Any]:
    """The config keys whose values differ from ganforge's defaults (so a new key, added with a default
    that keeps the old behaviour, leaves the digests as they were)."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and isinstance(defaults.get(k), dict):
            v = _without_defaults(v, defaults[k])
            if v:
                out[k] = v
        elif k not in defaults or defaults[k] != v or k == "preset":  # the default preset's name changes
            out[k] = v
    return out


def checkpoint_digest(path: Path) -> str:
    from ganforge.config import Config

    state = torch.load(path, map_location="cpu", weights_only=True)
    state.pop("elapsed", None)  # wall-clock seconds
    if "config" in state:
        state["config"] = _without_defaults(state["config"], Config().to_dict())
    h = hashlib.sha256()
    _hash_value(h, state)
    return h.hexdigest()


def digest(run_dir: Path) -> Dict[str, Any]:
    """What must stay identical: grids, metrics lines without wall-clock fields, checkpoint contents."""
    lines = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        lines.append({k: v for k, v in record.items() if k not in WALL_CLOCK})
    grids = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((run_dir / "samples").glob("*.png"))}
    ckpts = {p.name: checkpoint_digest(p) for p in sorted((run_dir / "checkpoints").glob("*.pt"))}
    final = run_dir / "final.png"
    return {"metrics": lines, "grids": grids, "checkpoints": ckpts,
            "final": hashlib.sha256(final.read_bytes()).hexdigest() if final.exists() else None}


ANYWHERE = HERE / "golden" / "anywhere.json"
# The anywhere tier: numbers, not bytes, so any CPU and torch version is guarded. A seeded GAN run drifts
# from another CPU's rounding by a factor that grows with the steps; measured on one host between 1 and 2
# threads (another reduction order): the image cases' losses within 3e-2 relative after 12-48 steps, their
# weight norms within 2e-3, the 1-D toy GAN chaotic after 20 steps (x9). So: the first logged line within
# FIRST_RTOL, later lines and evaluation numbers within RTOL, the weight norms within NORM_RTOL (each with
# ATOL), and the toy cases only through their first TOY_LINES lines.
FIRST_RTOL, RTOL, NORM_RTOL, ATOL = 1e-3, 0.1, 0.02, 1e-4
TOY_CASES, TOY_LINES = ("gaussian-1d", "ring-8"), 2
LOSS_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")
DISCRETE = ("modes_covered", "modes_total")  # counts over a threshold: one sample may tip them


def numbers(run_dir: Path) -> Dict[str, Any]:
    """What must stay close anywhere: the losses and D's outputs of every logged step, the continuous
    numbers of every evaluation, and the L2 norm of G's, D's (and the EMA's) weights in the last checkpoint."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [[float(m[k]) for k in LOSS_KEYS] for m in lines if m.get("kind") == "train"]
    evals = [{k: float(v) for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
              and k not in ("step", "epoch", "seed", "n", "n_ref", *DISCRETE, *WALL_CLOCK)}
             for m in lines if m.get("kind") == "eval"]
    last = sorted((run_dir / "checkpoints").glob("step-*.pt"))[-1]
    state = torch.load(last, map_location="cpu", weights_only=True)
    norms = {net: float(torch.cat([t.double().flatten() for t in state[net].values() if t.is_floating_point()]).norm())
             for net in ("G", "D", "G_ema") if net in state}
    return {"train": train, "eval": evals, "norms": norms}


def far(name: str, got: Dict[str, Any], want: Dict[str, Any]) -> list:
    """The numbers of case ``name`` outside their tolerance (empty: close enough), as readable strings."""
    out = []

    def check(a, b, rtol, where):
        if not abs(a - b) <= ATOL + rtol * abs(b):  # NaN is never close
            out.append(f"{where}: {a:.6g} vs recorded {b:.6g} (rtol {rtol:g})")
    toy = name in TOY_CASES
    lines = want["train"][:TOY_LINES] if toy else want["train"]
    if len(got["train"]) < len(lines) or (not toy and len(got["train"]) != len(lines)):
        return [f"{len(got['train'])} logged lines, recorded {len(want['train'])}"]
    for i, (x, y) in enumerate(zip(got["train"], lines)):
        for key, a, b in zip(LOSS_KEYS, x, y):
            check(a, b, FIRST_RTOL if i == 0 else RTOL, f"train[{i}].{key}")
    if toy:
        return out
    if [sorted(e) for e in got["eval"]] != [sorted(e) for e in want["eval"]] or set(got["norms"]) != set(want["norms"]):
        return out + ["the evaluations or the checkpoint's networks differ in kind"]
    for i, (x, y) in enumerate(zip(got["eval"], want["eval"])):
        for key in y:
            check(x[key], y[key], RTOL, f"eval[{i}].{key}")
    for net in want["norms"]:
        check(got["norms"][net], want["norms"][net], NORM_RTOL, f"norm of {net}")
    return out


def poison_once(at: int):
    """An on_step hook that fills D's first weight with NaN after step ``at``, once."""
    done = []

    def hook(step, G, D):
        if step == at and not done:
            done.append(step)
            with torch.no_grad():
                next(D.parameters()).fill_(float("nan"))
    return hook


def _ddp_worker(rank: int, world: int, port: int, cfg, run_dir: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                       "RANK": str(rank), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    import ganforge
    ganforge.train(cfg, run_dir)


def run_case(name: str, out: Path, long: bool = False, threads: int = 1) -> Dict[str, Any]:
    """Train case ``name`` into ``out`` (one thread) and return its digest, with its numbers under "numbers"."""
    import ganforge

    cfg = config_of(name, long)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if name == "ddp-2":
            import torch.multiprocessing as mp
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            mp.spawn(_ddp_worker, args=(2, port, cfg, str(out)), nprocs=2)
        elif name == "resume":
            half = cfg.train.steps // 2
            ganforge.train(cfg.replace(**{"train.steps": half}), out)
            ganforge.train(cfg, out, resume=True)
        elif name == "rollback":
            ganforge.train(cfg, out, on_step=poison_once(19))
        else:
            ganforge.train(cfg, out)
    finally:
        torch.set_num_threads(before)
    return {**digest(out), "numbers": numbers(out)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", action="store_true", help="write the goldens of this environment")
    mode.add_argument("--check", action="store_true", help="compare with the recorded goldens")
    parser.add_argument("--long", action="store_true", help="the long budgets (a few hundred steps)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--anywhere", action="store_true",
                        help="the anywhere tier instead: record or check tests/golden/anywhere.json (short budgets)")
    parser.add_argument("--threads", type=int, default=1, help="threads of the runs (default 1, as recorded)")
    args = parser.parse_args()
    if args.anywhere:
        return anywhere(args.record, args.cases.split(","), args.threads)
    os.environ.setdefault("GANFORGE_CACHE", str(Path(tempfile.gettempdir()) / "ganforge-golden-cache"))
    path = golden_file()
    stored = json.loads(path.read_text()) if path.exists() else {}
    budget = "long" if args.long else "short"
    failed = []
    for name in args.cases.split(","):
        with tempfile.TemporaryDirectory() as d:
            got = run_case(name, Path(d) / "run", args.long)
        got.pop("numbers")
        if args.record:
            stored.setdefault(budget, {})[name] = got
            print(f"recorded {budget} {name}: {len(got['metrics'])} lines, {len(got['grids'])} grids, "
                  f"{len(got['checkpoints'])} checkpoints")
        else:
            want = stored.get(budget, {}).get(name)
            same = want == got
            print(f"{budget} {name}: {'identical' if same else 'DIFFERENT' if want else 'no golden'}")
            if not same:
                failed.append(name)
    if args.record:
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")
    return 1 if failed else 0


def anywhere(record: bool, cases, threads: int = 1) -> int:
    """Record (or check) the short cases' numbers in tests/golden/anywhere.json; print the largest drift."""
    stored = json.loads(ANYWHERE.read_text()) if ANYWHERE.exists() else {}
    failed = 0
    for name in cases:
        with tempfile.TemporaryDirectory() as d:
            got = run_case(name, Path(d) / "run", threads=threads)["numbers"]
        if record:
            stored[name] = got
            print(f"recorded anywhere {name} ({environment()})")
            continue
        bad = far(name, got, stored[name]) if name in stored else ["no recorded numbers"]
        failed += bool(bad)
        print(f"anywhere {name}: {'close' if not bad else 'FAR: ' + '; '.join(bad[:3])}"
              f"  (largest relative drift {_drift(got, stored.get(name)):.2e})")
    if record:
        ANYWHERE.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
        print(f"wrote {ANYWHERE}")
    return 1 if failed else 0


def _drift(got, want) -> float:
    """The largest |got - want| / max(|want|, 1e-3) over the first line's numbers (how close a run came)."""
    if want is None:
        return float("nan")
    return max(abs(a - b) / max(abs(b), 1e-3) for a, b in zip(got["train"][0], want["train"][0]))


if __name__ == "__main__":
    sys.exit(main())
