"""TensorBoard output of a run (optional: ``pip install 'ganforge[tensorboard]'``, ``log.tensorboard: true``).

``metrics.jsonl`` stays the source of truth; this mirrors each of its lines into ``RUN/tensorboard/``:
``train/*`` scalars (losses, D(x), D(G(z)), img/s, learning rates), ``eval/*`` scalars (the metrics),
events as text, the fixed-noise grid as an image, and the config as text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from .logs import log

_NOT_SCALARS = ("step", "kind", "epoch")


class TensorBoardLog:
    def __init__(self, writer) -> None:
        self.writer = writer

    @classmethod
    def open(cls, run_dir: Path, cfg, purge_step: Optional[int] = None) -> Optional["TensorBoardLog"]:
        """A writer on ``run_dir/tensorboard``, or None (with a one-line note) when tensorboard is missing.
        ``purge_step``: a resumed run hides the events an earlier process logged from this step on."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("note: log.tensorboard is on but the tensorboard package is not installed "
                  "(pip install 'ganforge[tensorboard]'); training goes on without it")
            return None
        # Flushed every 10 s by the writer's own thread (and at close), not per line on the training loop.
        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge_step, flush_secs=10)
        text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
        writer.add_text("config", "".join("    " + line + "\n" for line in text.splitlines()), purge_step or 0)
        return cls(writer)

    def record(self, rec: Dict[str, Any]) -> None:
        """One ``metrics.jsonl`` line."""
        step, kind = int(rec.get("step", 0)), rec.get("kind", "train")
        if kind == "event":
            detail = rec.get("message") or rec.get("why") or ""
            self.writer.add_text("events", f"step {step}: {rec.get('event')}: {detail}", step)
            return
        for key, value in rec.items():
            if key not in _NOT_SCALARS and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{kind}/{key}", value, step)

    def image(self, tag: str, path: Path, step: int) -> None:
        """A PNG written by the run (grid or toy plot) as an image at ``step``."""
        import numpy as np
        from PIL import Image

        with Image.open(path) as im:
            self.writer.add_image(tag, np.asarray(im.convert("RGB")), step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()
