"""Image metrics on features: FID, KID, precision/recall, density/coverage, mode coverage, classifier score.

The formulas are pure functions of feature (or class-probability) tensors, tested against hand-computed
values. :class:`ImageReference` holds a dataset's features for one extractor (computed once), and the
registered metrics score generated images against it.

* FID (Heusel et al. 2017): ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½), in float64 with symmetric
  eigen-decompositions (no complex sqrtm).
* KID (Bińkowski et al. 2018): unbiased MMD² with the cubic kernel (x·y/d + 1)³, averaged over
  random subsets (mean and std reported).
* Precision / recall (Kynkäänniemi et al. 2019, k = 3): a fake is precise when it lies inside some real
  sample's k-NN ball; a real is recalled when it lies inside some fake's k-NN ball.
* Density / coverage (Naeem et al. 2020, k = 5): density counts, per fake, the real balls holding it
  (/k, averaged); coverage is the fraction of real balls holding at least one fake.
* Modes (labelled data): predicted classes of the fakes; a class is covered when it holds ≥ 2% of them;
  KL(fake class histogram ‖ reference class histogram).
* Classifier score: exp(E_x KL(p(y|x) ‖ p(y))), the Inception Score's formula with the domain classifier.
* Stacked MNIST's 1,000 modes (VEEGAN's protocol): each channel read by the digit classifier; a mode is
  covered when at least one sample falls in it; KL(sample mode histogram ‖ uniform).
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch

from .features import Extractor, cache_dir, data_hash
from .registry import register

Tensor = torch.Tensor


def _sqrtm_psd(a: Tensor) -> Tensor:
    vals, vecs = torch.linalg.eigh(a)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def fid_from_stats(mu1: Tensor, s1: Tensor, mu2: Tensor, s2: Tensor) -> float:
    mu1, s1, mu2, s2 = (t.double() for t in (mu1, s1, mu2, s2))
    r1 = _sqrtm_psd(s1)
    middle = r1 @ s2 @ r1
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_sqrt)


def stats(f: Tensor):
    f = f.double()
    return f.mean(0), torch.cov(f.T)


def fid(real: Tensor, fake: Tensor) -> float:
    return fid_from_stats(*stats(real), *stats(fake))


def kid(real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> Dict[str, float]:
    real, fake = real.double(), fake.double()
    d = real.shape[1]
    m = min(subset_size, real.shape[0], fake.shape[0])
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        x = real[torch.randperm(real.shape[0], generator=gen)[:m]]
        y = fake[torch.randperm(fake.shape[0], generator=gen)[:m]]
        kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        off = 1 - torch.eye(m, dtype=torch.float64)
        values.append(float((kxx * off).sum() / (m * (m - 1)) + (kyy * off).sum() / (m * (m - 1))
                            - 2 * kxy.mean()))
    v = torch.tensor(values)
    return {"kid": float(v.mean()), "kid_std": float(v.std()) if len(values) > 1 else 0.0}


def knn_radii(x: Tensor, k: int) -> Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row."""
    out = []
    for i in range(0, x.shape[0], 2048):
        d = torch.cdist(x[i : i + 2048], x)
        out.append(d.kthvalue(k + 1, dim=1).values)  # +1: the row itself is at distance 0
    return torch.cat(out)


def _inside(points: Tensor, centres: Tensor, radii: Tensor, chunk: int = 2048) -> Tensor:
    """For each point, how many of the centres' balls (centre, radius) hold it."""
    counts = []
    for i in range(0, points.shape[0], chunk):
        counts.append((torch.cdist(points[i : i + chunk], centres) <= radii[None]).sum(1))
    return torch.cat(counts)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, real_radii: Optional[Tensor] = None) -> Dict[str, float]:
    real, fake = real.double(), fake.double()
    real_radii = knn_radii(real, k) if real_radii is None else real_radii
    precision = (_inside(fake, real, real_radii) > 0).double().mean()
    recall = (_inside(real, fake, knn_radii(fake, k)) > 0).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real: Tensor, fake: Tensor, k: int = 5, real_radii: Optional[Tensor] = None) -> Dict[str, float]:
    real, fake = real.double(), fake.double()
    radii = knn_radii(real, k) if real_radii is None else real_radii
    density = _inside(fake, real, radii).double().sum() / (k * fake.shape[0])
    nearest_fake = torch.cat([torch.cdist(real[i : i + 2048], fake).min(1).values
                              for i in range(0, real.shape[0], 2048)])
    return {"density": float(density), "coverage": float((nearest_fake <= radii).double().mean())}


def mode_stats(fake_probs: Tensor, ref_hist: Tensor, threshold: float = 0.02) -> Dict[str, float]:
    classes = ref_hist.shape[0]
    hist = torch.bincount(fake_probs.argmax(1), minlength=classes).double()
    p = hist / hist.sum()
    q = ref_hist.double() / ref_hist.sum()
    kl = float((p[p > 0] * (p[p > 0] / q[p > 0].clamp(min=1e-12)).log()).sum())
    return {"modes_covered": int((p >= threshold).sum()), "modes_total": classes, "kl_modes": kl}


