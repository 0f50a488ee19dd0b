"""Write what a trained generator makes to files: sample grids, arrays and folders, latent walks, and a
run's curves and animation. Each function is what one CLI command calls; each is usable from Python."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Optional, Tuple

import numpy as np
import torch
from torchvision.utils import save_image
from tqdm import tqdm

from .api import LoadedGAN, Run, load
from .checkpoint import write_atomic
from .data import from_unit, load_dataset
from .data.audio import write_wav
from .errors import GanforgeError
from .logs import log
from .repair import walk_between
from .report import (
    grid_step,
    interpolation_pictures,
    plot_curves,
    progress_frames,
    save_audio_grid,
    save_grid,
    save_toy_plot,
    write_animation,
    write_lines,
)


class Written(NamedTuple):
    """What a writer wrote: where (a path, or a sentence for a folder), how many, and from what."""

    where: str
    n: int
    seed: Optional[int]  # None: a random draw that was not asked to be reproducible
    gan: LoadedGAN


def out_path(out, suffixes: Tuple[str, ...]) -> Path:
    """``out`` as a Path, checked: one of ``suffixes``, in a folder that exists."""
    path = Path(out)
    if path.suffix.lower() not in suffixes:
        raise GanforgeError(f"--out must end in {' or '.join(suffixes)}, got '{path.name}'")
    if not path.parent.exists():
        raise GanforgeError(f"folder {path.parent} does not exist")
    return path


def class_labels_for(gan: LoadedGAN, cls: Optional[str], n: int) -> Tuple[Optional[torch.Tensor], int]:
    """(labels or None, grid row length) for ``--class K|NAME|all`` (all: ``n`` of each class)."""
    if cls is None:
        return None, 0
    if not gan.n_classes:
        raise GanforgeError("--class applies to conditional runs (conditional: true); this generator has no classes")
    if cls == "all":
        return torch.arange(gan.n_classes).repeat_interleave(n), n
    k = gan.classes.index(cls) if cls in gan.classes else int(cls) if cls.lstrip("-").isdigit() else -1
    if not 0 <= k < gan.n_classes:
        raise GanforgeError(f"--class must be 'all', 0..{gan.n_classes - 1} or one of {', '.join(gan.classes)}; "
                            f"got '{cls}'")
    return torch.full((n,), k), 0


def write_samples(source, out, n: int = 64, seed: Optional[int] = None, cls: Optional[str] = None,
                  truncation: Optional[float] = None, device: str = "cpu", say: Callable[[str], None] = log.info
                  ) -> Written:
    """Samples of ``source``'s generator to ``out``: ``.png`` a grid, ``.npy`` float32 N×C×H×W in [0, 1]
    (text: N×V×L, G's softmax; audio: N×1×L in [-1, 1]), ``.txt`` (text runs) one sample per line, ``.wav`` (audio
    runs) the clips in one file, 0.25 s apart,
    a path ending in '/' (or an existing folder) one PNG per sample (a sub-folder per class when
    conditional). Streamed: memory is one batch, whatever ``n``. ``say`` gets the notes (default: the log)."""
    out_s = str(out)
    out = Path(out)
    to_folder = out_s.endswith(("/", "\\")) or out.is_dir()
    if not to_folder and out.suffix.lower() not in (".png", ".npy", ".txt", ".wav"):
        raise GanforgeError(f"--out must end in .png, .npy, .txt (text runs) or .wav (audio runs), or be a folder "
                            f"ending in '/', got '{out.name}'")
    if n < 1:
        raise GanforgeError(f"--n must be >= 1, got {n}")
    if not out.parent.exists():
        raise GanforgeError(f"folder {out.parent} does not exist")
    gan = load(source, device=device)
    if gan.chosen:
        say(gan.chosen)
    if to_folder and not (gan.is_image or gan.is_audio):
        raise GanforgeError("a folder of samples needs an image or audio generator; use .npy or .png for toy data, "
                            ".txt for text")
    if out.suffix.lower() == ".wav" and not gan.is_audio:
        raise GanforgeError(f"--out {out.name}: .wav is for audio generators")
    if gan.is_text and out.suffix.lower() == ".png":
        raise GanforgeError("a text generator writes --out FILE.txt (one sample per line) or FILE.npy")
    if out.suffix.lower() == ".txt" and not gan.is_text:
        raise GanforgeError(f"--out {out.name}: .txt is for text generators; this one makes "
                            f"{'images' if gan.is_image else 'audio' if gan.is_audio else 'toy samples'} (.png, "
                            f"{'.wav, ' if gan.is_audio else ''}.npy)")
    if truncation is not None:
        gan.noise(1, 0, truncation)  # says what is wrong with ψ before anything is written
    labels, nrow = class_labels_for(gan, cls, n)
    n = len(labels) if labels is not None else n
    seed = seed if seed is not None else int(torch.randint(2**31 - 1, (1,)))
    with tqdm(total=n, unit="sample", disable=n <= 1000, desc="sampling") as bar:
        batches = ((x, y) for x, y in gan.iter_samples(n, seed, labels, truncation) if bar.update(len(x)) or True)
        if to_folder:
            _write_folder(batches, gan.classes, out, gan.sample_rate)
            where = f"{out}/ (one {'WAV' if gan.is_audio else 'PNG'} per sample" + \
                (", a sub-folder per class)" if gan.n_classes else ")")
        elif out.suffix.lower() == ".npy":
            _write_npy(batches, n, gan.data_shape, out)
            where = str(out)
        else:
            samples = torch.cat([x for x, _ in batches])
            where = str(out)
            if gan.is_text:
                write_lines(gan.text(samples), out)
            elif out.suffix.lower() == ".wav":  # one file: the clips one after another, 0.25 s of silence between
                gap = torch.zeros(1, gan.sample_rate // 4)
                joined = torch.cat([c for x in samples for c in (x, gap)], 1)
                write_atomic(out, lambda f: write_wav(joined, gan.sample_rate, f))
            elif gan.is_audio:
                names = [gan.classes[k] for k in labels.tolist()] if labels is not None else None
                save_audio_grid(samples, gan.sample_rate, out, names, max_clips=len(samples))
            elif gan.is_image:
                save_grid(from_unit(samples), out, nrow=nrow)
            else:
                save_toy_plot(samples, load_dataset(gan.config.data), out, title=f"{n} samples, step {gan.step}")
    return Written(where, n, seed, gan)


def _write_npy(batches: Iterable, n: int, shape: tuple, out: Path) -> None:
    """Stream batches into one .npy (float32, n × shape) without holding them all."""
    def write(f):
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, *shape)})
        for x, _ in batches:
            f.write(np.ascontiguousarray(x.numpy(), dtype="<f4").tobytes())
    write_atomic(out, write)


def _write_folder(batches: Iterable, classes, out: Path, sample_rate: int = 0) -> None:
    """Samples, batch by batch, one file each: ``out/<class>/<i>.png`` (images in [0, 1]; audio: ``.wav``)
    when labelled, else ``out/<i>.png``."""
    i = 0
    for samples, labels in batches:
        for k, x in enumerate(samples):
            folder = out / classes[int(labels[k])] if labels is not None else out
            folder.mkdir(parents=True, exist_ok=True)
            if sample_rate:
                write_atomic(folder / f"{i:06d}.wav", lambda f, x=x: write_wav(x, sample_rate, f))
            else:
                write_atomic(folder / f"{i:06d}.png", lambda f, x=x: save_image(x, f, format="png"))
            i += 1


def write_interpolation(source, out, rows: int = 8, steps: int = 10, spherical: Optional[bool] = None,
                        cls: Optional[str] = None, seed: Optional[int] = None, truncation: Optional[float] = None,
                        fps: float = 8.0) -> Written:
    """Latent walks of ``source``'s generator: ``rows`` random pairs in ``steps`` points, as a PNG (a row per
    walk) or a GIF (a frame per step); toy runs drawn over the data's modes."""
    out = out_path(out, (".png", ".gif"))
    _check_walk(steps, fps, rows)
    gan = load(source)
    if gan.is_text or gan.is_audio:
        raise GanforgeError("latent walks are drawn for image and toy generators; for text or audio, ganforge sample "
                            "writes lines or clips")
    labels = None
    if cls is not None:
        if cls == "all":
            raise GanforgeError("--class takes one class here (a number or a name), not 'all'")
        labels, _ = class_labels_for(gan, cls, rows)
    x = gan.interpolate(rows, steps, spherical, seed, labels, truncation)
    _write_walk(x, None if gan.is_image else load_dataset(gan.config.data), out, fps)
    return Written(str(out), rows, seed, gan)


