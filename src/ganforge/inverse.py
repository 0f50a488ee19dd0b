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
Reading images and masks from files and writing result folders is :mod:`ganforge.repair`'s.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .checkpoint import load_checkpoint
from .data import from_unit, load_dataset, to_unit
from .errors import GanforgeError
from .metrics import reference
from .models import build_discriminator, spectral_normalise

FEATURES = ("discriminator", "classifier", "pixel")


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



def discriminator_of(gan) -> Optional[nn.Module]:
    """The run's D from the checkpoint G came from (None for exports, and for D's that judge batches)."""

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
    _check(gan, target, features, steps, restarts, pool, classes)
    n = target.shape[0]
    mask = torch.ones(n, 1, *target.shape[2:]) if mask is None else mask
    weight = mask * (1 + 4 * contextual_weights(mask)) if float(mask.min()) < 1 else mask
    target = target * mask  # nothing of the missing pixels is seen: they read as black (0)
    if classes == "auto" and float(mask.min()) < 1:
        classes = "search"  # the classifier misreads images with holes (centre 14x14 on mnist5k: 5 in 16 wrong)
    D = discriminator_of(gan) if features == "discriminator" or realism > 0 else None
    phi, extra, probs = _readers(gan, target, features, classes, labels, D)
    how = "given" if labels is not None else "classifier" if probs is not None else "search" if gan.n_classes else ""
    chunks = []
    with _Frozen(gan.generator, D, extra), tqdm(total=n, unit="image", desc="projecting",
                                                 disable=not progress or n <= batch_size) as bar:
        for i in range(0, n, batch_size):
            sl = slice(i, i + batch_size)
            dist = _Distance(gan, from_unit(target[sl].to(gan.device)), weight[sl].to(gan.device), phi, D, prior,
                             feature_weight, realism)
            chunks.append(_search_batch(gan, dist, steps, restarts, seed + i, lr, pool, noise,
                                        None if labels is None else labels[sl], None if probs is None else probs[sl]))
            bar.update(min(batch_size, n - i))
    z, loss, images = (torch.cat([c[k] for c in chunks]).cpu() for k in (0, 2, 3))
    y = torch.cat([c[1] for c in chunks]).cpu() if gan.n_classes else None
    return Projection(to_unit(images), z, y, loss, how)


def _check(gan, target: torch.Tensor, features: str, steps: int, restarts: int, pool: int, classes: str) -> None:
    if not gan.is_image:
        raise GanforgeError("projection needs an image model; this run's data is a toy distribution")
    if features not in FEATURES:
        raise GanforgeError(f"features must be one of {', '.join(FEATURES)}, got '{features}'")
    if steps < 1 or restarts < 1 or pool < 1:
        raise GanforgeError(f"steps, restarts and pool must be >= 1, got {steps}, {restarts}, {pool}")
    if tuple(target.shape[1:]) != gan.data_shape:
        raise GanforgeError(f"images of shape {list(target.shape[1:])} do not match the generator's "
                            f"{list(gan.data_shape)}")
    if classes not in ("auto", "classifier", "search"):
        raise GanforgeError(f"classes must be auto, classifier or search, got '{classes}'")


def _readers(gan, target: torch.Tensor, features: str, classes: str, labels, D):
    """(φ for the feature distance or None, the domain classifier or None, its class probabilities of each
    target when it picks the classes, else None)."""
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
                probs = torch.cat([torch.softmax(extra(from_unit(target[j: j + 500].to(gan.device))), 1).cpu()
                                   for j in range(0, target.shape[0], 500)])
            if probs.shape[1] != gan.n_classes:
                if classes == "classifier":
                    raise GanforgeError(f"the domain classifier has {probs.shape[1]} classes, the generator "
                                        f"{gan.n_classes}")
                probs = None
    return phi, extra, probs


