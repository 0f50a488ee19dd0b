"""ganforge's one logger, ``logging.getLogger("ganforge")``, for every library message.

It comes with one handler that writes each message as one line on the *current* ``sys.stderr`` —
``ganforge: warning: ...`` for warnings, ``ganforge: ...`` for notes and progress — so the CLI and a
plain Python session show what they always showed. It does not propagate to the root logger (no
double lines where an application configures logging). To silence it: ``log.setLevel(logging.ERROR)``;
to route it elsewhere: remove ``log.handlers[0]`` and add your own, or set ``log.propagate = True``.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("ganforge")


class _Stderr(logging.Handler):
    """A StreamHandler on whatever ``sys.stderr`` is at the time of the message (pytest, redirections)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # a logging call never breaks training
            self.handleError(record)


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = {logging.WARNING: "warning: ", logging.ERROR: "error: "}.get(record.levelno, "")
        return f"ganforge: {level}{record.getMessage()}"


if not log.handlers:
    _handler = _Stderr()
    _handler.setFormatter(_OneLine())
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False