def write_real_walk(source, a, b, out, steps: int = 10, spherical: Optional[bool] = None, fps: float = 8.0,
                    say: Callable[[str], None] = log.info):
    """A walk between the projections of two real images ``a`` and ``b``, as a PNG row or a GIF;
    returns :class:`ganforge.repair.Walk` (the projection errors and classes)."""
    out = out_path(out, (".png", ".gif"))
    _check_walk(steps, fps, 1)
    walk = walk_between(source, a, b, steps, spherical, say)
    _write_walk(walk.images, None, out, fps)
    return walk


def _check_walk(steps: int, fps: float, rows: int) -> None:
    if steps < 2 or rows < 1:
        raise GanforgeError(f"--steps must be >= 2 and --rows >= 1, got {steps} and {rows}")
    if fps <= 0:
        raise GanforgeError(f"--fps must be > 0, got {fps}")


def _write_walk(x: torch.Tensor, target, out: Path, fps: float) -> None:
    animated = out.suffix.lower() == ".gif"
    pictures = interpolation_pictures(x, target, animated=animated)
    if animated:
        write_animation(pictures, out, fps=fps, hold_last=1)
    else:
        write_atomic(out, lambda f: pictures[0].save(f, format="PNG"))


def plot(run_dir, out=None) -> Path:
    """``RUN/curves.png`` (or ``out``): losses, D(x), D(G(z)) and the evaluated metrics over steps."""
    run = Run(run_dir)
    path = out_path(out, (".png",)) if out else run.dir / "curves.png"
    return plot_curves(run.metrics, path, title=f"{run.dir.name} ({run.config.preset})")


def animate(run_dir, out=None, fps: float = 4.0) -> Tuple[Path, int, int, int]:
    """``RUN/progress.gif`` (or ``out``, .gif or .mp4) from the fixed-noise grids; returns (path, frames,
    first step, last step)."""
    run = Run(run_dir)
    path = out_path(out, (".gif", ".mp4")) if out else run.dir / "progress.gif"
    if fps <= 0:
        raise GanforgeError(f"--fps must be > 0, got {fps}")
    grids = run.grids
    if not grids:
        raise GanforgeError(f"no sample grids yet in {run.dir / 'samples'}")
    write_animation(progress_frames(grids), path, fps=fps)
    return path, len(grids), grid_step(grids[0]), grid_step(grids[-1])