def modes_uniform(fake_probs: Tensor) -> Dict[str, float]:
    """Modes hit at least once, and KL(histogram ‖ uniform) = Σ p log(K p), over K = the probabilities' classes."""
    k = fake_probs.shape[1]
    hist = torch.bincount(fake_probs.argmax(1), minlength=k).double()
    p = hist[hist > 0] / hist.sum()
    return {"modes_1000": int((hist > 0).sum()), "kl_1000": float((p * (p * k).log()).sum())}


def classifier_score(probs: Tensor) -> float:
    p = probs.double().clamp(min=1e-12)
    marginal = p.mean(0, keepdim=True)
    return float(math.exp((p * (p.log() - marginal.log())).sum(1).mean()))


def cached_features(extractor: Extractor, x: Tensor) -> Tensor:
    """The extractor's features of real images ``x``, cached on disk keyed by a hash of the images (8-bit)
    and the extractor, so a second evaluation only embeds the samples."""
    import hashlib
    import os


    key = data_hash(x, torch.zeros(0, dtype=torch.int64)) + "-" + hashlib.sha1(extractor.name.encode()).hexdigest()[:8]
    path = cache_dir() / "features" / f"{key}.pt"
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["features"].double()
    except Exception:  # none yet, or unreadable: compute it again
        pass
    features = extractor(x)["features"].float()  # stored and used at float32: a cache hit gives the same numbers
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({"features": features.float(), "extractor": extractor.name, "n": x.shape[0]}, tmp)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache costs the embedding next time
    return features.double()


class ImageReference:
    """A dataset's images with an extractor: the reference side of every image metric, computed once."""

    kind = "image-reference"

    def __init__(self, x: Tensor, y: Optional[Tensor], extractor: Extractor, name: str) -> None:
        self.x, self.y, self.extractor, self.name = x, y, extractor, name
        self.features = cached_features(extractor, x) if extractor.slow else extractor(x)["features"]
        self.class_hist = torch.bincount(y, minlength=extractor.classes) if (y is not None and extractor.classes) \
            else None
        self.radii: Dict[int, Tensor] = {}
        self._stats = None

    def stats(self):
        if self._stats is None:
            self._stats = stats(self.features)
        return self._stats

    def radius(self, k: int) -> Tensor:
        if k not in self.radii:
            self.radii[k] = knn_radii(self.features, k)
        return self.radii[k]


def _ref(data) -> bool:
    return isinstance(data, ImageReference)


def _feats(samples: Tensor, ref: ImageReference) -> Dict[str, Tensor]:
    cache = getattr(ref, "_last", None)
    if cache is not None and cache[0] is samples:
        return cache[1]
    out = ref.extractor(samples)
    ref._last = (samples, out)
    return out


NOT_FID = "fd_imagenet_inception"  # the Fréchet distance on torchvision's ImageNet Inception: never called FID


@register("fid", _ref)
def _fid(samples: Tensor, ref: ImageReference) -> Dict[str, float]:
    """The Fréchet distance on the reference's features: ``fid`` (the standard FID network, or the domain
    classifier, whose name the record carries), but ``fd_imagenet_inception`` on torchvision's ImageNet
    Inception, whose numbers do not compare with published FIDs."""
    key = NOT_FID if ref.extractor.name.startswith("torchvision-inception") else "fid"
    return {key: fid_from_stats(*ref.stats(), *stats(_feats(samples, ref)["features"]))}


@register("kid", _ref)
def _kid(samples: Tensor, ref: ImageReference) -> Dict[str, float]:
    return kid(ref.features, _feats(samples, ref)["features"])


@register("pr", _ref)
def _pr(samples: Tensor, ref: ImageReference) -> Dict[str, float]:
    return precision_recall(ref.features, _feats(samples, ref)["features"], 3, ref.radius(3))


@register("dc", _ref)
def _dc(samples: Tensor, ref: ImageReference) -> Dict[str, float]:
    return density_coverage(ref.features, _feats(samples, ref)["features"], 5, ref.radius(5))


def _labelled(data) -> bool:
    return _ref(data) and data.class_hist is not None


@register("modes", _labelled)
def _modes(samples: Tensor, ref: ImageReference) -> Dict[str, float]:
    return mode_stats(_feats(samples, ref)["probs"], ref.class_hist)


@register("cs", _labelled)
def _cs(samples: Tensor, ref: ImageReference) -> Dict[str, float]:
    return {"classifier_score": classifier_score(_feats(samples, ref)["probs"])}


def _stacked(data) -> bool:
    return _ref(data) and data.extractor.classes == 1000


@register("modes_1000", _stacked)
def _modes_1000(samples: Tensor, ref: ImageReference) -> Dict[str, float]:
    return modes_uniform(_feats(samples, ref)["probs"])
