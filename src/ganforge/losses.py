"""GAN objectives as pure functions of D's logits.

Every D loss is minimised by D; every G loss is minimised by G. Logits, not probabilities: the
BCE terms use ``softplus`` (what ``binary_cross_entropy_with_logits`` computes), which is the same
function as Sigmoid + BCELoss, computed without overflow.

With D(x) = sigmoid(l):  -log D(x) = softplus(-l),  -log(1 - D(x)) = softplus(l).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Callable, Dict

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def d_bce(real_logits: Tensor, fake_logits: Tensor, real_target: float = 1.0) -> Tensor:
    """D's loss of the original GAN: -E[log D(x)] - E[log(1 - D(G(z)))] (Goodfellow et al. 2014).

    ``real_target`` < 1 is one-sided label smoothing: BCE against t for reals,
    t·(-log D(x)) + (1 - t)·(-log(1 - D(x))).
    """
    real = F.softplus(-real_logits).mean() if real_target == 1.0 else \
        (real_target * F.softplus(-real_logits) + (1 - real_target) * F.softplus(real_logits)).mean()
    return real + F.softplus(fake_logits).mean()


def g_minimax(fake_logits: Tensor) -> Tensor:
    """Saturating G loss: G minimises E[log(1 - D(G(z)))] (the paper's value function)."""
    return -F.softplus(fake_logits).mean()


def g_nonsaturating(fake_logits: Tensor) -> Tensor:
    """Non-saturating G loss: G maximises E[log D(G(z))], i.e. minimises -E[log D(G(z))]."""
    return F.softplus(-fake_logits).mean()


def d_lsgan(real_logits: Tensor, fake_logits: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Least-squares D loss (Mao et al. 2017): ½E[(D(x) − b)²] + ½E[(D(G(z)) − a)²]."""
    return 0.5 * (real_logits - b).pow(2).mean() + 0.5 * (fake_logits - a).pow(2).mean()


def g_lsgan(fake_logits: Tensor, c: float = 1.0) -> Tensor:
    """Least-squares G loss: ½E[(D(G(z)) − c)²]."""
    return 0.5 * (fake_logits - c).pow(2).mean()


def d_wasserstein(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The critic's loss (Arjovsky et al. 2017): E[D(G(z))] − E[D(x)], the negative Wasserstein estimate."""
    return fake_logits.mean() - real_logits.mean()


def g_wasserstein(fake_logits: Tensor) -> Tensor:
    """G's loss for WGAN, WGAN-GP and hinge: −E[D(G(z))]."""
    return -fake_logits.mean()


def d_hinge(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Hinge D loss (Lim & Ye 2017; Miyato et al. 2018): E[max(0, 1 − D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def d_rpgan(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Relativistic pairing D loss (Jolicoeur-Martineau 2019; Huang et al. 2024, R3GAN):
    E[softplus(−(D(x_i) − D(G(z_i))))] over the pairs (real i, fake i) of the batch."""
    return F.softplus(-(real_logits - fake_logits)).mean()


def g_rpgan(fake_logits: Tensor, real_logits: Tensor) -> Tensor:
    """Relativistic pairing G loss: E[softplus(−(D(G(z_i)) − D(x_i)))], the same pairs seen from G's side
    (``real_logits`` carry no gradient to D's weights: D is frozen in G's update)."""
    return F.softplus(-(fake_logits - real_logits)).mean()


@dataclass(frozen=True)
class Loss:
    d: Callable[..., Tensor]
    g: Callable[..., Tensor]
    clip_weights: bool = False       # WGAN: clamp D's weights to [−clip, clip] after each D update
    gradient_penalty: bool = False   # WGAN-GP: add λ·E[(‖∇D(x̂)‖ − 1)²] on interpolates
    paired: bool = False             # RpGAN: G's loss also reads D's logits of a real batch, g(fake, real)


LOSSES: Dict[str, Loss] = {
    "nonsaturating": Loss(d=d_bce, g=g_nonsaturating),
    "minimax": Loss(d=d_bce, g=g_minimax),
    "lsgan": Loss(d=d_lsgan, g=g_lsgan),
    "wgan": Loss(d=d_wasserstein, g=g_wasserstein, clip_weights=True),
    "wgan-gp": Loss(d=d_wasserstein, g=g_wasserstein, gradient_penalty=True),
    "hinge": Loss(d=d_hinge, g=g_wasserstein),
    "rpgan": Loss(d=d_rpgan, g=g_rpgan, paired=True),
}

# Each loss's recommended settings from its paper, applied below the preset: a preset or the user's
# config that sets a key wins. (WGAN: RMSprop 5e-5, 5 critic steps; WGAN-GP: Adam 1e-4, β (0, 0.9), 5.)
RECOMMENDED: Dict[str, dict] = {
    "wgan": {"d_steps": 5, "optim": {"name": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5}},
    "wgan-gp": {"d_steps": 5, "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.0, 0.9]},
                "model": {"d_norm": "none"}},  # the penalty is per sample: no BatchNorm in the critic
}


def build_loss(name: str, lsgan_a: float = 0.0, lsgan_b: float = 1.0, lsgan_c: float = 1.0,
               label_smoothing: float = 0.0) -> Loss:
    """The registry entry ``name`` with its parameters bound (LSGAN's a, b, c; BCE's real target)."""
    loss = LOSSES[name]
    if name == "lsgan":
        loss = replace(loss, d=partial(d_lsgan, a=lsgan_a, b=lsgan_b), g=partial(g_lsgan, c=lsgan_c))
    if label_smoothing and loss.d is d_bce:
        loss = replace(loss, d=partial(d_bce, real_target=1.0 - label_smoothing))
    return loss


def gradient_penalty(D: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """E[(‖∇_x̂ D(x̂)‖₂ − 1)²] at x̂ = εx + (1 − ε)G(z), ε ~ U(0, 1) per sample (Gulrajani et al. 2017)."""
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def r1_penalty(x: Tensor, logits: Tensor) -> Tensor:
    """E‖∇_x D(x)‖² over a batch, zero-centred: R1 on the real batch (Mescheder et al. 2018), R2 on the
    fake batch (Huang et al. 2024). ``x`` must require grad and ``logits`` must be D(x). Weighted by γ/2
    in the training loop."""
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()
