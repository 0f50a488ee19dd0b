"""Put a trained generator to work on real images: projection into z (GAN inversion) and inpainting.

Both are one search (:func:`search`): find, for each target image, the z (and, for conditional
generators, the class y) whose G(z, y) agrees with the pixels that are known.

* **Start**: a pool of ``pool`` random latents per image, scored by the distance without gradients; the
  ``restarts`` best of the pool start the search. Conditional generators: the class is the domain
  classifier's reading of the image, or (``classes='search'``, and for images with missing pixels) the pool
  is shared among all classes and the best start of each of the ``restarts`` most promising classes goes on.
* **Search**: batched Adam on z, the schedule of stylegan2-ada-pytorch's ``projector.py``: the learning
  rate warms up over the first 5% of steps and ramps down (cosine) over the last 25%; noise added to z is
  annealed to zero over the first 75%. After a quarter of the steps only each image's best candidate goes
  on, which makes restarts cheap.
* **Distance**: the mean squared pixel error over the known pixels, plus, when asked (``features``), the
  distance of D's features (``discriminator``: the run's own discriminator, its activations before the last
  layer, unit-normalised per position, as LPIPS does with VGG's) or the domain classifier's. The default is
  pixels alone: on 200 held-out mnist5k digits both feature distances gave the same MSE and label agreement
  at 2-3x the time (benchmarks/inverse.py). A prior keeps z typical: Gaussian z pays
  (‖z‖/√dim − 1)², uniform z is clipped to its cube.
* **Inpainting** (Yeh et al. 2017): known pixels near the hole weigh more (1 + 4 × their contextual
  weight: the fraction of missing pixels in the 7 × 7 window around them); D's realism can be added as a
  prior (``realism``, Yeh et al.'s λ; off by default: on 200 held-out mnist5k digits 0.003 moved the
  filled digits' accuracy by +1.5 points, within noise, lowered the PSNR in the hole by 0.2 dB and cost
  1.5x the time; 0.03 lowered the accuracy); G(z) is blended into the hole by Poisson blending (the hole takes G(z)'s gradients and the known pixels as its
  boundary), so the seam does not show and the known pixels come back exactly as given.

G (and D) stay frozen: eval mode (BatchNorm statistics untouched), no gradient into their weights.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import GanforgeError

FEATURES = ("discriminator", "classifier", "pixel")
MASK_SHORTHANDS = "top-half, bottom-half, left-half, right-half, center:K, random:P"


class Projection(NamedTuple):
    """What :meth:`LoadedGAN.project` returns: G(z) in [0, 1] (N, C, H, W), the latents z (N, z_dim),
    the classes y (N, or None when unconditional) and each image's final distance."""
    images: torch.Tensor
    z: torch.Tensor
    y: Optional[torch.Tensor]
    loss: torch.Tensor
    classes_by: str = ""  # conditional runs: how y was found ("classifier", "search" or "given")


class Inpainting(NamedTuple):
    """What :meth:`LoadedGAN.inpaint` returns: the filled images in [0, 1] (known pixels exactly as given),
    G(z) itself, z, y and each image's final distance."""
    filled: torch.Tensor
    generated: torch.Tensor
    z: torch.Tensor
    y: Optional[torch.Tensor]
    loss: torch.Tensor
    classes_by: str = ""


class _Frozen:
    """Modules in eval mode with no gradient into their weights for the ``with`` block; restored after."""

    def __init__(self, *modules: Optional[nn.Module]) -> None:
        self.modules = [m for m in modules if m is not None]

    def __enter__(self) -> None:
        self.saved = [(m.training, [(p, p.requires_grad) for p in m.parameters()]) for m in self.modules]
        for m in self.modules:
            m.eval().requires_grad_(False)

    def __exit__(self, *exc) -> None:
        for m, (training, flags) in zip(self.modules, self.saved):
            m.train(training)
            for p, flag in flags:
                p.requires_grad_(flag)


def lr_ramp(t: float, warmup: float = 0.05, rampdown: float = 0.25) -> float:
    """projector.py's learning-rate factor at fraction ``t`` of the steps: linear warm-up over the first
    ``warmup``, cosine ramp-down over the last ``rampdown``."""
    down = min(1.0, (1.0 - t) / rampdown)
    return (0.5 - 0.5 * math.cos(down * math.pi)) * min(1.0, t / warmup)


def noise_scale(t: float, initial: float, anneal: float = 0.75) -> float:
    """The latent noise at fraction ``t`` of the steps: ``initial`` · max(0, 1 − t/anneal)², as projector.py."""
    return initial * max(0.0, 1.0 - t / anneal) ** 2


