"""The run's record: ``metrics.jsonl`` (the source of truth), its TensorBoard mirror, and the console
(the progress bar and one-line warnings). Only rank 0 writes; on other ranks every call does nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from tqdm import tqdm

from ..checkpoint import os_error, write_atomic
from ..config import Config
from ..errors import StorageError
from ..logs import log
from ..tblog import TensorBoardLog


class RunLog:
    def __init__(self, run_dir: Path, cfg: Config, *, active: bool, total: Optional[int], step: int,
                 resumed: bool) -> None:
        self.path, self.active, self.total = run_dir / "metrics.jsonl", active, total
        self.bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True,
                        disable=not (cfg.log.progress and active), desc=run_dir.name, file=sys.stderr,
                        mininterval=0.2 if sys.stderr.isatty() else 15.0)
        self.file = open(self.path, "a") if active else None
        # TensorBoard mirrors metrics.jsonl; a resumed run hides the events logged after its step.
        self.tb = TensorBoardLog.open(run_dir, cfg, purge_step=step if resumed else None) \
            if active and cfg.log.tensorboard else None

    def record(self, record: Dict[str, Any]) -> None:
        """One line of ``metrics.jsonl`` (and its TensorBoard mirror)."""
        if self.active:
            try:  # one write of the whole line: a kill can tear only the last line, which readers skip
                self.file.write(json.dumps(record) + "\n")
                self.file.flush()
            except OSError as e:
                raise StorageError(f"cannot append to {self.path}: {os_error(e)}; the last checkpoint is "
                                   f"intact") from None
            if self.tb is not None:
                self.tb.record(record)

    def warn(self, message: str) -> None:
        if self.active:
            self.bar.clear()
            log.warning(message)

    def event(self, step: int, event: str, message: str, say: bool = True) -> None:
        """A named event (a diagnostic, a config warning): logged, and said once on the console."""
        self.record({"step": step, "kind": "event", "event": event, "message": message})
        if say:
            self.warn(message)

    def image(self, tag: str, path: Path, step: int) -> None:
        if self.tb is not None:
            self.tb.image(tag, path, step)

    def rewind(self, step: int) -> None:
        """Back to ``step`` (a rollback): drop the lines logged after it and move the bar there."""
        if self.active:
            self.file.close()
            truncate_metrics(self.path, step)
            self.file = open(self.path, "a")
        self.bar.reset(total=self.total)
        self.bar.update(step)

    def close(self) -> None:
        self.bar.close()
        if self.file is not None:
            self.file.close()
        if self.tb is not None:
            self.tb.close()


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics lines logged after the checkpoint we resume from (they will be logged again)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:  # a line torn by a kill: everything after it is suspect
            log.warning(f"{path}: dropped a torn line (a kill in the middle of a write); the lines "
                  f"after step {step} are logged again")
            break
    write_atomic(path, lambda f: f.write("".join(l + "\n" for l in keep).encode()))
