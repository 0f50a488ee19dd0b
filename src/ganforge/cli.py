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

from .errors import DivergedError, ExportMismatch, GanforgeError, StorageError


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

    s = sub.add_parser("sample", help="write samples of a trained generator: a PNG grid, a .npy array, or "
                                      "a folder of PNGs",
                       description="Samples of a run's generator: its latest good checkpoint, or checkpoints/best.pt "
                                   "when the run scored the latest and it came out worse (the command says so); "
                                   "or of a checkpoint file or an export, as named.")
    s.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    s.add_argument("--n", type=int, default=64, help="number of samples (with --class all: per class; default 64)")
    s.add_argument("--out", required=True, metavar="FILE_OR_DIR/",
                   help=".png: a grid; .npy: float32 array N x C x H x W with values in [0, 1]; a path ending in "
                        "'/' (or an existing folder): one PNG per sample, in one sub-folder per class for a "
                        "conditional run (torchvision's ImageFolder layout)")
    s.add_argument("--class", dest="cls", metavar="K|NAME|all",
                   help="conditional runs: samples of class K (its number or name), or 'all': --n of each class "
                        "(a grid has one row per class; arrays are in class order)")
    s.add_argument("--seed", type=int, help="seed for the noise (default: random, printed); sample i depends on "
                                            "(seed, i) only, so the same seed gives the same images for any --n")
    s.add_argument("--truncation", type=float, metavar="PSI",
                   help="truncation trick (Gaussian z): redraw coordinates with |z| > PSI; lower = cleaner, less "
                        "diverse samples (e.g. 0.7)")
    s.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    x = sub.add_parser("export", help="write the generator as ONNX, TorchScript or safetensors, verified",
                       description="Write the generator of a run (as sample picks it: the latest good checkpoint, "
                                   "or best.pt when the latest scored worse) or of a checkpoint "
                                   "file, EMA weights when kept, BatchNorm in eval mode: G.onnx (ONNX opset 18, "
                                   "needs pip install 'ganforge[onnx]'), G.pt (TorchScript, torch.jit.trace) - both "
                                   "take z (N x z_dim float32) and, conditional runs, y (N int64 class ids), and "
                                   "give images N x C x H x W in [0, 1] or toy samples N x D, dynamic batch, "
                                   "metadata inside - or G.safetensors (weights and config, for ganforge sample "
                                   "and ganforge.load). The written model is run on a fixed batch and compared "
                                   "with ganforge's own sampling; a max abs difference above 1e-4 writes nothing "
                                   "(exit 1).")
    x.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    x.add_argument("--out", required=True, metavar="G.onnx|G.pt|G.safetensors")

    e = sub.add_parser("eval", help="score a trained generator (or real data against itself); print a table, "
                                    "append to RUN_DIR/eval.jsonl",
                       description="Score the run's generator as sample picks it (the latest checkpoint, or best.pt "
                                   "when the latest scored worse; or --checkpoint) with the metrics that apply "
                                   "to its data: images - fid, kid, pr (precision/recall), dc (density/coverage), "
                                   "and on labelled data modes and cs (classifier score), on the features of a "
                                   "domain classifier trained on the data (cached) or of Inception-v3 from disk; "
                                   "toy 1-D data - w1, ks, mean, std; 2-D mixtures - hq_fraction, modes_covered, "
                                   "kl_modes. The noise is seeded, so the same checkpoint gives the same numbers; a "
                                   "conditional G gets seeded labels in the reference images' class proportions. "
                                   "--real-baseline scores one half of the data against the other: the floor a "
                                   "perfect generator would reach.")
    e.add_argument("run_dir", metavar="RUN_DIR", nargs="?", help="the run (optional with --real-baseline --data)")
    e.add_argument("--checkpoint", metavar="FILE", help="a checkpoint file instead of the run's latest")
    e.add_argument("--metrics", metavar="LIST",
                   help="comma-separated metrics (default: all that apply); conditional runs also take gan_train "
                        "(a classifier trained on --n generated images, its accuracy on the real data) and gan_test "
                        "(the domain classifier's accuracy on generated images of each class), asked for by name")
    e.add_argument("--n", type=int, help="generated samples (default: the run's eval.n, 10,000)")
    e.add_argument("--seed", type=int, help="seed of the evaluation noise (default: the run's eval.seed)")
    e.add_argument("--truncation", type=float, metavar="PSI",
                   help="score truncated samples (Gaussian z), to see the precision/recall trade in numbers")
    e.add_argument("--data", metavar="NAME_OR_PATH", help="with --real-baseline: the data (default: the run's)")
    e.add_argument("--real-baseline", action="store_true",
                   help="score half of the real data against the other half instead of a generator")
    e.add_argument("--features", choices=("classifier", "inception"),
                   help="image features (default: the run's eval.features): the domain classifier, or the standard "
                        "FID network (pip install 'ganforge[inception]')")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    e.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    fd = sub.add_parser("fid", help="FID (and KID, precision/recall) between two image sources",
                        description="FID between any two image sources: folders of images (recursive), .npy arrays "
                                    "N x C x H x W in [0, 1] (as ganforge sample writes them), or saved statistics "
                                    ".npz (mu, sigma). Features: the standard FID network (TF 2015-12-05 Inception "
                                    "pool3; pip install 'ganforge[inception]'), whose numbers compare with "
                                    "pytorch-fid, clean-fid and papers, or the domain classifier trained on A's "
                                    "class sub-folders.")
    fd.add_argument("a", metavar="A")
    fd.add_argument("b", metavar="B")
    fd.add_argument("--features", choices=("inception", "classifier"), default="inception")
    fd.add_argument("--weights", metavar="FILE", help="the FID network's file, where it is not the installed one")
    fd.add_argument("--save-stats", metavar="OUT.npz", help="write A's statistics (mu, sigma) for reuse")
    fd.add_argument("--json", action="store_true", help="print one JSON object instead of lines")

    pl = sub.add_parser("plot", help="draw RUN_DIR/curves.png: losses, D(x) and D(G(z)), metrics over steps",
                        description="Training curves from RUN_DIR/metrics.jsonl (works while the run goes on): "
                                    "G's and D's losses (smoothed, raw values faint), D(x) and D(G(z)), and one "
                                    "panel per evaluated metric; diagnostics events as dotted lines.")
    pl.add_argument("run_dir", metavar="RUN_DIR")
    pl.add_argument("--out", metavar="FILE.png", help="where to write (default RUN_DIR/curves.png)")

    an = sub.add_parser("animate", help="make RUN_DIR/progress.gif from the fixed-noise grids, in step order",
                        description="The run's fixed-noise pictures (samples/step-*.png) as an animation, each "
                                    "frame labelled with its step; the last frame is held.")
    an.add_argument("run_dir", metavar="RUN_DIR")
    an.add_argument("--out", metavar="FILE.gif|FILE.mp4",
                    help="default RUN_DIR/progress.gif; .mp4 needs imageio and imageio-ffmpeg")
    an.add_argument("--fps", type=float, default=4.0, help="frames per second (default 4)")

    it = sub.add_parser("interpolate", help="latent walks between random pairs of z, as a PNG grid or a GIF",
                        description="Walk G's latent space from z0 to z1 for --rows random pairs in --steps "
                                    "points. PNG: one row per walk; GIF: one frame per step, there and back. "
                                    "Toy runs: the walks drawn over the data's modes.")
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
                    help="walk between two real images (with --to): each is projected into z first (as 'ganforge "
                         "project' does), then one walk is drawn from A's projection to B's")
    it.add_argument("--to", dest="to_image", metavar="B.png", help="the other end, with --from")

    pj = sub.add_parser("project", help="find the z whose G(z) reproduces each of your images (GAN inversion)",
                        description="Project real images into the generator's latent space: for each image, "
                                    "batched Adam on z from the best random starts (stylegan2-ada projector's "
                                    "schedule), distance = pixel MSE (+ --features), a prior keeping z typical; "
                                    "conditional runs also find each image's class (--classes). "
                                    "Writes OUT/: latents.npy, classes.npy (conditional runs), the reconstructions "
                                    "(projected.npy for .npy input, else projected/<name>.png), grid.png (target | "
                                    "projection) and result.json (distances, settings). OUT must not exist or be "
                                    "empty; it is written in one piece.")
    pj.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    pj.add_argument("images", metavar="IMAGES", help="a folder of images (recursive), one image file, or a .npy "
                                                     "N x C x H x W in [0, 1]; other sizes are resized to the run's")
    _search_args(pj)

    ip = sub.add_parser("inpaint", help="fill the missing pixels of your images from the generator",
                        description="Semantic inpainting (Yeh et al. 2017): search z so that G(z) matches the known "
                                    "pixels (those near the hole weigh more; --realism adds D's realism as a prior), then "
                                    "Poisson-blend G(z) into the hole; known pixels come back as given. Writes OUT/: "
                                    "the filled images (filled.npy for .npy input, else filled/<name>.png), G(z) "
                                    "(generated), latents.npy, classes.npy (conditional runs), mask.npy, grid.png "
                                    "(masked input | G(z) | result | original, when the input has the hole's "
                                    "pixels) and result.json.")
    ip.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    ip.add_argument("images", metavar="IMAGES", help="as for project: a folder, an image file or a .npy")
    ip.add_argument("--mask", required=True, metavar="MASK",
                    help="1 = known, 0 = missing: a .npy N x 1 x H x W or 1 x 1 x H x W, an image (white = known), "
                         "or top-half, bottom-half, left-half, right-half (that half missing), center:K (a K x K "
                         "square missing), random:P (each pixel missing with probability P, seeded by --seed)")
    _search_args(ip, realism=True)

    rp = sub.add_parser("report", help="write RUN_DIR/report.html: samples, curves, metrics, diagnostics, timeline",
                        description="One self-contained static page (images embedded; no server, no network): "
                                    "the config, the final and best samples, the training curves, the metric "
                                    "table with the real-vs-real floor, diagnostics events and the timeline of "
                                    "grids. Open it from disk in any browser.")
    rp.add_argument("run_dir", metavar="RUN_DIR")
    rp.add_argument("--no-floor", action="store_true",
                    help="skip computing the real-vs-real floor (images: trains or loads the domain classifier)")
    return p


