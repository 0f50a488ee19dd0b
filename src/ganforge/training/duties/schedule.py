"""The learning-rate schedule over the run's budget: constant, or decayed to 0 at the budget's end.

The budget may be steps (``train.steps`` or ``train.epochs``), seconds (``train.max_seconds``) or both;
the schedule's progress is the larger of the two fractions, so it anneals toward whichever ends the run
first. Time: seconds trained / (seconds trained before this invocation + its ``max_seconds``), so a
resumed run given more time stretches the schedule to its new end. Decay as in CycleGAN's
``get_scheduler`` (linear to 0 after ``lr_decay_start``) or cosine (Loshchilov & Hutter 2017).
"""

from __future__ import annotations

import math
from typing import Optional

from ..state import set_learning_rates
from .base import Duty


def lr_factor(kind: str, progress: float, decay_start: float = 0.0) -> float:
    """The multiplier of the base learning rates at ``progress`` (0 = start, 1 = end of the budget)."""
    if kind == "constant" or progress <= decay_start:
        return 1.0
    x = min(1.0, (progress - decay_start) / (1.0 - decay_start))
    return 1.0 - x if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * x))


def progress(step: int, total: Optional[int], seconds: float, max_seconds: Optional[float]) -> float:
    """How much of the budget is used: the larger of steps/total and seconds/max_seconds, within [0, 1]."""
    done = [step / total] if total else []
    if max_seconds:
        done.append(seconds / max_seconds)
    return min(1.0, max(done, default=0.0))


def budget_progress(t, before: float) -> float:
    """:func:`progress` of the running ``t``, whose earlier invocations trained ``before`` seconds; with a time
    budget the ranks agree on the largest (their clocks differ), so what depends on it stays the same on each."""
    s, limit = t.state, t.cfg.train.max_seconds
    p = progress(s.step, t.total, before + (s.clock() - s.started), before + limit if limit else None)
    return t.world.max(p, t.device) if limit else p


class Schedule(Duty):
    """Sets the optimisers' learning rates before each step: the config's (times ``nan_lr_factor`` per
    rollback) times :func:`lr_factor` of the budget's progress. Ranks agree on the progress (their
    clocks differ), so DDP replicas keep the same learning rates."""

    def start(self, t) -> None:
        self.before = t.state.elapsed_before  # seconds trained before this invocation
        if t.cfg.optim.lr_schedule != "constant":
            self._apply(t)

    def after_step(self, t, out) -> None:
        if t.cfg.optim.lr_schedule != "constant":
            self._apply(t)

    def after_rollback(self, t) -> None:
        self.start(t)

    def _apply(self, t) -> None:
        o, s = t.cfg.optim, t.state
        p = budget_progress(t, self.before)
        scale = t.cfg.nan_lr_factor ** s.rollbacks * lr_factor(o.lr_schedule, p, o.lr_decay_start)
        set_learning_rates(s.nets, o, scale)
