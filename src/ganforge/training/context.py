"""What the loop and its duties work on: :class:`Training`, made once by :func:`.setup.prepare`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from ..config import Config, parse_interval
from ..data import Mixture
from ..dist import World
from ..lock import RunLock
from .runlog import RunLog
from .state import TrainState
from .step import GANStep


@dataclass
class Training:
    """Everything the loop and its duties work on, made once by :func:`prepare`."""

    cfg: Config
    world: World
    device: torch.device
    run_dir: Path
    data: Any
    n_classes: int  # 0: unconditional
    ref: Any  # what evaluations score against: the toy mixture, the real images' features, or None
    image_eval: bool  # images are scored during training
    state: TrainState
    step_fn: GANStep
    total: Optional[int]  # the step budget (train.steps, or train.epochs in steps); None: time or signal
    resumed: bool
    warnings: List[str]
    log: Optional[RunLog] = None
    lock: Optional[RunLock] = None  # rank 0's hold on the run dir
    stop: Optional[str] = None  # set when the loop should end: budget | max_seconds | signal
    saved_step: int = 0  # the step of this invocation's last checkpoint
    epochs: Tuple[int, int] = (0, 0)  # whole epochs done before and after the last step
    record: Optional[Dict[str, Any]] = field(default=None)  # the metrics line of the last step, if any
    final_metrics: Optional[Dict[str, Any]] = None  # the last evaluation's numbers
    signal: Optional[int] = None  # the signal number when stopped by one

    @property
    def toy(self) -> bool:
        return isinstance(self.data, Mixture)

    @property
    def last(self) -> bool:
        """The step budget is used up."""
        return self.total is not None and self.state.step >= self.total

    def due(self, interval: str) -> bool:
        """Whether ``interval`` ('N steps' / 'N epochs') falls due at the step just taken."""
        n, unit = parse_interval(interval)
        if unit == "step":
            return self.state.step % n == 0
        before, after = self.epochs
        return after // n > before // n