def _search_args(p: argparse.ArgumentParser, realism: bool = False) -> None:
    from .inverse import FEATURES

    p.add_argument("--out", required=True, metavar="OUT/", help="a new (or empty) folder for the results")
    p.add_argument("--steps", type=int, default=200, help="optimisation steps (default 200)")
    p.add_argument("--restarts", type=int, default=4,
                   help="random starts per image, the best of a pool of --pool; after a quarter of the steps only "
                        "the best goes on (default 4)")
    p.add_argument("--pool", type=int, default=32, help="random latents scored per image to pick the starts (default 32)")
    p.add_argument("--features", choices=FEATURES, default="pixel",
                   help="a distance added to pixel MSE: D's features (the run's discriminator) or the domain "
                        "classifier's; default pixel (none: on mnist5k they did not reconstruct better, at 2-3x "
                        "the time)")
    p.add_argument("--classes", choices=("auto", "classifier", "search"), default="auto",
                   help="conditional runs: how each image's class is found - the domain classifier's most likely "
                        "class, or trying every class on the pool (auto: the classifier when there is one and no pixel is missing)")
    if realism:
        p.add_argument("--realism", type=float, default=0.0,
                       help="weight of D's realism prior, Yeh et al.'s lambda (e.g. 0.003; default 0: on mnist5k it "
                            "did not clearly help and cost 1.5x the time)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random starts (default 0); the same seed gives "
                                                       "the same output")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _search_kw(args: argparse.Namespace) -> Dict[str, Any]:
    for name in ("steps", "restarts", "pool"):
        if getattr(args, name) < 1:
            raise GanforgeError(f"--{name} must be >= 1, got {getattr(args, name)}")
    kw = {"steps": args.steps, "restarts": args.restarts, "pool": args.pool, "features": args.features,
          "classes": args.classes, "seed": args.seed, "progress": not args.quiet}
    if getattr(args, "realism", None) is not None:
        if not args.realism >= 0:
            raise GanforgeError(f"--realism must be >= 0, got {args.realism}")
        kw["realism"] = args.realism
    return kw


