"""The duties around the training loop, one per file, each a :class:`Duty`. :func:`standard_duties`
lists them in the order they act after each step; a new duty is a new class in that list."""

from __future__ import annotations

from typing import Callable, List, Optional

from .ada import Ada
from .base import Duty
from .budget import Budget
from .checkpoints import Checkpoints
from .diagnose import Diagnose
from .evaluate import EvaluateImages, score
from .grids import Grids
from .hook import OnStep
from .log import LogLosses
from .schedule import Schedule

__all__ = ["Ada", "Duty", "Budget", "Checkpoints", "Diagnose", "EvaluateImages", "Grids", "OnStep", "LogLosses", "Schedule",
           "score", "standard_duties"]


def standard_duties(on_step: Optional[Callable] = None) -> List[Duty]:
    """The user's hook, ADA's augmentation probability, the metrics line, diagnostics, pictures, evaluation,
    checkpoints, the learning rates of the next step, then the budget (which decides whether another step
    follows)."""
    return [*([OnStep(on_step)] if on_step is not None else []), Ada(), LogLosses(), Diagnose(), Grids(),
            EvaluateImages(), Checkpoints(), Schedule(), Budget()]
