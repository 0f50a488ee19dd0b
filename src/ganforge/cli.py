"""The ``ganforge`` command: argument parsing only; it calls the same functions as the Python API.

Exit codes: 0 success, 2 bad input (one line, no traceback), 1 anything else,
130/143 when a training run was stopped by SIGINT/SIGTERM (after writing a checkpoint).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from .errors import DivergedError, GanforgeError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"ganforge: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ganforge", description="Train the classic GANs on MNIST and toy distributions, "
                                             "sample from them, score them.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    sub.add_parser("presets", help="list the presets, one line each")

    t = sub.add_parser("train", help="train a GAN (default: the default preset on the embedded mnist5k)",
                       description="Train a GAN. Config layers, lowest first: preset, --config file, "
                                   "the flags below, --set overrides.")
    t.add_argument("--preset", help="base preset (see 'ganforge presets')")
    t.add_argument("--config", metavar="FILE.yaml", help="YAML file with the same tree as config.yaml")
    t.add_argument("--run-dir", metavar="DIR", help="where the run is written (default runs/<preset>-<timestamp>)")
    t.add_argument("--seed", type=int, help="random seed (config key seed)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="train for N passes over the data")
    budget.add_argument("--steps", type=int, help="train for N steps (a step: d_steps D updates, then g_steps G updates)")
    budget.add_argument("--max-seconds", type=float, metavar="S", help="train for S seconds of wall-clock time")
    t.add_argument("--data", metavar="NAME_OR_PATH",
                   help="mnist5k (embedded), mnist, fashion-mnist, gaussian-1d, ring-8, grid-25, or a folder "
                        "of images (png/jpg/jpeg/bmp/webp/gif, searched recursively; class sub-folders "
                        "give labels)")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default auto)")
    t.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set optim.lr_g=1e-4 --set loss=minimax")
    t.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its latest checkpoint")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="write samples of a trained generator as a PNG grid or a .npy array")
    s.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    s.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--out", required=True, metavar="FILE",
                   help=".png: a grid; .npy: float32 array N x C x H x W with values in [0, 1]")
    s.add_argument("--seed", type=int, help="seed for the noise (default: random)")
    s.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    x = sub.add_parser("export", help="write the generator (EMA weights when kept) as a .safetensors file",
                       description="Write the generator of a run (its latest good checkpoint) or of a checkpoint "
                                   "file as safetensors, with its config as JSON metadata; 'ganforge sample' and "
                                   "ganforge.load() read it without the run dir.")
    x.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    x.add_argument("--out", required=True, metavar="G.safetensors")

    e = sub.add_parser("eval", help="score a trained generator against its data; print JSON, append to eval.jsonl",
                       description="Score the run's latest checkpoint (or --checkpoint) with the metrics that "
                                   "apply to its data: toy 1-D (w1, ks, mean, std) and 2-D mixtures "
                                   "(hq_fraction, modes_covered, kl_modes). Image metrics are not implemented yet.")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--checkpoint", metavar="FILE", help="a checkpoint file instead of the run's latest")
    e.add_argument("--n", type=int, help="generated samples (default: the run's eval.n)")
    e.add_argument("--seed", type=int, help="seed of the evaluation noise (default: the run's eval.seed)")
    e.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    return p


def _cmd_presets(args: argparse.Namespace) -> int:
    from .config import DEFAULT_PRESET, load_preset, preset_names

    names = preset_names()
    width = max(len(n) for n in names)
    for name in names:
        mark = " (default)" if name == DEFAULT_PRESET else ""
        print(f"{name:<{width}}  {load_preset(name).get('description', '')}{mark}")
    return 0


def _train_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    from .config import parse_set

    flags: Dict[str, Any] = {}
    if args.seed is not None:
        flags["seed"] = args.seed
    # A budget given here replaces the preset's or file's (which may be in the other unit).
    if args.epochs is not None:
        flags.update({"train.epochs": args.epochs, "train.steps": None})
    if args.steps is not None:
        flags.update({"train.steps": args.steps, "train.epochs": None})
    if args.max_seconds is not None:  # a time budget alone: no epoch or step limit
        flags.update({"train.max_seconds": args.max_seconds, "train.epochs": None, "train.steps": None})
    if args.data is not None:
        flags["data.name"] = args.data
    if args.device is not None:
        flags["device"] = args.device
    if args.quiet:
        flags["log.progress"] = False
    flags.update(parse_set(args.sets))
    return flags


def _cmd_train(args: argparse.Namespace) -> int:
    from .api import Run
    from .config import load_run_config, resolve_config
    from .train import train

    overrides = _train_overrides(args)
    base = None
    if args.resume:
        if not args.run_dir:
            raise GanforgeError("--resume needs --run-dir naming the run to continue")
        base = load_run_config(Path(args.run_dir))
    cfg = resolve_config(args.preset, args.config, overrides, base=base)
    run: Run = train(cfg, args.run_dir, resume=args.resume)
    if run.rank != 0:  # torchrun: rank 0 speaks for the run
        return 128 + int(run.signal or signal.SIGINT) if run.stopped_by == "signal" else 0
    grid = run.last_grid
    how = {"budget": "done", "max_seconds": "time budget reached", "signal": "stopped by signal"}[run.stopped_by]
    print(f"{how}: step {run.step} (epoch {run.epoch:.1f}) in {run.elapsed:.1f} s; run dir {run.dir}"
          + (f"; last picture {grid}" if grid else ""))
    if run.final_metrics:
        print("metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in run.final_metrics.items()))
    if run.stopped_by == "signal":
        print(f"checkpoint written; continue with: ganforge train --run-dir {run.dir} --resume", file=sys.stderr)
        return 128 + int(run.signal or signal.SIGINT)
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from .api import load
    from .checkpoint import write_atomic
    from .report import save_grid

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npy"):
        raise GanforgeError(f"--out must end in .png or .npy, got '{out.name}'")
    if args.n < 1:
        raise GanforgeError(f"--n must be >= 1, got {args.n}")
    if out.is_dir():
        raise GanforgeError(f"--out {out} is a directory; give a file name ending in .png or .npy")
    if not out.parent.exists():
        raise GanforgeError(f"folder {out.parent} does not exist")
    gan = load(args.source, device=args.device)
    samples = gan.sample(args.n, seed=args.seed)
    if out.suffix.lower() == ".npy":
        write_atomic(out, lambda f: np.save(f, samples.numpy().astype(np.float32)))
    elif gan.is_image:
        save_grid(samples * 2 - 1, out)
    else:
        from .data import load_dataset
        from .report import save_toy_plot

        save_toy_plot(samples, load_dataset(gan.config.data), out, title=f"{args.n} samples, step {gan.step}")
    print(f"wrote {args.n} samples from {gan.source} (step {gan.step}) to {out}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import json

    from .api import load
    from .checkpoint import write_atomic
    from .data import load_dataset
    from .metrics import evaluate

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise GanforgeError(f"no such run dir: {run_dir}")
    gan = load(args.checkpoint or run_dir, device=args.device)
    n = args.n if args.n is not None else gan.config.eval.n
    seed = args.seed if args.seed is not None else gan.config.eval.seed
    if n < 2:
        raise GanforgeError(f"--n must be >= 2, got {n}")
    data = load_dataset(gan.config.data)
    found = evaluate(gan.sample(n, seed=seed), data)
    record = {"checkpoint": str(gan.source), "step": gan.step, "n": n, "seed": seed, **found}
    path = run_dir / "eval.jsonl"
    old = path.read_bytes() if path.exists() else b""
    write_atomic(path, lambda f: f.write(old + (json.dumps(record) + "\n").encode()))
    print(json.dumps(record))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .api import export

    out = Path(args.out)
    if not out.parent.exists():
        raise GanforgeError(f"folder {out.parent} does not exist")
    print(f"wrote {export(args.source, out)}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"presets": _cmd_presets, "train": _cmd_train, "sample": _cmd_sample, "eval": _cmd_eval,
                "export": _cmd_export}
    try:
        return commands[args.command](args)
    except GanforgeError as e:
        print(f"ganforge: error: {e}", file=sys.stderr)
        return 2
    except DivergedError as e:
        print(f"ganforge: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