def _image_gan(source: str, device: str = "cpu"):
    from .api import load

    gan = load(source, device=device)
    if gan.chosen:
        print(f"ganforge: {gan.chosen}")
    if not gan.is_image:
        raise GanforgeError(f"projection needs an image model; {source} was trained on the toy distribution "
                            f"'{gan.config.data.name}'")
    return gan


def _cmd_project(args: argparse.Namespace) -> int:
    from .inverse import check_out, comparison_grid, read_images, search, write_outputs

    kw = _search_kw(args)
    gan = _image_gan(args.source, args.device)
    x, names, kind, note = read_images(Path(args.images), gan.data_shape)
    check_out(Path(args.out))
    if note:
        print(f"ganforge: {note}")
    p = search(gan, x, None, **kw)
    results = {"latents": p.z.float(), "projected": p.images}
    if p.y is not None:
        results["classes"] = p.y
    record = _search_record(gan, args, names, p, kw, ((p.images - x) ** 2).flatten(1).mean(1))
    write_outputs(Path(args.out), kind, names, results, comparison_grid([x, p.images]), record)
    print(f"wrote {args.out}/: {len(names)} projection(s) from {gan.source} (step {gan.step}); pixel MSE mean "
          f"{record['pixel_mse_mean']:.4f}" + (f"; classes by {p.classes_by}" if p.y is not None else ""))
    return 0


