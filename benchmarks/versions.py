"""Training throughput of this working tree against another git revision, measured in one run.

    python -m benchmarks.versions --ref 1f2a816                    # the four presets, 3 rounds
    python -m benchmarks.versions --ref main --presets mnist-mlp --repeats 5

For a change that must not slow the loop down (a refactor), this times ``ganforge.train`` — whole
steps, the duties around them included, warm-up excluded — for the code at ``--ref`` (checked out into
a temporary worktree) and for the working tree, alternating ref, tree, ref, tree, ... in fresh
processes on the same data and settings, so the host's drift hits both alike. It prints median and
min-max img/s of each and the ratio of medians (tree / ref).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from . import harness
from .throughput import PRESETS, STEPS  # the same presets and step counts

ROOT = Path(__file__).resolve().parent.parent

_TIMER = r"""
import json, sys, tempfile, time
from pathlib import Path
import ganforge
from ganforge.config import resolve_config
preset, warm, measured, sets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
cfg = resolve_config(preset, overrides={**sets, "train.steps": warm + measured})
stamps = {}
def on_step(step, G, D):
    if step in (warm, warm + measured):
        stamps[step] = time.perf_counter()
with tempfile.TemporaryDirectory() as d:
    ganforge.train(cfg, Path(d) / "run", on_step=on_step)
print(json.dumps(measured * cfg.train.batch_size * cfg.d_steps / (stamps[warm + measured] - stamps[warm])))
"""

# the benchmark's settings: no in-training evaluation, no progress bar, the preset's logging otherwise
SETS = {"log.progress": False, "eval.every": "off", "train.epochs": None}


def img_per_s(src: Path, preset: str) -> float:
    warm, measured = STEPS[preset]
    sets = dict(SETS)
    if preset == "dcgan":
        sets["data.name"] = str(_example_folder())
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", _TIMER, preset, str(warm), str(measured), json.dumps(sets)],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{preset} at {src}: {out.stderr.strip()[-600:]}")
    return float(out.stdout.strip().splitlines()[-1])


def _example_folder() -> Path:
    """512 crops of matplotlib's sample pictures, as throughput.py uses."""
    folder = Path(tempfile.gettempdir()) / "ganforge-bench-photos-512"
    if not folder.is_dir():
        from ganforge.data.examples import write_example_folder
        write_example_folder(folder, n_photo=384, n_drawing=128)
    return folder


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--ref", required=True, help="the git revision to compare with (e.g. a commit before a refactor)")
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tree = Path(d) / "ref"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), args.ref], check=True)
        try:
            print(harness.header(f"ref {args.ref} vs working tree"))
            print(f"{'preset':<14} {'ref img/s (min-max)':>26} {'tree img/s (min-max)':>26} {'tree/ref':>9}")
            for preset in args.presets.split(","):
                got = {"ref": [], "tree": []}
                for _ in range(args.repeats):
                    got["ref"].append(img_per_s(tree / "src", preset))
                    got["tree"].append(img_per_s(ROOT / "src", preset))
                cells = [f"{statistics.median(v):9.0f} ({min(v):.0f}-{max(v):.0f})" for v in got.values()]
                ratio = statistics.median(got["tree"]) / statistics.median(got["ref"])
                print(f"{preset:<14} {cells[0]:>26} {cells[1]:>26} {ratio:9.3f}", flush=True)
                harness.record("versions", {"preset": preset, "ref": args.ref, "ref_img_per_s": got["ref"],
                                            "tree_img_per_s": got["tree"], "tree_over_ref": ratio}, args)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


if __name__ == "__main__":
    main()
