"""Repair and reuse real images with a trained generator, from files to a result folder: ``project``
(find each image's z), ``inpaint`` (fill the missing pixels) and a latent walk between two real images.

The search itself is :mod:`ganforge.inverse`; this module reads the images and masks, runs it, and writes
OUT/ in one piece (``latents.npy``, the images, ``grid.png``, ``result.json``). The CLI's ``project``,
``inpaint`` and ``interpolate --from/--to`` are one call each into it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
from PIL import Image
from torchvision.utils import save_image

from .api import LoadedGAN, load
from .checkpoint import os_error
from .data import conform, from_unit, to_unit
from .data.folder import EXTENSIONS, Unusable, decode, scan
from .errors import GanforgeError, StorageError
from .inverse import inpaint, search
from .logs import log
from .models import interpolate_latents

MASK_SHORTHANDS = "top-half, bottom-half, left-half, right-half, center:K, random:P"


class Repaired(NamedTuple):
    """What :func:`project_images` and :func:`inpaint_images` wrote: the folder and its result.json."""

    out: Path
    record: Dict[str, Any]


Say = Callable[[str], None]  # where notes go (default: the ganforge log; the CLI prints them)


def image_gan(source, device: str = "cpu", say: Say = log.info) -> LoadedGAN:
    """The generator of ``source`` (a run dir, checkpoint or export), which must make images."""
    gan = load(source, device=device)
    if gan.chosen:
        say(gan.chosen)
    if not gan.is_image:
        what = "text" if gan.is_text else "audio" if gan.is_audio else "the toy distribution"
        raise GanforgeError(f"projection needs an image model; {source} was trained on {what} "
                            f"'{gan.config.data.name}'")
    return gan


def check_search(steps: int = 200, restarts: int = 4, pool: int = 32, realism: float = 0.0, **_) -> None:
    """One clear error for a search setting out of range (before anything is read or written)."""
    for name, value in (("steps", steps), ("restarts", restarts), ("pool", pool)):
        if value < 1:
            raise GanforgeError(f"--{name} must be >= 1, got {value}")
    if not realism >= 0:
        raise GanforgeError(f"--realism must be >= 0, got {realism}")


def project_images(source, images, out, device: str = "cpu", say: Say = log.info, **search_kw) -> Repaired:
    """Project the images of ``images`` (a folder, an image file or a .npy N×C×H×W in [0, 1]) into the
    latent space of ``source``'s generator; write OUT/ (see the module doc). ``search_kw``: see
    :func:`ganforge.inverse.search` (steps, restarts, pool, features, classes, seed, progress)."""
    check_search(**search_kw)
    gan = image_gan(source, device, say)
    x, names, kind, note = read_images(Path(images), gan.data_shape)
    check_out(Path(out))
    if note:
        say(note)
    p = search(gan, x, None, **search_kw)
    results = {"latents": p.z.float(), "projected": p.images, **({"classes": p.y} if p.y is not None else {})}
    record = _record(gan, images, names, p, search_kw, ((p.images - x) ** 2).flatten(1).mean(1))
    write_outputs(Path(out), kind, names, results, comparison_grid([x, p.images]), record)
    return Repaired(Path(out), record)


def inpaint_images(source, images, mask: str, out, device: str = "cpu", say: Say = log.info,
                   **search_kw) -> Repaired:
    """Fill the pixels that ``mask`` (a shorthand, see :data:`MASK_SHORTHANDS`, or a .npy/image file; 1
    known, 0 missing) marks missing in ``images`` from ``source``'s generator; write OUT/ (see the module doc)."""
    check_search(**search_kw)
    gan = image_gan(source, device, say)
    x, names, kind, note = read_images(Path(images), gan.data_shape)
    m = parse_mask(mask, gan.data_shape, x.shape[0], search_kw.get("seed", 0))
    check_out(Path(out))
    if note:
        say(note)
    if float(m.min()) == 1:
        say(f"the mask '{mask}' has no missing pixel (0): the filled images are the input, unchanged "
                 f"(G(z) is still written, as a projection)")
    r = inpaint(gan, x, m, **search_kw)
    columns = [shown_masked(x, m), r.generated, r.filled]
    if float((x * (1 - m)).abs().sum()) > 0:  # the input still has the hole's pixels: show the original
        columns.append(x)
    results = {"filled": r.filled, "generated": r.generated, "latents": r.z.float(), "mask": m,
               **({"classes": r.y} if r.y is not None else {})}
    hole = (1 - m).flatten(1).sum(1).clamp_min(1)
    record = _record(gan, images, names, r, search_kw, (((r.filled - x) * (1 - m)) ** 2).flatten(1).sum(1) / hole)
    record.update(mask=mask, missing_fraction=float((1 - m).mean()))
    write_outputs(Path(out), kind, names, results, comparison_grid(columns), record)
    return Repaired(Path(out), record)


