"""GAN objectives as pure functions of D's logits.

Every D loss is minimised by D; every G loss is minimised by G. Logits, not probabilities: the
BCE terms use ``softplus`` (what ``binary_cross_entropy_with_logits`` computes), which is the same
function as Sigmoid + BCELoss, computed without overflow.

With D(x) = sigmoid(l):  -log D(x) = softplus(-l),  -log(1 - D(x)) = softplus(l).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def d_bce(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """D's loss of the original GAN: -E[log D(x)] - E[log(1 - D(G(z)))] (Goodfellow et al. 2014)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_minimax(fake_logits: Tensor) -> Tensor:
    """Saturating G loss: G minimises E[log(1 - D(G(z)))] (the paper's value function)."""
    return -F.softplus(fake_logits).mean()


def g_nonsaturating(fake_logits: Tensor) -> Tensor:
    """Non-saturating G loss: G maximises E[log D(G(z))], i.e. minimises -E[log D(G(z))]."""
    return F.softplus(-fake_logits).mean()


@dataclass(frozen=True)
class Loss:
    d: Callable[[Tensor, Tensor], Tensor]
    g: Callable[[Tensor], Tensor]


LOSSES: Dict[str, Loss] = {
    "nonsaturating": Loss(d=d_bce, g=g_nonsaturating),
    "minimax": Loss(d=d_bce, g=g_minimax),
}


def r1_penalty(real: Tensor, real_logits: Tensor) -> Tensor:
    """E‖∇_x D(x)‖² over the real batch (Mescheder et al. 2018); ``real`` must require grad and
    ``real_logits`` must be D(real). Weighted by γ/2 in the training loop."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()
