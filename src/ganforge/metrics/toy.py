"""Distribution metrics for toy data, against the known target.

1-D: Wasserstein-1 and Kolmogorov–Smirnov distances to the exact target CDF, mean and std (and their
errors for a single Gaussian). 2-D mixtures, the VEEGAN/PacGAN protocol (Srivastava et al. 2017; Lin
et al. 2018): a sample is high quality (HQ) when it lies within 3 standard deviations of its nearest
mode; a mode is covered when it holds at least 20% of its fair share of the HQ samples; and the KL
divergence of the HQ mode histogram from the mixture's weights (uniform for ring-8 / grid-25).
"""

from __future__ import annotations

import math
from typing import Dict

import torch

from ..data.toy import Mixture
from .registry import register


def _is_mixture(dim: int):
    return lambda data: isinstance(data, Mixture) and data.dim == dim


def w1_distance_1d(x: torch.Tensor, target: Mixture, points: int = 200_000) -> float:
    """∫ |F_n(t) − F(t)| dt, with F_n the samples' empirical CDF and F the target's exact CDF."""
    x = torch.sort(x.double().flatten()).values
    lo = min(x[0].item(), (target.means[:, 0] - 10 * target.stds).min().item())
    hi = max(x[-1].item(), (target.means[:, 0] + 10 * target.stds).max().item())
    t = torch.linspace(lo, hi, points, dtype=torch.float64)
    empirical = torch.searchsorted(x, t, right=True).double() / x.numel()
    return torch.trapezoid((empirical - target.cdf(t)).abs(), t).item()


def ks_statistic_1d(x: torch.Tensor, target: Mixture) -> float:
    """sup_t |F_n(t) − F(t)|, evaluated on both sides of every jump of F_n."""
    x = torch.sort(x.double().flatten()).values
    n = x.numel()
    f = target.cdf(x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return torch.maximum(i / n - f, f - (i - 1) / n).max().item()


@register("distribution-1d", applies=_is_mixture(1))
def metrics_1d(samples: torch.Tensor, target: Mixture) -> Dict[str, float]:
    x = samples.double().flatten()
    out = {"w1": w1_distance_1d(x, target), "ks": ks_statistic_1d(x, target),
           "mean": x.mean().item(), "std": x.std(unbiased=False).item()}
    if len(target.components) == 1:
        out["mean_error"] = out["mean"] - target.means[0, 0].item()
        out["std_error"] = out["std"] - target.stds[0].item()
    return {k: round(v, 6) for k, v in out.items()}


@register("modes-2d", applies=_is_mixture(2))
def metrics_2d(samples: torch.Tensor, target: Mixture) -> Dict[str, float]:
    x = samples.double().reshape(-1, 2)
    d = torch.cdist(x, target.means.double())                      # (N, K)
    dist, nearest = d.min(1)
    hq = dist <= 3 * target.stds.double()[nearest]
    k = len(target.components)
    counts = torch.bincount(nearest[hq], minlength=k).double()
    total = counts.sum().item()
    w = target.weights.double()
    covered = int((counts >= 0.2 * w * total).sum().item()) if total > 0 else 0
    if total > 0:
        p = counts / total
        nz = p > 0
        kl = (p[nz] * (p[nz] / w[nz]).log()).sum().item()
    else:
        kl = math.log(k)  # no HQ sample at all: as far from the target's histogram as one mode alone
    return {"hq_fraction": round(hq.double().mean().item(), 6), "modes_covered": covered, "modes_total": k,
            "kl_modes": round(kl, 6)}