class Walk(NamedTuple):
    images: torch.Tensor  # (1, steps, C, H, W) in [0, 1]
    mse: Tuple[float, float]  # each end's projection error (pixel MSE)
    classes: Optional[Tuple[str, str]]  # conditional runs: the classes found for the two ends


def walk_between(source, a, b, steps: int = 10, spherical: Optional[bool] = None, say: Say = log.info) -> Walk:
    """A latent walk of ``steps`` points between the projections of two real images ``a`` and ``b``."""
    gan = image_gan(source, say=say)
    x = torch.cat([read_images(Path(p), gan.data_shape)[0][:1] for p in (a, b)])
    p = search(gan, x, None, progress=False)
    mse = ((p.images - x) ** 2).flatten(1).mean(1)
    spherical = gan.slerp_default if spherical is None else spherical
    path = interpolate_latents(p.z[:1], p.z[1:], steps, spherical)[0]
    y = None
    if p.y is not None:  # G holds one class at a time: A's for the first half of the walk, B's for the second
        y = (torch.arange(steps) >= steps / 2).long() * (p.y[1] - p.y[0]) + p.y[0]
    classes = (gan.classes[int(p.y[0])], gan.classes[int(p.y[1])]) if p.y is not None else None
    return Walk(to_unit(gan.generate(path, y))[None], (float(mse[0]), float(mse[1])), classes)


def _record(gan, images, names, result, kw, mse) -> Dict[str, Any]:
    """result.json: the settings and, per image, the search's final distance and the pixel MSE in [0, 1]
    units (inpainting: inside the hole, against the input's pixels there)."""
    return {"source": str(gan.source), "step": gan.step, "images": str(images), "names": names,
            "distance": [round(float(v), 6) for v in result.loss], "pixel_mse": [round(float(v), 6) for v in mse],
            "pixel_mse_mean": float(mse.mean()), "classes_by": result.classes_by or None,
            **{k: v for k, v in kw.items() if k != "progress"}}


