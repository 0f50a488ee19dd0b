"""Training speed of the `dcgan` preset at 64 px: one process, 2 processes on gloo (CPU), and CUDA when present.

    python -m benchmarks.dcgan                 # about 3 minutes on 2 CPU cores
    python -m benchmarks.dcgan --steps 50      # more steps per measurement (GPU machines)

Every configuration runs `ganforge train --preset dcgan` as its own process (torchrun for 2 processes) on
a folder of 64 px pictures built from images inside matplotlib, for 2 × --steps steps: the first half
warms up, img/s is the second half's (real images seen by D per second, all processes together, as
logged in metrics.jsonl). Ratios are against the single CPU process measured in the same run.
Prints a Markdown table; copy it into benchmarks/README.md with the date and machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ganforge.data.examples import write_example_folder

from . import harness


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _img_per_s(folder: Path, out: Path, steps: int, batch: int, procs: int, device: str, threads: int) -> float:
    sets = {"train.batch_size": batch, "log.every": steps, "log.sample_every": "100000 steps", "eval.every": "off",
            "log.checkpoint_every": "100000 steps", "on_nan": "stop", "data.workers": 0}
    args = ["-m", "ganforge", "train", "--preset", "dcgan", "--data", str(folder), "--steps", str(2 * steps),
            "--device", device, "-q", "--run-dir", str(out)] + [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    if procs > 1:
        args = ["-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--master_port", str(_free_port())] + args
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, *args], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "train"][-1]["img_per_s"]


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--steps", type=int, default=8, help="measured steps per configuration (after as many warm-up)")
    p.add_argument("--batch", type=int, default=128, help="per-process batch (the preset's is 128)")
    args = p.parse_args()
    cores = os.cpu_count() or 1
    print(harness.header(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU") + "\n")
    print("| device | processes | threads/process | batch per process | effective batch | img/s | vs 1 CPU process |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_example_folder(Path(tmp) / "images", n_photo=384, n_drawing=128)
        configs = [("cpu", 1, cores, args.batch), ("cpu", 2, max(1, cores // 2), args.batch),
                   ("cpu", 2, max(1, cores // 2), args.batch // 2)]
        if torch.cuda.is_available():
            configs.append(("cuda", 1, cores, args.batch))
            if torch.cuda.device_count() > 1:
                configs.append(("cuda", torch.cuda.device_count(), 1, args.batch))
        base = None
        for i, (device, procs, threads, batch) in enumerate(configs):
            rate = _img_per_s(folder, Path(tmp) / f"run{i}", args.steps, batch, procs, device, threads)
            base = base or rate
            print(f"| {device} | {procs} | {threads} | {batch} | {batch * procs} | {rate:.0f} | {rate / base:.2f}x |",
                  flush=True)
            harness.record("dcgan", {"device": device, "processes": procs, "threads_per_process": threads,
                                     "batch": batch, "img_per_s": rate, "vs_one_cpu_process": rate / base}, args)


if __name__ == "__main__":
    main()
