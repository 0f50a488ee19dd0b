"""The training loop: repeat the step while the budget lasts, and let the duties act after each one.

Everything else lives elsewhere: Algorithm 1 in :mod:`.step`, what a checkpoint holds in :mod:`.state`,
logging, pictures, evaluation, checkpoints and the budget in :mod:`.duties`, the run's set-up in
:mod:`.setup`.
"""

from __future__ import annotations

from typing import Sequence

from .context import Training
from .duties import Duty
from .state import roll_back


def fit(t: Training, duties: Sequence[Duty]) -> None:
    """Train ``t`` until a duty sets ``t.stop`` (the budget: steps, time or a signal)."""
    t.state.start_clock()
    try:
        for duty in duties:
            duty.start(t)
        while t.stop is None:
            before = t.state.batches.position // t.state.batches.per_epoch
            t.world.step = t.state.step + 1
            with t.world.bounded("the step (DDP's gradient all-reduce)"):
                out = t.step_fn(t.state.batches, t.state.step)  # d_steps D updates, g_steps G updates, EMA
            t.state.step += 1
            t.epochs = (before, t.state.batches.position // t.state.batches.per_epoch)
            for duty in duties:
                why = duty.after_step(t, out)
                if why is not None:  # NaN/Inf: back to the last good checkpoint (or DivergedError)
                    _roll_back(t, duties, why)
                    break
        for duty in duties:
            duty.finish(t)
    finally:
        for duty in reversed(duties):
            duty.close(t)


def _roll_back(t: Training, duties: Sequence[Duty], why: str) -> None:
    record, message = roll_back(t.state, t.cfg, t.world, t.run_dir / "checkpoints", why)
    t.log.rewind(t.state.step)
    t.log.record(record)
    t.log.warn(message)
    for duty in duties:
        duty.after_rollback(t)