def _cmd_inpaint(args: argparse.Namespace) -> int:
    from .inverse import check_out, comparison_grid, inpaint, parse_mask, read_images, shown_masked, write_outputs

    kw = _search_kw(args)
    gan = _image_gan(args.source, args.device)
    x, names, kind, note = read_images(Path(args.images), gan.data_shape)
    mask = parse_mask(args.mask, gan.data_shape, x.shape[0], args.seed)
    check_out(Path(args.out))
    if note:
        print(f"ganforge: {note}")
    if float(mask.min()) == 1:
        print(f"ganforge: the mask '{args.mask}' has no missing pixel (0): the filled images are the input, "
              f"unchanged (G(z) is still written, as a projection)")
    r = inpaint(gan, x, mask, **kw)
    columns = [shown_masked(x, mask), r.generated, r.filled]
    if float((x * (1 - mask)).abs().sum()) > 0:  # the input still has the hole's pixels: show the original
        columns.append(x)
    results = {"filled": r.filled, "generated": r.generated, "latents": r.z.float(), "mask": mask}
    if r.y is not None:
        results["classes"] = r.y
    hole = (1 - mask).flatten(1).sum(1).clamp_min(1)
    record = _search_record(gan, args, names, r, kw, (((r.filled - x) * (1 - mask)) ** 2).flatten(1).sum(1) / hole)
    record["mask"] = args.mask
    write_outputs(Path(args.out), kind, names, results, comparison_grid(columns), record)
    print(f"wrote {args.out}/: {len(names)} inpainted image(s) from {gan.source} (step {gan.step}); "
          f"{float((1 - mask).mean()):.0%} of the pixels were missing"
          + (f"; classes by {r.classes_by}" if r.y is not None else ""))
    return 0


def _search_record(gan, args, names, result, kw, mse) -> Dict[str, Any]:
    """result.json: the settings and, per image, the search's final distance and the pixel MSE in [0, 1]
    units (inpainting: inside the hole, against the input's pixels there)."""
    return {"source": str(gan.source), "step": gan.step, "images": args.images, "names": names,
            "distance": [round(float(v), 6) for v in result.loss], "pixel_mse": [round(float(v), 6) for v in mse],
            "pixel_mse_mean": float(mse.mean()), "classes_by": result.classes_by or None,
            **{k: v for k, v in kw.items() if k != "progress"}}


def _out_path(out: str, suffixes: tuple) -> Path:
    path = Path(out)
    if path.suffix.lower() not in suffixes:
        raise GanforgeError(f"--out must end in {' or '.join(suffixes)}, got '{path.name}'")
    if not path.parent.exists():
        raise GanforgeError(f"folder {path.parent} does not exist")
    return path