def contextual_weights(mask: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Yeh et al.'s contextual weight of each known pixel: the fraction of missing pixels in the
    ``window`` × ``window`` neighbourhood (inside the image); 0 for missing pixels."""
    missing = F.avg_pool2d(1 - mask, window, 1, window // 2, count_include_pad=False)
    return missing * mask


def poisson_blend(generated: torch.Tensor, known: torch.Tensor, mask: torch.Tensor, iterations: int = 2000) -> torch.Tensor:
    """Fill the hole (mask 0) with ``generated``'s gradients and the known pixels as boundary: the result is
    ``generated`` + h, with h harmonic in the hole and h = known − generated on the known pixels (Jacobi
    iterations; replicate padding makes the image border a free edge). Known pixels are returned as given."""
    h = (known - generated) * mask
    hole = 1 - mask
    if float(hole.sum()) == 0:
        return known.clone()
    kernel = torch.tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]]).to(h)
    kernel = kernel.view(1, 1, 3, 3).repeat(h.shape[1], 1, 1, 1)
    for _ in range(iterations):
        avg = F.conv2d(F.pad(h, (1, 1, 1, 1), mode="replicate"), kernel, groups=h.shape[1])
        h = mask * h + hole * avg
    out = (generated + h).clamp(0, 1)
    return mask * known + hole * out


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
    from PIL import Image

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
    from .data import conform
    from .data.folder import EXTENSIONS, _Unusable, decode, scan

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
            x = (conform(x * 2 - 1, H, C) + 1) / 2
        return x.clamp(0, 1), [f"{i:06d}" for i in range(x.shape[0])], "npy", note
    if path.is_dir():
        files, _, _ = scan(path)
        if not files:
            raise GanforgeError(f"{path} holds no image files ({', '.join(EXTENSIONS)})")
    elif path.suffix.lower() in EXTENSIONS:
        files = [path]
    else:
        raise GanforgeError(f"{path}: give a folder of images, an image file or a .npy array")
    from PIL import Image

    images, resized = [], 0
    for f in files:
        try:
            with Image.open(f) as im:
                resized += im.size != (W, H)
            images.append(decode(f, H, C))
        except (_Unusable, OSError) as e:
            raise GanforgeError(f"cannot read image {f}: {e}") from None
    names = [str(f.relative_to(path).with_suffix("")) if path.is_dir() else f.stem for f in files]
    note = f"{resized} image(s) resized to the generator's {W}x{H} px" if resized else None
    return (torch.stack(images) + 1) / 2, names, "images", note


def discriminator_of(gan) -> Optional[nn.Module]:
    """The run's D from the checkpoint G came from (None for exports, and for D's that judge batches)."""
    from .checkpoint import load_checkpoint
    from .models import build_discriminator, spectral_normalise

    cfg = gan.config
    if gan.source.suffix != ".pt" or cfg.model.d_input != "sample" or cfg.model.d_pack > 1:
        return None
    state = load_checkpoint(gan.source)
    if "D" not in state:
        return None
    D = build_discriminator(cfg.model, gan.data_shape, gan.n_classes)
    D = spectral_normalise(D) if cfg.spectral_norm else D
    D.load_state_dict(state["D"])
    return D.to(gan.device).eval()


def _d_features(D: nn.Module):
    """φ(x): D's activations before its last layer, unit-normalised per position (channels) or per sample."""
    base = getattr(D, "base", D)
    conv = isinstance(base.net[-1], nn.Conv2d)

    def phi(x: torch.Tensor) -> torch.Tensor:
        h = base.net[:-1](x if conv else x.flatten(1))
        return F.normalize(h, dim=1)
    return phi


def _classifier_features(gan):
    from .data import load_dataset
    from .metrics import reference

    ref = reference(load_dataset(gan.config.data, verbose=False), gan.config.replace(eval={"features": "classifier"}).eval)
    net = ref.extractor.net.eval().to(gan.device)

    def phi(x: torch.Tensor) -> torch.Tensor:
        return F.normalize(net.features(x).flatten(1), dim=1)
    return phi, net


def _z_prior(z: torch.Tensor, z_dist: str) -> torch.Tensor:
    if z_dist == "uniform":
        return torch.zeros(z.shape[0], device=z.device)
    return (z.norm(dim=1) / math.sqrt(z.shape[1]) - 1) ** 2


