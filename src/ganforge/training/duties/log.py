"""Logging the losses: one ``metrics.jsonl`` line every ``log.every`` steps, and the progress bar."""

from __future__ import annotations

import math
from typing import Optional

import torch

from .base import Duty

METRIC_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")


class LogLosses(Duty):
    """Average D's and G's losses, mean D(x) and mean D(G(z)) over the steps since the last line (on the
    device, read back only at log time; averaged over ranks), with img/s, learning rates and elapsed
    time. Losses that are NaN/Inf ask for a rollback instead of a line."""

    def start(self, t) -> None:
        self.since, self.images = t.state.clock(), 0

    def after_step(self, t, out) -> Optional[str]:
        s, cfg = t.state, t.cfg
        t.record = None
        self.images += cfg.train.batch_size * cfg.d_steps * t.world.size
        with torch.no_grad():
            s.acc += torch.stack([out.d_loss.detach(), out.g_loss.detach(),
                                  torch.sigmoid(out.real_logits.detach()).mean(),
                                  torch.sigmoid(out.fake_logits.detach()).mean()]).float()
        s.acc_n += 1
        t.log.bar.update(1)
        if s.step % cfg.log.every:
            return None
        now = s.clock()
        values = t.world.mean_(s.acc / s.acc_n).tolist()  # the same numbers on every rank
        if not all(math.isfinite(v) for v in values):
            return "NaN/Inf in the losses"
        t.record = {"step": s.step, "kind": "train", "epoch": s.epoch,
                    **{k: round(v, 6) for k, v in zip(METRIC_KEYS, values)},
                    "img_per_s": round(self.images / max(now - self.since, 1e-9), 1),
                    "lr_g": s.nets.opt_g.param_groups[0]["lr"], "lr_d": s.nets.opt_d.param_groups[0]["lr"],
                    **({"ada_p": round(s.ada_p, 6)} if cfg.ada_target > 0 else {}),
                    "elapsed_s": round(s.elapsed_before + now - s.started, 3)}
        t.log.record(t.record)
        t.log.bar.set_postfix(d=f"{values[0]:.3f}", g=f"{values[1]:.3f}", img_s=f"{t.record['img_per_s']:.0f}")
        s.acc.zero_()
        s.acc_n, self.since, self.images = 0, now, 0
        return None

    def after_rollback(self, t) -> None:
        self.start(t)
