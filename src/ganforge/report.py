"""Pictures of a run: sample grids."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torchvision.utils import save_image

from .checkpoint import write_atomic
from .data import to_unit


def save_grid(images: torch.Tensor, path: Path, nrow: int = 0) -> Path:
    """Save images in [-1, 1] (N, C, H, W) as one PNG grid, ``nrow`` per row (default: square)."""
    nrow = nrow or max(1, math.ceil(math.sqrt(images.shape[0])))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: save_image(to_unit(images.detach().float().cpu()), f, nrow=nrow,
                                            padding=2, format="png"))
    return path


def save_toy_plot(samples: torch.Tensor, target, path: Path, title: str = "",
                  d_curve: "tuple | None" = None) -> Path:
    """1-D: histogram of the samples over the target density (and D(x) when given as (xs, probs));
    2-D: scatter of the samples over the mode centres."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = samples.detach().double().cpu()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    if target.dim == 1:
        m, s = target.means[:, 0], target.stds
        lo = min((m - 4 * s).min().item(), x.quantile(0.001).item())
        hi = max((m + 4 * s).max().item(), x.quantile(0.999).item())
        t = torch.linspace(lo, hi, 400)
        ax.hist(x.flatten().clamp(lo, hi).numpy(), bins=80, range=(lo, hi), density=True, alpha=0.6,
                color="tab:blue", label="generated")
        ax.plot(t.numpy(), target.pdf(t).numpy(), color="black", lw=1.5, label="target density")
        ax.set_xlabel("x")
        ax.set_ylabel("density")
        if d_curve is not None:
            ax2 = ax.twinx()
            ax2.plot(d_curve[0].numpy(), d_curve[1].numpy(), color="tab:red", lw=1, label="D(x)")
            ax2.set_ylim(0, 1)
            ax2.set_ylabel("D(x)", color="tab:red")
        ax.legend(loc="upper left", fontsize=8)
    else:
        c = target.means.numpy()
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=2, alpha=0.3, color="tab:blue", label="generated")
        ax.scatter(c[:, 0], c[:, 1], s=30, marker="x", color="black", label="mode centres")
        pad = 1.0
        ax.set_xlim(c[:, 0].min() - pad, c[:, 0].max() + pad)
        ax.set_ylim(c[:, 1].min() - pad, c[:, 1].max() + pad)
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
    return path
