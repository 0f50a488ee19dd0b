"""Every metric ganforge computes, declared once: its outputs, their direction and label, what data it
applies to, and whether training may run it.

This table is data, below everything else (it imports nothing of ganforge), so that config validation,
checkpoint ranking (:func:`rank`), the curves, the HTML report and ``ganforge eval --help`` all read the
same facts. The functions that compute the metrics register against these names in :mod:`ganforge.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class Output:
    """One number a metric writes into an evaluation line."""

    key: str
    label: str
    lower_is_better: Optional[bool] = None  # None: not a quality score (bookkeeping, a mean, a count)


@dataclass(frozen=True)
class Metric:
    name: str  # what --metrics and eval.train_metrics say
    data: str  # image | labelled-image | stacked-image | toy-1d | toy-2d | conditional (ganforge eval only)
    outputs: Tuple[Output, ...]
    summary: str
    in_training: bool = True  # eval.train_metrics may name it (image metrics) / training runs it (toy)


def _o(key: str, label: str, lower: Optional[bool] = None) -> Output:
    return Output(key, label, lower)


METRICS: Tuple[Metric, ...] = (
    Metric("fid", "image", (_o("fid", "FID", True), _o("fd_imagenet_inception", "FD, ImageNet Inception", True)),
           "Fréchet distance of the features (fd_imagenet_inception on torchvision's Inception)"),
    Metric("kid", "image", (_o("kid", "KID", True), _o("kid_std", "KID std")), "kernel inception distance"),
    Metric("pr", "image", (_o("precision", "precision", False), _o("recall", "recall", False)),
           "precision and recall (k=3)"),
    Metric("dc", "image", (_o("density", "density", False), _o("coverage", "coverage", False)),
           "density and coverage (k=5)"),
    Metric("modes", "labelled-image", (_o("modes_covered", "modes covered", False), _o("modes_total", "modes"),
                                       _o("kl_modes", "KL(modes)", True)),
           "classes the domain classifier sees, and KL of their histogram to the data's"),
    Metric("modes_1000", "stacked-image",
           (_o("modes_1000", "modes of 1,000", False), _o("kl_1000", "KL(1,000 modes)", True)),
           "Stacked MNIST: the 1,000 digit triples hit at least once, and KL of their histogram to uniform"),
    Metric("cs", "labelled-image", (_o("classifier_score", "classifier score", False),),
           "the domain classifier's Inception-score analogue"),
    Metric("distribution-1d", "toy-1d", (_o("w1", "W1", True), _o("ks", "KS statistic", True), _o("mean", "mean"),
                                         _o("std", "std"), _o("mean_error", "mean error"), _o("std_error", "std error")),
           "1-D toy data: Wasserstein-1, Kolmogorov-Smirnov, moments"),
    Metric("modes-2d", "toy-2d", (_o("hq_fraction", "high-quality fraction", False),
                                  _o("modes_covered", "modes covered", False), _o("modes_total", "modes"),
                                  _o("kl_modes", "KL(modes)", True)),
           "2-D mixtures: share of samples within 3 std of a mode, modes covered, KL"),
    Metric("gan_train", "conditional", (_o("gan_train", "GAN-train accuracy", False),),
           "a classifier trained on generated images, its accuracy on the real data", in_training=False),
    Metric("gan_test", "conditional", (_o("gan_test", "GAN-test accuracy", False),),
           "the domain classifier's accuracy on generated images of each class", in_training=False),
)
BY_NAME: Dict[str, Metric] = {m.name: m for m in METRICS}
ON_REQUEST = tuple(m.name for m in METRICS if m.data == "conditional")  # ganforge eval runs them only by name
OUTPUTS: Dict[str, Output] = {o.key: o for m in METRICS for o in m.outputs}
BOOKKEEPING = ("step", "epoch", "kind", "n", "n_ref", "seed", "features", "features_info", "checkpoint", "data")


def training_metrics() -> Tuple[str, ...]:
    """The image metrics that eval.train_metrics may name."""
    return tuple(m.name for m in METRICS if m.in_training and m.data.endswith("image"))


def best_choices() -> Dict[str, str]:
    """eval.best's choices: output key → the training metric that computes it (quality scores only)."""
    return {o.key: m.name for m in METRICS if m.in_training and m.data.endswith("image")
            for o in m.outputs if o.lower_is_better is not None and o.key != "fd_imagenet_inception"}


def label(key: str) -> str:
    """'FID (lower is better)', 'precision', ... for a curve's title or a table's header."""
    o = OUTPUTS.get(key)
    if o is None:
        return key
    return f"{o.label} (lower is better)" if o.lower_is_better else o.label


FIXED = ("modes_total", "kid_std")  # outputs that are no curve or column: a count fixed per run, a spread


def is_score(key: str) -> bool:
    """A number of an evaluation line worth a curve or a column (not bookkeeping, a fixed count or a spread)."""
    return key not in BOOKKEEPING and key not in FIXED


def columns() -> Tuple[str, ...]:
    """The outputs in the order of this table, for a report's columns."""
    return tuple(dict.fromkeys(o.key for m in METRICS for o in m.outputs if o.key not in FIXED))


def rank_key(metrics: Dict[str, float], best: str = "fid") -> str:
    """The metric that leads :func:`rank` for these metrics (what ``sample`` names when it picks best.pt)."""
    if "w1" in metrics:
        return "w1"
    if "hq_fraction" in metrics:
        return "modes_covered"
    if best == "fid" and "fid" not in metrics and "fd_imagenet_inception" in metrics:
        return "fd_imagenet_inception"  # eval.best fid on torchvision's Inception: its Fréchet distance
    return best


def rank(metrics: Dict[str, float], best: str = "fid") -> tuple:
    """Order evaluations, higher is better: 1-D toy data by lowest W1; 2-D by most modes covered, then
    most high-quality samples, then lowest KL; images by ``eval.best``."""
    key = rank_key(metrics, best)
    if key == "w1":
        return (-metrics["w1"],)
    if "hq_fraction" in metrics:
        return (metrics["modes_covered"], metrics["hq_fraction"], -metrics["kl_modes"])
    value = float(metrics[key])
    return (-value if OUTPUTS[key].lower_is_better else value,)


def help_text() -> str:
    """One line per metric, for ``ganforge eval --help``."""
    return "; ".join(f"{m.name} ({', '.join(o.key for o in m.outputs)}): {m.summary}" for m in METRICS)
