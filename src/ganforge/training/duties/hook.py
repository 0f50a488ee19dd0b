"""The user's ``on_step(step, G, D)`` callback as a duty."""

from __future__ import annotations

from typing import Callable

from torch import nn

from .base import Duty


class OnStep(Duty):
    """Call ``fn(step, G, D)`` after every step (inspection, experiments; keep it cheap)."""

    def __init__(self, fn: Callable[[int, nn.Module, nn.Module], None]) -> None:
        self.fn = fn

    def after_step(self, t, out):
        self.fn(t.state.step, t.state.nets.G, t.state.nets.D)
