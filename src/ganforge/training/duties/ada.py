"""Adaptive discriminator augmentation (ADA, Karras et al. 2020, stylegan2-ada-pytorch's training_loop.py).

The ``diffaugment`` policies apply to each image D sees (real and fake alike) with probability p. Every
``ada_interval`` steps p moves by ``sign(r_t − ada_target) · images / (ada_kimg · 1000)``, clamped to
[0, 1], where r_t = E[sign(D(x_real))] over the interval (D's overfitting heuristic: near 1 when D is sure
of every real image) and ``images`` the real images D saw in it (all ranks). The paper's ``ada_kimg`` of
500 suits runs of tens of millions of images; a CPU run of a few minutes sees a few hundred thousand, so
by default p may cross [0, 1] in a tenth of the run's budget: steps × batch (× d_steps × ranks), or for a
time budget, the images the pace so far projects to its end. p is in the checkpoint: a resumed run goes
on with it, and a rollback returns to the checkpoint's.
"""

from __future__ import annotations

from typing import Optional

import torch

from .base import Duty
from .schedule import budget_progress

FALLBACK_KIMG = 500.0  # no budget to scale to (a run until a signal): the paper's value


def adjust(p: float, r_t: float, target: float, images: int, kimg: float) -> float:
    """ADA's update of p: one step of ``images / (kimg · 1000)`` toward more augmentation when r_t is above
    the target, less below it; within [0, 1]."""
    sign = (r_t > target) - (r_t < target)
    return min(1.0, max(0.0, p + sign * images / (kimg * 1000.0)))


def budget_kimg(images_so_far: int, fraction_done: float) -> Optional[float]:
    """A tenth of the images the whole run will have seen, in thousands (None when not known yet)."""
    if fraction_done <= 0:
        return None
    return max(images_so_far / fraction_done / 10 / 1000.0, 1e-3)


class Ada(Duty):
    def start(self, t) -> None:
        self.on = t.cfg.ada_target > 0
        if not self.on:
            return
        t.step_fn.ada_p = t.state.ada_p
        self.before = t.state.elapsed_before
        if t.state.ada_acc is None:  # (sum of E[sign(D(x_real))], steps) since the last adjustment; checkpointed
            t.state.ada_acc = torch.zeros(2, device=t.device)

    def after_step(self, t, out) -> None:
        if not self.on:
            return None
        cfg, s = t.cfg, t.state
        s.ada_acc += torch.stack([torch.sign(out.real_logits.detach().float()).mean(),
                                  torch.ones((), device=s.ada_acc.device)])
        if s.step % cfg.ada_interval:
            return None
        total, n = t.world.mean_(s.ada_acc.clone()).tolist()
        per_step = cfg.train.batch_size * cfg.d_steps * t.world.size
        kimg = cfg.ada_kimg or self.kimg(t, per_step) or FALLBACK_KIMG
        s.ada_p = adjust(s.ada_p, total / n, cfg.ada_target, round(per_step * n), kimg)
        t.step_fn.ada_p = s.ada_p
        s.ada_acc.zero_()
        return None

    def kimg(self, t, per_step: int) -> Optional[float]:
        return budget_kimg(t.state.step * per_step, budget_progress(t, self.before))

    def after_rollback(self, t) -> None:
        self.start(t)
