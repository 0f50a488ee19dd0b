"""Exports and sampling: file sizes and verification per architecture, onnxruntime vs ganforge sampling
throughput, the truncation trade (precision/recall at psi), and peak memory of a 100,000-image sample.

    python -m benchmarks.sampling --run RUN_DIR      # a trained run of the default preset
    python -m benchmarks.sampling                     # trains the default preset for --seconds first

Tables:
  1. export: for the run and for one freshly initialised run of each other architecture (1 step), each
     format's file size, max abs difference from ganforge's own samples, and export seconds;
  2. throughput: samples/s of ganforge (LoadedGAN.generate, batches of 1,000) and of onnxruntime on the
     exported G.onnx, 10,000 samples, alternating repeats, one thread pool each (the process's);
  3. truncation: FID, precision, recall (domain-classifier features, 10,000 samples, the run's eval
     seed) at psi = 0.5, 0.7, 1.0 and without truncation;
  4. memory: peak RSS of `ganforge sample RUN --n 100000 --out DIR/` and `--out x.npy`, in a fresh process.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import ganforge
from ganforge.config import resolve_config
from ganforge.exports import export_verified

from . import harness

OTHERS = {
    "mnist-mlp-bn (MLP, BatchNorm)": ("mnist-mlp-bn", {"data.limit": 64}),
    "mnist-dcgan (DCGAN 32 px)": ("mnist-dcgan", {"data.limit": 64}),
    "mnist-dcgan conditional": ("mnist-dcgan", {"data.limit": 64, "conditional": True}),
    "dcgan (64 px RGB)": ("dcgan", {}),
    "dcgan at 128 px": ("dcgan", {"data.image_size": 128}),
    "ring-8 (toy 2-D)": ("ring-8", {}),
    "gaussian-1d (toy 1-D)": ("gaussian-1d", {}),
}


ARGS = None  # the parsed command line, for harness.record


def export_table(runs: dict, root: Path) -> None:
    print(f"\n{'generator':<32} {'format':<12} {'MB':>7} {'max abs diff':>13} {'export s':>9}")
    for name, run_dir in runs.items():
        for ext in (".onnx", ".pt", ".safetensors"):
            t = time.perf_counter()
            path, diff = export_verified(run_dir, root / f"{abs(hash(name))}{ext}")
            secs = time.perf_counter() - t
            print(f"{name:<32} {ext:<12} {path.stat().st_size / 1e6:7.2f} {diff:13.2g} {secs:9.1f}", flush=True)
            harness.record("sampling", {"table": "export", "generator": name, "format": ext,
                                        "mb": path.stat().st_size / 1e6, "max_abs_diff": diff, "seconds": secs}, ARGS)


def throughput(run_dir: Path, onnx_path: Path, n: int = 10_000, repeats: int = 3) -> None:
    import onnxruntime as ort

    gan = ganforge.load(run_dir)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    z = gan.noise(n, seed=0)
    y = torch.arange(n) % gan.n_classes if gan.n_classes else None
    feeds = [{"z": z[i: i + 1000].numpy(), **({"y": y[i: i + 1000].numpy()} if y is not None else {})}
             for i in range(0, n, 1000)]
    got = {"ganforge": [], "onnxruntime": []}
    for _ in range(repeats):
        t = time.perf_counter()
        gan.generate(z, y, batch_size=1000)
        got["ganforge"].append(n / (time.perf_counter() - t))
        t = time.perf_counter()
        for feed in feeds:
            session.run(None, feed)
        got["onnxruntime"].append(n / (time.perf_counter() - t))
    print(f"\n{'sampler':<14} {'samples/s median (min-max)':>28}   ({n} samples, batches of 1,000, {repeats} rounds)")
    for k, v in got.items():
        print(f"{k:<14} {statistics.median(v):>12.0f} ({min(v):.0f}-{max(v):.0f})")
    ratio = statistics.median(got["onnxruntime"]) / statistics.median(got["ganforge"])
    print(f"ratio onnxruntime / ganforge: {ratio:.2f}")
    harness.record("sampling", {"table": "throughput", "n": n, **{f"{k}_samples_per_s": v for k, v in got.items()},
                                "onnxruntime_over_ganforge": ratio}, ARGS)


def truncation_table(run_dir: Path) -> None:
    import json
    print(f"\n{'truncation':<11} {'FID':>8} {'precision':>10} {'recall':>8} {'modes':>6}")
    for psi in (0.5, 0.7, 1.0, None):
        cmd = [sys.executable, "-m", "ganforge", "eval", str(run_dir), "--json", "--metrics", "fid,pr,modes"]
        out = subprocess.run(cmd + (["--truncation", str(psi)] if psi else []), capture_output=True, text=True,
                             check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{psi if psi else 'none':<11} {r['fid']:8.2f} {r['precision']:10.3f} {r['recall']:8.3f} "
              f"{r['modes_covered']:>6}", flush=True)


def peak_rss(run_dir: Path, root: Path) -> None:
    print(f"\n{'ganforge sample':<32} {'peak RSS MB':>12} {'seconds':>8}")
    for n in (1000, 100_000):
        for i, out in enumerate((str(root / f"folder{n}") + "/", str(root / f"x{n}.npy"))):
            probe = ("import resource, subprocess, sys, time; t = time.time(); "
                     f"subprocess.run([sys.executable, '-m', 'ganforge', 'sample', {str(run_dir)!r}, '--n', '{n}', "
                     f"'--seed', '0', '--out', {out!r}], check=True, capture_output=True); "
                     "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.time() - t)")
            rss, secs = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                       check=True).stdout.split()
            label = f"--n {n} --out " + ("DIR/" if i == 0 else "x.npy")
            print(f"{label:<32} {float(rss):12.0f} {float(secs):8.1f}", flush=True)


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--run", help="a trained run dir (default: train the default preset for --seconds)")
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--skip", default="", help="comma-separated tables to skip: export,throughput,truncation,memory")
    args = ap.parse_args()
    global ARGS
    ARGS = args
    skip = set(args.skip.split(","))
    print(harness.header())
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        run_dir = Path(args.run) if args.run else ganforge.train(
            resolve_config(overrides={"train.max_seconds": args.seconds, "log.progress": False}), root / "default").dir
        runs = {f"default ({ganforge.load(run_dir).config.preset})": run_dir}
        if "export" not in skip:
            from ganforge.data.examples import write_example_folder
            photos = write_example_folder(root / "photos")
            quick = {"train.batch_size": 8, "train.epochs": None, "train.steps": 1, "log.progress": False,
                     "eval.every": "off"}
            for name, (preset, sets) in OTHERS.items():
                extra = {"data.name": str(photos)} if preset == "dcgan" else {}
                runs[name] = ganforge.train(resolve_config(preset, overrides={**quick, **extra, **sets}),
                                            root / f"r{len(runs)}").dir
            export_table(runs, root)
        if "throughput" not in skip:
            throughput(run_dir, export_verified(run_dir, root / "G.onnx")[0])
        if "truncation" not in skip:
            truncation_table(run_dir)
        if "memory" not in skip:
            peak_rss(run_dir, root)


if __name__ == "__main__":
    main()