def _cmd_plot(args: argparse.Namespace) -> int:
    from .api import Run
    from .report import plot_curves

    run = Run(args.run_dir)
    out = _out_path(args.out, (".png",)) if args.out else run.dir / "curves.png"
    print(f"wrote {plot_curves(run.metrics, out, title=f'{run.dir.name} ({run.config.preset})')}")
    return 0


def _cmd_animate(args: argparse.Namespace) -> int:
    from .api import Run
    from .report import grid_step, progress_frames, write_animation

    run = Run(args.run_dir)
    out = _out_path(args.out, (".gif", ".mp4")) if args.out else run.dir / "progress.gif"
    if args.fps <= 0:
        raise GanforgeError(f"--fps must be > 0, got {args.fps}")
    grids = run.grids
    if not grids:
        raise GanforgeError(f"no sample grids yet in {run.dir / 'samples'}")
    write_animation(progress_frames(grids), out, fps=args.fps)
    print(f"wrote {out} ({len(grids)} frames, steps {grid_step(grids[0])} to {grid_step(grids[-1])})")
    return 0


def _cmd_interpolate(args: argparse.Namespace) -> int:
    from .api import load
    from .data import load_dataset
    from .report import interpolation_pictures, write_animation

    out = _out_path(args.out, (".png", ".gif"))
    if args.steps < 2 or args.rows < 1:
        raise GanforgeError(f"--steps must be >= 2 and --rows >= 1, got {args.steps} and {args.rows}")
    if args.fps <= 0:
        raise GanforgeError(f"--fps must be > 0, got {args.fps}")
    if (args.from_image is None) != (args.to_image is None):
        raise GanforgeError("--from and --to go together: the two real images to walk between")
    if args.from_image is not None:
        return _interpolate_real(args, out)
    gan = load(args.source)
    labels = None
    if args.cls is not None:
        if args.cls == "all":
            raise GanforgeError("--class takes one class here (a number or a name), not 'all'")
        labels, _ = _sample_labels(gan, args.cls, args.rows)
    x = gan.interpolate(args.rows, args.steps, args.spherical, args.seed, labels, args.truncation)
    target = None if gan.is_image else load_dataset(gan.config.data)
    animated = out.suffix.lower() == ".gif"
    pictures = interpolation_pictures(x, target, animated=animated)
    if animated:
        write_animation(pictures, out, fps=args.fps, hold_last=1)
    else:
        from .checkpoint import write_atomic

        write_atomic(out, lambda f: pictures[0].save(f, format="PNG"))
    how = "slerp" if (gan.slerp_default if args.spherical is None else args.spherical) else "lerp"
    print(f"wrote {out} ({args.rows} walks of {args.steps} steps, {how}, from {gan.source}, step {gan.step})")
    return 0


