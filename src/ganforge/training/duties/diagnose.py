"""Diagnostics as a duty: after each metrics line, let :class:`ganforge.diagnostics.Diagnostics` look
for D overpowering G, G's loss exploding and mode collapse, and say what it finds once."""

from __future__ import annotations

from ...diagnostics import diversity_ratio
from .base import Duty


class Diagnose(Duty):
    def after_step(self, t, out):
        diag = t.state.diagnostics
        if t.record is None:  # no metrics line this step
            return None
        diversity = diversity_ratio(out.real.detach(), out.fake.detach()) if diag.enabled else None
        for event, message in diag.on_log(t.record, diversity):
            t.log.event(t.state.step, event, message)
        return None
