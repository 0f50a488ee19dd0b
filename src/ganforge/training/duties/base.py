"""The one interface of a duty: what the training loop asks of everything it is not."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ..context import Training
    from ..step import StepOut


class Duty:
    """A job around the training loop (logging, pictures, evaluation, checkpoints, the budget, ...).

    The loop calls each duty's hooks in the order the duties are listed: ``start`` once before the
    first step; ``after_step`` after every step — returning a reason (a sentence) asks the loop to roll
    back to the last good checkpoint, and the duties after it are skipped for that step;
    ``after_rollback`` after such a rollback; ``finish`` once after the last step; ``close`` always,
    last, even when training failed. Every hook does nothing unless a duty overrides it.
    """

    def start(self, t: "Training") -> None:
        pass

    def after_step(self, t: "Training", out: "StepOut") -> Optional[str]:
        return None

    def after_rollback(self, t: "Training") -> None:
        pass

    def finish(self, t: "Training") -> None:
        pass

    def close(self, t: "Training") -> None:
        pass