def _interpolate_real(args: argparse.Namespace, out: Path) -> int:
    import torch

    from .inverse import read_images, search
    from .models import interpolate_latents
    from .report import interpolation_pictures, write_animation

    if args.cls is not None or args.truncation is not None:
        raise GanforgeError("--class and --truncation apply to random walks, not to --from/--to")
    gan = _image_gan(args.source)
    x = torch.cat([read_images(Path(p), gan.data_shape)[0][:1] for p in (args.from_image, args.to_image)])
    p = search(gan, x, None, progress=False)
    mse = ((p.images - x) ** 2).flatten(1).mean(1)
    spherical = gan.slerp_default if args.spherical is None else args.spherical
    path = interpolate_latents(p.z[:1], p.z[1:], args.steps, spherical)[0]
    y = None
    if p.y is not None:  # G holds one class at a time: A's for the first half of the walk, B's for the second
        y = (torch.arange(args.steps) >= args.steps / 2).long() * (p.y[1] - p.y[0]) + p.y[0]
    walk = ((gan.generate(path, y) + 1) / 2)[None]
    pictures = interpolation_pictures(walk, None, animated=out.suffix.lower() == ".gif")
    if out.suffix.lower() == ".gif":
        write_animation(pictures, out, fps=args.fps, hold_last=1)
    else:
        from .checkpoint import write_atomic

        write_atomic(out, lambda f: pictures[0].save(f, format="PNG"))
    classes = f"; classes {gan.classes[int(p.y[0])]} -> {gan.classes[int(p.y[1])]}" if p.y is not None else ""
    print(f"wrote {out} (a walk of {args.steps} steps between the projections of {args.from_image} and "
          f"{args.to_image}, pixel MSE {float(mse[0]):.4f} and {float(mse[1]):.4f}{classes})")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .html import write_report

    out = write_report(Path(args.run_dir), floor=not args.no_floor)
    print(f"wrote {out}")
    return 0


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
    # A budget given here replaces the preset's or file's (which may be in another unit, or in seconds).
    if args.epochs is not None:
        flags.update({"train.epochs": args.epochs, "train.steps": None, "train.max_seconds": None})
    if args.steps is not None:
        flags.update({"train.steps": args.steps, "train.epochs": None, "train.max_seconds": None})
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
        m = run.final_metrics
        print("metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, (int, float)))
              + (f" (features: {m['features']})" if "features" in m else ""))
    if run.stopped_by == "signal":
        print(f"checkpoint written; continue with: ganforge train --run-dir {run.dir} --resume", file=sys.stderr)
        return 128 + int(run.signal or signal.SIGINT)
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .api import load
    from .report import save_grid

    out = Path(args.out)
    to_folder = args.out.endswith(("/", "\\")) or out.is_dir()
    if not to_folder and out.suffix.lower() not in (".png", ".npy"):
        raise GanforgeError(f"--out must end in .png or .npy, or be a folder ending in '/', got '{out.name}'")
    if args.n < 1:
        raise GanforgeError(f"--n must be >= 1, got {args.n}")
    if not out.parent.exists():
        raise GanforgeError(f"folder {out.parent} does not exist")
    gan = load(args.source, device=args.device)
    if gan.chosen:
        print(f"ganforge: {gan.chosen}")
    if to_folder and not gan.is_image:
        raise GanforgeError("a folder of PNGs needs an image generator; use .npy or .png for toy data")
    if args.truncation is not None:
        gan.noise(1, 0, args.truncation)  # says what is wrong with ψ before anything is written
    labels, nrow = _sample_labels(gan, args.cls, args.n)
    n = len(labels) if labels is not None else args.n
    seed = args.seed if args.seed is not None else int(torch.randint(2**31 - 1, (1,)))
    batches = gan.iter_samples(n, seed, labels, args.truncation)
    with tqdm(total=n, unit="sample", disable=n <= 1000, file=sys.stderr, desc="sampling") as bar:
        batches = ((x, y, bar.update(len(x))) for x, y in batches)
        if to_folder:
            _write_image_folder(batches, gan.classes, out)
            where = f"{out}/ (one PNG per sample" + (", a sub-folder per class)" if gan.n_classes else ")")
        elif out.suffix.lower() == ".npy":
            _write_npy(batches, n, gan.data_shape, out)
            where = str(out)
        else:
            samples = torch.cat([x for x, _, _ in batches])
            where = str(out)
            if gan.is_image:
                save_grid(samples * 2 - 1, out, nrow=nrow)
            else:
                from .data import load_dataset
                from .report import save_toy_plot

                save_toy_plot(samples, load_dataset(gan.config.data), out, title=f"{n} samples, step {gan.step}")
    psi = f", truncation {args.truncation:g}" if args.truncation is not None else ""
    print(f"wrote {n} samples from {gan.source} (step {gan.step}; seed {seed}{psi}) "
          f"to {where}")
    return 0


def _write_npy(batches, n: int, shape: tuple, out: Path) -> None:
    """Stream batches into one .npy (float32, n × shape) without holding them all."""
    import numpy as np

    from .checkpoint import write_atomic

    def write(f):
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, *shape)})
        for x, _, _ in batches:
            f.write(np.ascontiguousarray(x.numpy(), dtype="<f4").tobytes())
    write_atomic(out, write)


