"""The budget: stop after ``train.steps`` (or ``train.epochs``), after ``train.max_seconds``, or on
SIGINT/SIGTERM — at a step boundary, all ranks together, so the last checkpoint is a whole one."""

from __future__ import annotations

import signal
import threading
from typing import Optional

from .base import Duty


class Budget(Duty):
    """Sets ``t.stop`` (budget | max_seconds | signal) when the run should end. A first SIGINT or SIGTERM
    asks to stop after the current step; a second SIGINT stops at once (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._old: dict = {}

    def start(self, t) -> None:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        self._check(t)

    def after_step(self, t, out):
        self._check(t)

    def _check(self, t) -> None:
        limit = t.cfg.train.max_seconds
        if t.world.any(self.signum is not None, t.device):
            t.stop = "signal"
        elif t.total is not None and t.state.step >= t.total:
            t.stop = "budget"
        elif t.world.any(limit is not None and t.state.clock() - t.state.started >= limit, t.device):
            t.stop = "max_seconds"  # ranks' clocks differ: stop together

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def close(self, t) -> None:
        t.signal = self.signum
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old = {}