class _Distance:
    """Per candidate: weighted pixel MSE (+ feature distance, + realism), and that plus the z prior."""

    def __init__(self, gan, target, weight, phi, D, prior: float, feature_weight: float, realism: float) -> None:
        self.G, self.K, self.z_dist = gan.generator, gan.n_classes, gan.config.model.z_dist
        self.target, self.weight, self.phi, self.D = target, weight, phi, D
        self.prior, self.feature_weight, self.realism = prior, feature_weight, realism
        self.target_phi = phi(target) if phi is not None else None
        self.wsum = weight.flatten(1).sum(1).clamp_min(1e-8)

    def g(self, z, y):
        return self.G(z, y) if self.K else self.G(z)

    def __call__(self, x, idx, z, y):
        """idx: the target row of each candidate."""
        d = ((x - self.target[idx]) ** 2 * self.weight[idx]).flatten(1).sum(1) / self.wsum[idx]
        if self.phi is not None:
            d = d + self.feature_weight * ((self.phi(x) - self.target_phi[idx]) ** 2).flatten(1).sum(1) / \
                math.prod(self.target_phi.shape[2:] or (1,))
        if self.realism > 0 and self.D is not None:
            d = d + self.realism * F.softplus(-(self.D(x, y) if self.K else self.D(x)))
        return d, d + self.prior * _z_prior(z, self.z_dist)


def _search_batch(gan, dist: _Distance, steps, restarts, seed, lr, pool, noise, labels, class_probs=None):
    gen = torch.Generator().manual_seed(seed)
    z, y, r = _starts(gan, dist, restarts, pool, labels, class_probs, gen)
    n, dev = dist.target.shape[0], gan.device
    idx = torch.arange(n, device=dev).repeat_interleave(r)
    z, y, idx, r = _descend(gan, dist, z, y, idx, r, steps, lr, noise, gen)
    with torch.no_grad():
        x = dist.g(z, y)
        d, total = dist(x, idx, z, y)
        if r > 1:
            best = total.view(n, r).argmin(1) + torch.arange(n, device=dev) * r
            z, y, d, x = z[best], (y[best] if y is not None else None), d[best], x[best]
    return z.detach(), (y if y is not None else torch.zeros(0, dtype=torch.long)), d.detach(), x.float()


def _starts(gan, dist: _Distance, restarts, pool, labels, class_probs, gen):
    """The pool: random latents per image (and class, when the class is searched), scored without
    gradients; returns the ``r`` best starts of each image (z, y) and r."""
    cfg, dev, n, K = gan.config.model, gan.device, dist.target.shape[0], gan.n_classes
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
            scores.append(dist(dist.g(zj, yj), idx[j: j + 4096], zj, yj)[1].cpu())
    scores = torch.cat(scores).view(n, per)
    if search_classes:  # the best of each class, then the `restarts` most promising classes
        best_per_class, arg = scores.view(n, K, pool).min(2)
        top = best_per_class.argsort(1)[:, :restarts]                              # (n, r) classes
        pick = top * pool + arg.gather(1, top)
    else:
        pick = scores.argsort(1)[:, :restarts]
    rows = (torch.arange(n)[:, None] * per + pick).flatten()
    return zs[rows].to(dev).clone(), (ys[rows].clone() if ys is not None else None), pick.shape[1]


def _descend(gan, dist: _Distance, z, y, idx, r, steps, lr, noise, gen):
    """Adam on z with the projector's schedule; after a quarter of the steps only each image's best
    candidate goes on (its Adam state kept). Returns (z, y, idx, r)."""
    n, dev, z_dist = dist.target.shape[0], gan.device, gan.config.model.z_dist
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr, betas=(0.9, 0.999))
    prune_at = steps // 4 if r > 1 else -1
    for step in range(steps):
        t = step / steps
        for group in opt.param_groups:
            group["lr"] = lr * lr_ramp(t)
        z_in = z + noise_scale(t, noise) * torch.randn(z.shape, generator=gen).to(dev)
        _, total = dist(dist.g(z_in, y), idx, z, y)
        opt.zero_grad(set_to_none=True)
        total.sum().backward()
        opt.step()
        if z_dist == "uniform":
            with torch.no_grad():
                z.clamp_(0, 1)
        if step == prune_at:  # only each image's best candidate goes on
            with torch.no_grad():
                _, total = dist(dist.g(z, y), idx, z, y)
                best = total.view(n, r).argmin(1) + torch.arange(n, device=dev) * r
            z = z.detach()[best].clone().requires_grad_(True)
            y = y[best] if y is not None else None
            idx = torch.arange(n, device=dev)
            state = opt.state[opt.param_groups[0]["params"][0]]
            opt = torch.optim.Adam([z], lr=lr, betas=(0.9, 0.999))
            opt.state[z] = {k: (v[best] if torch.is_tensor(v) and v.dim() else v) for k, v in state.items()}
            r = 1
    return z, y, idx, r


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