def search(gan, target: torch.Tensor, mask: Optional[torch.Tensor] = None, steps: int = 200, restarts: int = 4,
           seed: int = 0, features: str = "pixel", lr: float = 0.1, pool: int = 32,
           prior: float = 0.1, feature_weight: float = 0.1, realism: float = 0.0, noise: float = 0.3,
           batch_size: int = 256, progress: bool = True, labels: Optional[torch.Tensor] = None,
           classes: str = "auto") -> Projection:
    """Find z (and y) with G(z, y) close to ``target`` (N, C, H, W) in [0, 1] on the pixels ``mask`` says are
    known (N, 1, H, W; None: all). See the module's docstring; returns G(z) in [0, 1]. ``labels`` fixes the
    classes of a conditional generator; otherwise ``classes`` says how they are found: ``classifier`` (the
    domain classifier of the run's data reads each image; its class is searched), ``search`` (each class is
    tried on the random pool, the best of the ``restarts`` most promising classes go on), ``auto``
    (the classifier when the run's data has one with G's classes and no pixel is missing, else search)."""
    from tqdm import tqdm

    if not gan.is_image:
        raise GanforgeError("projection needs an image model; this run's data is a toy distribution")
    if features not in FEATURES:
        raise GanforgeError(f"features must be one of {', '.join(FEATURES)}, got '{features}'")
    if steps < 1 or restarts < 1 or pool < 1:
        raise GanforgeError(f"steps, restarts and pool must be >= 1, got {steps}, {restarts}, {pool}")
    if tuple(target.shape[1:]) != gan.data_shape:
        raise GanforgeError(f"images of shape {list(target.shape[1:])} do not match the generator's "
                            f"{list(gan.data_shape)}")
    n = target.shape[0]
    mask = torch.ones(n, 1, *target.shape[2:]) if mask is None else mask
    weight = mask * (1 + 4 * contextual_weights(mask)) if float(mask.min()) < 1 else mask
    if classes not in ("auto", "classifier", "search"):
        raise GanforgeError(f"classes must be auto, classifier or search, got '{classes}'")
    target = target * mask  # nothing of the missing pixels is seen: they read as black (0)
    if classes == "auto" and float(mask.min()) < 1:
        classes = "search"  # the classifier misreads images with holes (centre 14x14 on mnist5k: 5 in 16 wrong)
    D = discriminator_of(gan) if features == "discriminator" or realism > 0 else None
    phi, extra, probs = None, None, None
    if features == "discriminator" and D is not None:
        phi = _d_features(D)
    rank_classes = bool(gan.n_classes) and labels is None and classes != "search"
    if features == "classifier" or rank_classes:
        try:
            phi_c, extra = _classifier_features(gan)
        except GanforgeError:
            if features == "classifier" or classes == "classifier":
                raise
            phi_c, extra = None, None
        phi = phi_c if features == "classifier" else phi
        if rank_classes and extra is not None:
            with torch.no_grad():
                probs = torch.cat([torch.softmax(extra(target[j: j + 500].to(gan.device) * 2 - 1), 1).cpu()
                                   for j in range(0, n, 500)])
            if probs.shape[1] != gan.n_classes:
                if classes == "classifier":
                    raise GanforgeError(f"the domain classifier has {probs.shape[1]} classes, the generator "
                                        f"{gan.n_classes}")
                probs = None
    how = "given" if labels is not None else "classifier" if probs is not None else "search" if gan.n_classes else ""
    chunks = []
    with _Frozen(gan.generator, D, extra), tqdm(total=n, unit="image", desc="projecting", file=sys.stderr,
                                                 disable=not progress or n <= batch_size) as bar:
        for i in range(0, n, batch_size):
            sl = slice(i, i + batch_size)
            chunks.append(_search_batch(gan, target[sl].to(gan.device) * 2 - 1, weight[sl].to(gan.device), steps,
                                        restarts, seed + i, lr, pool, prior, feature_weight, realism, noise, phi,
                                        D, None if labels is None else labels[sl],
                                        None if probs is None else probs[sl]))
            bar.update(min(batch_size, n - i))
    z, loss, images = (torch.cat([c[k] for c in chunks]).cpu() for k in (0, 2, 3))
    y = torch.cat([c[1] for c in chunks]).cpu() if gan.n_classes else None
    return Projection((images + 1) / 2, z, y, loss, how)


