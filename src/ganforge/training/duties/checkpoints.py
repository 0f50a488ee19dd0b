"""Periodic checkpoints: every ``log.checkpoint_every``, at the end of the budget, and when the run
stops early; a step-0 checkpoint when NaN rollback is on, so there is always something to go back to.
Weights that are NaN/Inf are never written: they ask for a rollback instead."""

from __future__ import annotations

from ...checkpoint import latest_checkpoint
from ...errors import DivergedError
from ..state import finite, save
from .base import Duty


class Checkpoints(Duty):
    def start(self, t) -> None:
        if not t.resumed and t.cfg.on_nan == "rollback":
            self.save(t)
        t.saved_step = t.state.step

    def after_step(self, t, out):
        if t.last or t.due(t.cfg.log.checkpoint_every):
            if not finite(t.state.nets.G, t.state.nets.D):
                return "NaN/Inf in the weights"
            self.save(t)
        return None

    def finish(self, t) -> None:
        if t.saved_step == t.state.step:
            return
        if not finite(t.state.nets.G, t.state.nets.D):  # stopped by time or signal between checkpoints
            raise DivergedError(f"training diverged (NaN/Inf in the weights at step {t.state.step}); not saved; "
                                f"the last good checkpoint is {latest_checkpoint(t.run_dir / 'checkpoints')}")
        self.save(t)

    @staticmethod
    def save(t) -> None:
        save(t.state, t.world, t.run_dir / "checkpoints", t.cfg.log.keep_checkpoints)
        t.saved_step = t.state.step