def parse_mask(spec: str, shape: Tuple[int, ...], n: int, seed: int = 0) -> torch.Tensor:
    """A mask (n, 1, H, W) of 1 = known pixel, 0 = missing, from a shorthand (``top-half`` … ``center:K``,
    ``random:P``: each pixel missing with probability P, seeded) or a file: ``.npy`` N×1×H×W or 1×1×H×W
    (also N×H×W / H×W), or an image (white = known; resized to the images' size with nearest neighbours)."""
    _, H, W = shape
    m = torch.ones(1, 1, H, W)
    if spec in ("top-half", "bottom-half", "left-half", "right-half"):
        where = {"top-half": (slice(0, H // 2), slice(None)), "bottom-half": (slice(H // 2, None), slice(None)),
                 "left-half": (slice(None), slice(0, W // 2)), "right-half": (slice(None), slice(W // 2, None))}
        m[0, 0][where[spec]] = 0
        return m.expand(n, 1, H, W).clone()
    if spec.startswith("center:"):
        k = _number(spec, int)
        if not 1 <= k <= min(H, W):
            raise GanforgeError(f"mask {spec}: the square must be 1..{min(H, W)} px for {H}x{W} images")
        top, left = (H - k) // 2, (W - k) // 2
        m[0, 0, top: top + k, left: left + k] = 0
        return m.expand(n, 1, H, W).clone()
    if spec.startswith("random:"):
        p = _number(spec, float)
        if not 0 <= p <= 1:
            raise GanforgeError(f"mask {spec}: the fraction missing must be in [0, 1]")
        gen = torch.Generator().manual_seed(seed)
        return (torch.rand(n, 1, H, W, generator=gen) >= p).float()
    path = Path(spec)
    if not path.is_file():
        raise GanforgeError(f"--mask '{spec}' is neither a file nor a shorthand ({MASK_SHORTHANDS})")
    if path.suffix.lower() == ".npy":
        try:
            a = torch.from_numpy(np.load(path, allow_pickle=False).astype(np.float32))
        except (OSError, ValueError) as e:
            raise GanforgeError(f"cannot read mask {path}: {str(e).splitlines()[0]}") from None
        a = a.reshape(1, 1, *a.shape) if a.ndim == 2 else a[:, None] if a.ndim == 3 else a
        if a.ndim != 4 or a.shape[1] != 1 or a.shape[0] not in (1, n) or tuple(a.shape[2:]) != (H, W):
            raise GanforgeError(f"mask {path} has shape {list(a.shape)}; it must be {n}x1x{H}x{W} or 1x1x{H}x{W} "
                                f"for these images (1 = known pixel, 0 = missing)")
        if not bool(((a == 0) | (a == 1)).all()):
            raise GanforgeError(f"mask {path} must hold only 0 (missing) and 1 (known)")
        return a.expand(n, 1, H, W).clone()
    try:
        with Image.open(path) as im:
            im = im.convert("L").resize((W, H), Image.NEAREST)
            a = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)
    except OSError as e:
        raise GanforgeError(f"cannot read mask {path}: {str(e).splitlines()[0]}") from None
    return (a >= 0.5).float().view(1, 1, H, W).expand(n, 1, H, W).clone()


def _number(spec: str, kind):
    try:
        return kind(spec.split(":", 1)[1])
    except ValueError:
        raise GanforgeError(f"mask '{spec}': expected {spec.split(':')[0]}:<number>") from None


def read_images(path: Path, shape: Tuple[int, ...]) -> Tuple[torch.Tensor, List[str], str, Optional[str]]:
    """Target images in [0, 1] at the generator's ``shape`` (C, H, W) from a folder (recursive, as the data
    loader reads folders), one image file, or a ``.npy`` N×C×H×W in [0, 1]. Returns (images, names, kind
    'npy' or 'images', a note when they were resized or converted)."""

    C, H, W = shape
    if not path.exists():
        raise GanforgeError(f"no such image, folder or .npy file: {path}")
    if path.suffix.lower() == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise GanforgeError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
        if a.ndim != 4 or a.shape[1] not in (1, 3) or a.shape[2] != a.shape[3] or a.shape[0] < 1:
            raise GanforgeError(f"{path} must hold square images N x C x H x W with C 1 or 3, got shape {list(a.shape)}")
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise GanforgeError(f"{path} must hold pixel values in [0, 1] (as ganforge sample writes them)")
        x = torch.from_numpy(a.astype(np.float32))
        note = None
        if tuple(x.shape[1:]) != (C, H, W):
            note = f"images of {x.shape[1]}x{x.shape[2]}x{x.shape[3]} converted to the generator's {C}x{H}x{W}"
            x = to_unit(conform(from_unit(x), H, C))
        return x.clamp(0, 1), [f"{i:06d}" for i in range(x.shape[0])], "npy", note
    if path.is_dir():
        files, _, _ = scan(path)
        if not files:
            raise GanforgeError(f"{path} holds no image files ({', '.join(EXTENSIONS)})")
    elif path.suffix.lower() in EXTENSIONS:
        files = [path]
    else:
        raise GanforgeError(f"{path}: give a folder of images, an image file or a .npy array")

    images, resized = [], 0
    for f in files:
        try:
            with Image.open(f) as im:
                resized += im.size != (W, H)
            images.append(decode(f, H, C))
        except (Unusable, OSError) as e:
            raise GanforgeError(f"cannot read image {f}: {e}") from None
    names = [str(f.relative_to(path).with_suffix("")) if path.is_dir() else f.stem for f in files]
    note = f"{resized} image(s) resized to the generator's {W}x{H} px" if resized else None
    return to_unit(torch.stack(images)), names, "images", note



def comparison_grid(columns: List[torch.Tensor], per_row: int = 4, limit: int = 64) -> torch.Tensor:
    """Images side by side: for each of the first ``limit`` images, one tile from each of ``columns``
    (each (N, C, H, W) in [0, 1]); ``per_row`` images to a grid row. Returns (M, C, H, W) and the row length."""
    n = min(columns[0].shape[0], limit)
    tiles = torch.stack([c[:n] for c in columns], 1).flatten(0, 1)
    return tiles, per_row * len(columns)


def shown_masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The masked input as the grid shows it: the hole in mid-grey."""
    return x * mask + 0.5 * (1 - mask)


IMAGE_RESULTS = ("projected", "filled", "generated")  # written in the input's format; the rest as .npy


def check_out(out: Path) -> None:
    """OUT must not exist or be an empty folder, in a folder that exists: one clear error otherwise."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GanforgeError(f"--out {out} already exists and is not an empty folder; nothing is overwritten")
    if not out.parent.exists():
        raise GanforgeError(f"folder {out.parent} does not exist")


def write_outputs(out: Path, kind: str, names: List[str], results: dict, grid: Tuple[torch.Tensor, int],
                  record: dict) -> Path:
    """Write a result folder in one piece: ``results`` maps a name to images (IMAGE_RESULTS: N, C, H, W in
    [0, 1], written as ``<name>.npy`` for .npy input, else as ``<name>/<image name>.png``) or arrays (``.npy``);
    ``grid.png``; ``result.json``. Built in a temporary sibling folder and renamed into place, so OUT is
    either complete or absent. OUT must not exist or be an empty folder (nothing is overwritten)."""
    check_out(out)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name, value in results.items():
            if name in IMAGE_RESULTS:
                if kind == "npy":
                    np.save(tmp / f"{name}.npy", value.float().numpy().astype("<f4"))
                else:
                    for image, image_name in zip(value, names):
                        path = tmp / name / f"{image_name}.png"
                        path.parent.mkdir(parents=True, exist_ok=True)
                        save_image(image.float().clamp(0, 1), path, format="png")
            else:
                np.save(tmp / f"{name}.npy", value.numpy())
        tiles, nrow = grid
        save_image(tiles.float().clamp(0, 1), tmp / "grid.png", nrow=nrow, padding=2, format="png")
        (tmp / "result.json").write_text(json.dumps(record, indent=1) + "\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StorageError(f"cannot write {out}: {os_error(e)}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