def _sample_labels(gan, cls: Optional[str], n: int):
    """(labels or None, grid row length) for --class."""
    if cls is None:
        return None, 0
    if not gan.n_classes:
        raise GanforgeError("--class applies to conditional runs (conditional: true); this generator has no classes")
    import torch
    if cls == "all":
        return torch.arange(gan.n_classes).repeat_interleave(n), n
    if cls in gan.classes:
        k = gan.classes.index(cls)
    else:
        try:
            k = int(cls)
        except ValueError:
            k = -1
    if not 0 <= k < gan.n_classes:
        raise GanforgeError(f"--class must be 'all', 0..{gan.n_classes - 1} or one of {', '.join(gan.classes)}; "
                            f"got '{cls}'")
    return torch.full((n,), k), 0


def _write_image_folder(batches, classes, out: Path) -> None:
    """Samples in [0, 1], batch by batch, as PNGs: ``out/<class>/<i>.png`` when labelled, else ``out/<i>.png``."""
    from torchvision.utils import save_image
    from .checkpoint import write_atomic

    i = 0
    for samples, labels, _ in batches:
        for k, x in enumerate(samples):
            folder = out / classes[int(labels[k])] if labels is not None else out
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(folder / f"{i:06d}.png", lambda f, x=x: save_image(x, f, format="png"))
            i += 1


def _cmd_eval(args: argparse.Namespace) -> int:
    import json

    from .api import load
    from .checkpoint import write_atomic
    from .config import load_run_config, resolve_config
    from .data import load_dataset
    from .metrics import eval_labels, evaluate, parse_names, real_baseline, reference

    run_dir = Path(args.run_dir) if args.run_dir else None
    if run_dir is not None and not run_dir.is_dir():
        raise GanforgeError(f"no such run dir: {run_dir}")
    if args.n is not None and args.n < 2:
        raise GanforgeError(f"--n must be >= 2, got {args.n}")
    from .metrics.tstr import NAMES as TSTR

    wanted = [n.strip() for n in (args.metrics or "").split(",") if n.strip()]
    tstr = [n for n in wanted if n in TSTR]  # classifiers between real and generated images: asked for by name
    rest = [n for n in wanted if n not in TSTR]
    names = parse_names(",".join(rest)) if rest else None
    if args.real_baseline and tstr:
        raise GanforgeError(f"{', '.join(tstr)} score a conditional generator, not --real-baseline")
    if args.real_baseline:
        if args.truncation is not None:
            raise GanforgeError("--truncation applies to a generator's samples, not to --real-baseline")
        if args.checkpoint:
            raise GanforgeError("--real-baseline scores real data, not a checkpoint; drop --checkpoint")
        cfg = load_run_config(run_dir) if run_dir is not None else resolve_config()
        if args.data is not None:
            cfg = cfg.replace(data={"name": args.data})
        elif run_dir is None:
            raise GanforgeError("--real-baseline needs a RUN_DIR or --data naming the data")
        if args.features is not None:
            cfg = cfg.replace(eval={"features": args.features})
        data = load_dataset(cfg.data)
        if not hasattr(data, "take"):
            raise GanforgeError(f"--real-baseline applies to image data; '{cfg.data.name}' is a toy distribution "
                                f"whose metrics are exact")
        record = real_baseline(data, cfg.eval, args.n, args.seed, names)
        record["data"] = cfg.data.name
    else:
        if run_dir is None:
            raise GanforgeError("eval needs a RUN_DIR (or --real-baseline with --data)")
        if args.data is not None:
            raise GanforgeError("--data applies with --real-baseline; a run is scored against its own data")
        gan = load(args.checkpoint or run_dir, device=args.device)
        if gan.chosen and not args.json:
            print(f"ganforge: {gan.chosen}")
        if tstr:
            from .metrics.tstr import require_classes
            require_classes(gan)
        n = args.n if args.n is not None else gan.config.eval.n
        seed = args.seed if args.seed is not None else gan.config.eval.seed
        data = load_dataset(gan.config.data)
        ev = gan.config.eval if args.features is None else gan.config.replace(eval={"features": args.features}).eval
        ref = reference(data, ev)
        found = {}
        if names or not tstr:
            z = gan.noise(n, seed, args.truncation)  # the in-training evaluation's draw (truncated when asked)
            y = eval_labels(n, gan.n_classes, ref, seed) if gan.n_classes else None  # the reference's class mix
            found = evaluate(gan.generate(z, y), ref, names)
        if tstr:
            found.update(_tstr(gan, data, ref, tstr, n, seed))
        record = {"kind": "generator", "checkpoint": str(gan.source), "step": gan.step, "n": n,
                  "n_ref": len(ref.x) if hasattr(ref, "x") else None, "seed": seed,
                  **({"truncation": args.truncation} if args.truncation is not None else {}), **found}
        if hasattr(ref, "extractor"):
            record["features_info"] = ref.extractor.info
    if run_dir is not None:
        path = run_dir / "eval.jsonl"
        old = path.read_bytes() if path.exists() else b""
        write_atomic(path, lambda f: f.write(old + (json.dumps(record) + "\n").encode()))
    if args.json:
        print(json.dumps(record))
    else:
        _print_eval(record)
    return 0