def _search_batch(gan, target, weight, steps, restarts, seed, lr, pool, prior, feature_weight, realism, noise,
                  phi, D, labels, class_probs=None):
    G, cfg, dev = gan.generator, gan.config.model, gan.device
    gen = torch.Generator().manual_seed(seed)
    n, K = target.shape[0], gan.n_classes
    target_phi = phi(target) if phi is not None else None
    wsum = weight.flatten(1).sum(1).clamp_min(1e-8)

    def run_g(z, y):
        return G(z, y) if K else G(z)

    def distance(x, idx, z, y):
        """Per candidate: weighted pixel MSE (+ feature distance, + z prior, + realism); idx: target rows."""
        d = ((x - target[idx]) ** 2 * weight[idx]).flatten(1).sum(1) / wsum[idx]
        if phi is not None:
            d = d + feature_weight * ((phi(x) - target_phi[idx]) ** 2).flatten(1).sum(1) / \
                math.prod(target_phi.shape[2:] or (1,))
        if realism > 0 and D is not None:
            d = d + realism * F.softplus(-(D(x, y) if K else D(x)))
        return d, d + prior * _z_prior(z, cfg.z_dist)

    # The pool: random latents per image (and class, when the class is searched), scored without gradients.
    if K and labels is None and class_probs is not None:
        labels = class_probs.argmax(1)  # the classifier's class
    search_classes = bool(K) and labels is None
    if search_classes:
        pool = max(2, -(-pool // K))  # the pool is shared among the classes
    per = pool * K if search_classes else pool
    zs = _draw(cfg, n * per, gen)
    if search_classes:
        ys = torch.arange(K).repeat_interleave(pool).repeat(n).to(dev)
    else:
        ys = labels.repeat_interleave(per).to(dev) if K else None
    idx, scores = torch.arange(n).repeat_interleave(per), []
    with torch.no_grad():
        for j in range(0, n * per, 4096):
            zj, yj = zs[j: j + 4096].to(dev), None if ys is None else ys[j: j + 4096]
            scores.append(distance(run_g(zj, yj), idx[j: j + 4096], zj, yj)[1].cpu())
    scores = torch.cat(scores).view(n, per)
    if search_classes:  # the best of each class, then the `restarts` most promising classes
        best_per_class, arg = scores.view(n, K, pool).min(2)
        top = best_per_class.argsort(1)[:, :restarts]                              # (n, r) classes
        pick = top * pool + arg.gather(1, top)
    else:
        pick = scores.argsort(1)[:, :restarts]
    r = pick.shape[1]
    rows = (torch.arange(n)[:, None] * per + pick).flatten()
    z = zs[rows].to(dev).clone()
    y = ys[rows].clone() if ys is not None else None
    idx = torch.arange(n, device=dev).repeat_interleave(r)
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr, betas=(0.9, 0.999))
    prune_at = steps // 4 if r > 1 else -1
    for step in range(steps):
        t = step / steps
        for group in opt.param_groups:
            group["lr"] = lr * lr_ramp(t)
        z_in = z + noise_scale(t, noise) * torch.randn(z.shape, generator=gen).to(dev)
        _, total = distance(run_g(z_in, y), idx, z, y)
        opt.zero_grad(set_to_none=True)
        total.sum().backward()
        opt.step()
        if cfg.z_dist == "uniform":
            with torch.no_grad():
                z.clamp_(0, 1)
        if step == prune_at:  # only each image's best candidate goes on
            with torch.no_grad():
                _, total = distance(run_g(z, y), idx, z, y)
                best = total.view(n, r).argmin(1) + torch.arange(n, device=dev) * r
            z = z.detach()[best].clone().requires_grad_(True)
            y = y[best] if y is not None else None
            idx = torch.arange(n, device=dev)
            state = opt.state[opt.param_groups[0]["params"][0]]
            opt = torch.optim.Adam([z], lr=lr, betas=(0.9, 0.999))
            opt.state[z] = {k: (v[best] if torch.is_tensor(v) and v.dim() else v) for k, v in state.items()}
            r = 1
    with torch.no_grad():
        x = run_g(z, y)
        d, total = distance(x, idx, z, y)
        if r > 1:
            best = total.view(n, r).argmin(1) + torch.arange(n, device=dev) * r
            z, y, d, x = z[best], (y[best] if y is not None else None), d[best], x[best]
    return z.detach(), (y if y is not None else torch.zeros(0, dtype=torch.long)), d.detach(), x.float()


def _draw(cfg, n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, cfg.z_dim, generator=gen) if cfg.z_dist == "uniform" else torch.randn(n, cfg.z_dim, generator=gen)


def inpaint(gan, x: torch.Tensor, mask: torch.Tensor, realism: float = 0.0, **kw) -> Inpainting:
    """Fill the missing pixels (mask 0) of ``x`` (N, C, H, W in [0, 1]) from G: search z on the known
    pixels (contextual weights, D's realism as a prior), then Poisson-blend G(z) into the hole."""
    if mask.shape[0] == 1 and x.shape[0] > 1:
        mask = mask.expand(x.shape[0], -1, -1, -1)
    if mask.shape != (x.shape[0], 1, *x.shape[2:]):
        raise GanforgeError(f"the mask has shape {list(mask.shape)}; these images need "
                            f"{[x.shape[0], 1, *x.shape[2:]]} or {[1, 1, *x.shape[2:]]}")
    p = search(gan, x, mask, realism=realism, **kw)
    filled = poisson_blend(p.images, x, mask)
    return Inpainting(filled, p.images, p.z, p.y, p.loss, p.classes_by)


# --- writing results (the ``project`` and ``inpaint`` commands) ------------------------------------------

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
    import json
    import os
    import shutil

    from torchvision.utils import save_image

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
        from .checkpoint import os_error
        from .errors import StorageError

        shutil.rmtree(tmp, ignore_errors=True)
        raise StorageError(f"cannot write {out}: {os_error(e)}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