def _tstr(gan, data, ref, which, n: int, seed: int) -> Dict[str, Any]:
    """GAN-train / GAN-test (Shmelkov et al. 2018) on the run's labelled data."""
    import torch

    from .metrics import reference
    from .metrics.tstr import gan_test, gan_train

    if ref.extractor.classes != gan.n_classes:  # Inception features: the domain classifier reads the classes
        ref = reference(data, gan.config.replace(eval={"features": "classifier"}).eval)
    out: Dict[str, Any] = {}
    if "gan_test" in which:
        out.update(gan_test(gan, ref.extractor, n, seed))
    if "gan_train" in which:
        out.update(gan_train(gan, data.take(torch.arange(len(data))), data.y, n, seed))
        out["gan_train_tested_on"] = f"{len(data)} real images of {data.name} (also G's training data)"
    return out


def _print_eval(record: dict) -> None:
    what = (f"real vs real: {record['n']} images of {record['data']} against {record['n_ref']} others"
            if record["kind"] == "real-baseline" else
            f"{record['checkpoint']} (step {record['step']}): {record['n']} samples, seed {record['seed']}"
            + (f", against {record['n_ref']} real images" if record.get("n_ref") else ""))
    print(what)
    if "features" in record:
        acc = record.get("features_info", {}).get("heldout_accuracy")
        print(f"features: {record['features']}" + (f" (held-out accuracy {acc:.1%})" if acc is not None else ""))
    skip = {"kind", "checkpoint", "step", "n", "n_ref", "seed", "data", "features", "features_info"}
    rows = [(k, v) for k, v in record.items() if k not in skip]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}")


def _cmd_export(args: argparse.Namespace) -> int:
    from .exports import export_verified

    out = Path(args.out)
    if not out.parent.exists():
        raise GanforgeError(f"folder {out.parent} does not exist")
    path, diff = export_verified(args.source, out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB); verified: max abs difference {diff:.2g} from "
          f"ganforge's own samples")
    return 0


def _cmd_fid(args: argparse.Namespace) -> int:
    import json

    from .fid import compare

    save = Path(args.save_stats) if args.save_stats else None
    if save is not None and save.suffix != ".npz":
        raise GanforgeError(f"--save-stats must end in .npz, got '{save.name}'")
    r = compare(Path(args.a), Path(args.b), args.features, args.weights, save)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"features: {r['features']}; {r['n_a'] or 'stats'} vs {r['n_b'] or 'stats'} images")
    for k, v in r.items():
        if k not in ("features", "n_a", "n_b"):
            print(f"  {k:<10} {v:.4f}")
    if save is not None:
        print(f"wrote {save}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"presets": _cmd_presets, "train": _cmd_train, "sample": _cmd_sample, "eval": _cmd_eval,
                "export": _cmd_export, "fid": _cmd_fid, "plot": _cmd_plot, "animate": _cmd_animate,
                "interpolate": _cmd_interpolate, "report": _cmd_report, "project": _cmd_project,
                "inpaint": _cmd_inpaint}
    try:
        return commands[args.command](args)
    except GanforgeError as e:
        print(f"ganforge: error: {e}", file=sys.stderr)
        return 2
    except (DivergedError, StorageError, ExportMismatch) as e:  # not bad input: the run's last good checkpoint is intact
        print(f"ganforge: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
